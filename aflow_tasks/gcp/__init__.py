"""Google Cloud tasks on gcloud-aio (Storage, BigQuery, Secret Manager), with Prefect 1's names.

One aiohttp session per flow run is shared by every gcp task (`aflow_tasks.gcp._auth`).

- `aflow_tasks.gcp.storage`: `GCSDownload`, `GCSUpload`, `GCSCopy`, `GCSBlobExists` (Cloud Storage).
- `aflow_tasks.gcp.result`: `GCSResult`, a result store in a Cloud Storage bucket.
- `aflow_tasks.gcp.bigquery`: BigQuery queries, streaming inserts, load jobs and tables.
- `aflow_tasks.gcp.secretmanager`: `GCPSecret`, a secret's payload from Secret Manager.

Needs the ``gcp`` extra: ``pip install aflow-engine[gcp]``.
"""

from __future__ import annotations

from .bigquery import BigQueryLoadFile as BigQueryLoadFile
from .bigquery import BigQueryLoadGoogleCloudStorage as BigQueryLoadGoogleCloudStorage
from .bigquery import BigQueryStreamingInsert as BigQueryStreamingInsert
from .bigquery import BigQueryTask as BigQueryTask
from .bigquery import CreateBigQueryTable as CreateBigQueryTable
from .result import GCSResult as GCSResult
from .secretmanager import GCPSecret as GCPSecret
from .storage import GCSBlobExists as GCSBlobExists
from .storage import GCSCopy as GCSCopy
from .storage import GCSDownload as GCSDownload
from .storage import GCSUpload as GCSUpload

__all__: tuple[str, ...] = (
    "BigQueryLoadFile",
    "BigQueryLoadGoogleCloudStorage",
    "BigQueryStreamingInsert",
    "BigQueryTask",
    "CreateBigQueryTable",
    "GCPSecret",
    "GCSBlobExists",
    "GCSCopy",
    "GCSDownload",
    "GCSResult",
    "GCSUpload",
)
