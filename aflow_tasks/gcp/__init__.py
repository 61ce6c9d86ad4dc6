"""Google Cloud tasks on gcloud-aio (Storage, BigQuery, Secret Manager), with Prefect 1's names.

One aiohttp session per flow run is shared by every gcp task (`aflow_tasks.gcp._auth`).
Needs the ``gcp`` extra: ``pip install aflow-engine[gcp]``.

- `aflow_tasks.gcp.storage`: `GCSDownload`, `GCSUpload`, `GCSCopy`, `GCSBlobExists` (Cloud Storage).
- `aflow_tasks.gcp.result`: `GCSResult`, a result store in a Cloud Storage bucket.
"""

from __future__ import annotations

from .result import GCSResult as GCSResult
from .storage import GCSBlobExists as GCSBlobExists
from .storage import GCSCopy as GCSCopy
from .storage import GCSDownload as GCSDownload
from .storage import GCSUpload as GCSUpload

__all__: tuple[str, ...] = ("GCSBlobExists", "GCSCopy", "GCSDownload", "GCSResult", "GCSUpload")
