"""Azure Blob Storage tasks: `BlobStorageDownload` and `BlobStorageUpload` (Prefect 1's names).

Both read the connection string from ``connection_string`` (a str, or a lazy value such as an
`aflow.Secret`), else from the `aflow.Secret` named ``azure_credentials_secret`` (default
``AZ_CONNECTION_STRING``), when they run. A flow run shares one ``BlobServiceClient`` per
connection string between its tasks (`aflow_tasks.azure.clients`).
"""

from __future__ import annotations

import uuid
from typing import Any

from aflow import Task, defaults_from_attrs

from ._client import azure_errors, blob_service, connection_string_from, require_azure

__all__ = ("BlobStorageDownload", "BlobStorageUpload")

DEFAULT_SECRET = "AZ_CONNECTION_STRING"


def _need_container(task: str, container: str | None) -> str:
    if not container:
        raise ValueError(
            f"{task} needs a container name: give it at initialization ({task}(container=...)) "
            "or to the call (container=...)"
        )
    return container


class BlobStorageDownload(Task):
    """Download a blob from an Azure Blob Storage container and return it as text (UTF-8).

    A missing container or blob fails the task naming it (``ContainerNotFound``,
    ``BlobNotFound``); throttling and 5xx answers raise `RETRY` while the task has retries left.

    Args:
        azure_credentials_secret: The name of the `aflow.Secret` holding the connection string.
            Defaults to ``"AZ_CONNECTION_STRING"``.
        container: The container. Defaults to None (give it to the call).
        connection_string: The connection string itself (a str, or a lazy value such as an
            `aflow.Secret`); it wins over ``azure_credentials_secret``. Defaults to None.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        azure_credentials_secret: str = DEFAULT_SECRET,
        container: str | None = None,
        connection_string: Any = None,
        **kwargs: Any,
    ) -> None:
        require_azure()
        self.azure_credentials_secret = azure_credentials_secret
        self.container = container
        self.connection_string = connection_string
        super().__init__(**kwargs)

    @defaults_from_attrs("azure_credentials_secret", "container", "connection_string")
    async def run(
        self,
        blob_name: str | None = None,
        azure_credentials_secret: str = DEFAULT_SECRET,
        container: str | None = None,
        connection_string: Any = None,
    ) -> str:
        """Download the blob.

        Args:
            blob_name: The blob's name in the container (required).
            azure_credentials_secret: The secret holding the connection string (default: the
                initialization's).
            container: The container (default: the initialization's; required).
            connection_string: The connection string, winning over the secret (default: the
                initialization's).

        Returns:
            The blob's content, decoded as UTF-8.

        Raises:
            ValueError: No blob name, container or connection string.
            FAIL: Azure refused the download (a missing container or blob...).
            RETRY: Throttling or a 5xx while the task has retries left.
        """
        if not blob_name:
            raise ValueError("BlobStorageDownload needs blob_name: call it with blob_name=...")
        container = _need_container("BlobStorageDownload", container)
        conn = await connection_string_from("BlobStorageDownload", connection_string, azure_credentials_secret)
        label = f"Azure download of blob {blob_name!r} from container {container!r}"
        async with blob_service(conn) as service, azure_errors(label):
            blob = service.get_blob_client(container=container, blob=blob_name)
            downloader = await blob.download_blob(encoding="UTF-8")
            text: str = await downloader.readall()
        return text


class BlobStorageUpload(Task):
    """Upload text or bytes to an Azure Blob Storage container and return the blob's name.

    Without ``overwrite`` an existing blob is left unchanged and the task fails
    (``BlobAlreadyExists``). A missing container fails naming it.

    Args:
        azure_credentials_secret: The name of the `aflow.Secret` holding the connection string.
            Defaults to ``"AZ_CONNECTION_STRING"``.
        container: The container. Defaults to None (give it to the call).
        overwrite: Replace an existing blob of the same name. Defaults to False.
        connection_string: The connection string itself (a str, or a lazy value such as an
            `aflow.Secret`); it wins over ``azure_credentials_secret``. Defaults to None.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        azure_credentials_secret: str = DEFAULT_SECRET,
        container: str | None = None,
        overwrite: bool = False,
        connection_string: Any = None,
        **kwargs: Any,
    ) -> None:
        require_azure()
        self.azure_credentials_secret = azure_credentials_secret
        self.container = container
        self.overwrite = overwrite
        self.connection_string = connection_string
        super().__init__(**kwargs)

    @defaults_from_attrs("azure_credentials_secret", "container", "overwrite", "connection_string")
    async def run(
        self,
        data: str | bytes | None = None,
        blob_name: str | None = None,
        azure_credentials_secret: str = DEFAULT_SECRET,
        container: str | None = None,
        overwrite: bool = False,
        connection_string: Any = None,
    ) -> str:
        """Upload ``data``.

        Args:
            data: The payload: a str (uploaded as UTF-8) or bytes (required).
            blob_name: The blob's name. Defaults to None: a random ``uuid4``.
            azure_credentials_secret: The secret holding the connection string (default: the
                initialization's).
            container: The container (default: the initialization's; required).
            overwrite: Replace an existing blob (default: the initialization's).
            connection_string: The connection string, winning over the secret (default: the
                initialization's).

        Returns:
            The blob's name.

        Raises:
            ValueError: No data, container or connection string.
            TypeError: ``data`` is neither str nor bytes.
            FAIL: Azure refused the upload (the blob exists and ``overwrite`` is False, a
                missing container...).
            RETRY: Throttling or a 5xx while the task has retries left.
        """
        if data is None:
            raise ValueError("BlobStorageUpload needs data: call it with data=...")
        if not isinstance(data, str | bytes | bytearray):
            raise TypeError(f"BlobStorageUpload uploads str or bytes, not {type(data).__name__}")
        container = _need_container("BlobStorageUpload", container)
        conn = await connection_string_from("BlobStorageUpload", connection_string, azure_credentials_secret)
        if blob_name is None:
            blob_name = str(uuid.uuid4())
        label = f"Azure upload of blob {blob_name!r} to container {container!r}"
        hint = {"BlobAlreadyExists": "left unchanged: pass overwrite=True to replace it"}
        async with blob_service(conn) as service, azure_errors(label, hint):
            blob = service.get_blob_client(container=container, blob=blob_name)
            await blob.upload_blob(data, overwrite=bool(overwrite))
        return blob_name
