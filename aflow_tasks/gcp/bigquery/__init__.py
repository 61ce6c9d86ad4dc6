"""BigQuery tasks on gcloud-aio-bigquery, with Prefect 1's names.

`BigQueryTask` (queries), `BigQueryStreamingInsert`, the load jobs
`BigQueryLoadGoogleCloudStorage` and `BigQueryLoadFile`, and `CreateBigQueryTable`.

They share the flow run's aiohttp session (`aflow_tasks.gcp._auth`) and honour
``BIGQUERY_EMULATOR_HOST`` (``host:port``; no auth against it). Credentials: a service account's
JSON key (a dict or its text, or a lazy `aflow.Secret`), else the ``GCP_CREDENTIALS`` secret,
else Application Default Credentials; never shown in messages or logs.
"""

from __future__ import annotations

from .load import BigQueryLoadFile as BigQueryLoadFile
from .load import BigQueryLoadGoogleCloudStorage as BigQueryLoadGoogleCloudStorage
from .load import BigQueryStreamingInsert as BigQueryStreamingInsert
from .query import BigQueryTask as BigQueryTask
from .table import CreateBigQueryTable as CreateBigQueryTable

__all__ = (
    "BigQueryLoadFile",
    "BigQueryLoadGoogleCloudStorage",
    "BigQueryStreamingInsert",
    "BigQueryTask",
    "CreateBigQueryTable",
)
