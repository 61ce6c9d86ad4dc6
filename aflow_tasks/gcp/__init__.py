"""Google Cloud tasks on gcloud-aio (Storage, BigQuery, Secret Manager), with Prefect 1's names.

One aiohttp session per flow run is shared by every gcp task (`aflow_tasks.gcp._auth`).

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
from .secretmanager import GCPSecret as GCPSecret

__all__: tuple[str, ...] = (
    "BigQueryLoadFile",
    "BigQueryLoadGoogleCloudStorage",
    "BigQueryStreamingInsert",
    "BigQueryTask",
    "CreateBigQueryTable",
    "GCPSecret",
)
