"""aflow_tasks: aflow's integration library, async end to end.

Each family is a module that imports its optional dependency only when a task runs; install
the family's extra to use it. Importing ``aflow_tasks`` imports none of them. Families are
written with the integration kit, `aflow.integration` (per-run clients with a test seam, one
error boundary, one transient-error policy); ``aflow new-task FAMILY CLASS`` starts a new one.

| module | tasks | extra |
|---|---|---|
| `aflow_tasks.shell` | ShellTask | (none) |
| `aflow_tasks.http` | HttpRequest | ``aflow-engine[http]`` |
| `aflow_tasks.slack` | SlackTask | ``aflow-engine[http]`` |
| `aflow_tasks.github` | OpenGitHubIssue, CreateGitHubPR, CreateIssueComment, GetRepoInfo, CreateBranch | ``[http]`` |
| `aflow_tasks.files` | Copy, Move, Remove, Glob, Zip, Unzip, ReadFile, WriteFile | ``aflow-engine[files]`` |
| `aflow_tasks.templates` | StringFormatter, JinjaTemplate | ``aflow-engine[templates]`` |
| `aflow_tasks.secrets` | GetSecret, EnvVarSecret | (none) |
| `aflow_tasks.sqlite` | SQLiteQuery, SQLiteScript | ``aflow-engine[sqlite]`` |
| `aflow_tasks.postgres` | PostgresExecute, PostgresExecuteMany, PostgresFetch | ``aflow-engine[postgres]`` |
| `aflow_tasks.mysql` | MySQLExecute, MySQLFetch | ``aflow-engine[mysql]`` |
| `aflow_tasks.redis` | RedisSet, RedisGet, RedisExecute | ``aflow-engine[redis]`` |
| `aflow_tasks.snowflake` | SnowflakeQuery, SnowflakeQueriesFromFile | ``aflow-engine[snowflake]`` |
| `aflow_tasks.email` | EmailTask | ``aflow-engine[email]`` |
| `aflow_tasks.aws` | S3Upload, S3Download, S3List, S3Result, Lambda*, StepActivate, BatchSubmit... | ``[aws]`` |
| `aflow_tasks.gcp` | GCSDownload, GCSUpload, GCSCopy, GCSBlobExists, GCSResult, BigQuery*, GCPSecret | ``[gcp]`` |
| `aflow_tasks.azure` | BlobStorageDownload, BlobStorageUpload, AzureResult | ``aflow-engine[azure]`` |
| `aflow_tasks.dbt` | DbtShellTask, DbtCloudRunJob | ``aflow-engine[dbt]`` (+ dbt and an adapter) |
| `aflow_tasks.jupyter` | ExecuteNotebook | ``aflow-engine[jupyter]`` |
| `aflow_tasks.docker` | *Container, WaitOnContainer, Pull/Push/Build/TagImage... | ``[docker]`` |
| `aflow_tasks.databricks` | DatabricksSubmitRun, DatabricksRunNow, ...MultitaskRun, ...GetJobID | ``[databricks]`` |
| `aflow_tasks.airbyte` | AirbyteConnectionTask | ``aflow-engine[http]`` |
| `aflow_tasks.fivetran` | FivetranSyncTask | ``aflow-engine[http]`` |
| `aflow_tasks.kubernetes` | Create/Delete/List/Patch/Read/ReplaceNamespaced*, RunNamespacedJob | ``[kubernetes]`` |
"""

from __future__ import annotations

__all__: tuple[str, ...] = ()
