"""Azure tasks on azure-storage-blob's async client, with Prefect 1's names.

- `aflow_tasks.azure.blobstorage`: `BlobStorageDownload`, `BlobStorageUpload`.
- `aflow_tasks.azure.result`: `AzureResult`, a result store (checkpoints, targets) on Blob Storage.

A flow run shares one ``BlobServiceClient`` per connection string (`clients`), closed at its end.
Needs the ``azure`` extra: ``pip install aflow-engine[azure]``.
"""

from __future__ import annotations

from ._client import clients as clients
from .blobstorage import BlobStorageDownload as BlobStorageDownload
from .blobstorage import BlobStorageUpload as BlobStorageUpload
from .result import AzureResult as AzureResult

__all__ = ("AzureResult", "BlobStorageDownload", "BlobStorageUpload", "clients")
