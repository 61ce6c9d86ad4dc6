"""`AzureResult`: task results stored as blobs in an Azure Blob Storage container."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, final

from aflow.results import Result, Serializer

from ._client import blob_service, connection_string_from, error_code, require_azure

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobServiceClient

__all__ = ("AzureResult",)

ENV_VAR = "AZURE_STORAGE_CONNECTION_STRING"


@final
class AzureResult(Result):
    """Results stored as blobs in an Azure Blob Storage container: usable as checkpoint and target.

    The formatted location is the blob's name. The connection string is looked up when the
    result is first used: ``connection_string`` (a str or a lazy value such as an
    `aflow.Secret`), else the `aflow.Secret` named ``connection_string_secret``, else the
    environment variable ``AZURE_STORAGE_CONNECTION_STRING``. Inside a flow run the result
    shares the run's client for that string. A write replaces the blob in one request.

    Args:
        container: The container (it must exist).
        connection_string: A connection string, or a lazy value giving one. Defaults to None.
        connection_string_secret: The name of an `aflow.Secret` holding the connection string.
            Defaults to None.
        location: A location template or callable (see `aflow.results.Result`).
        serializer: How values become bytes; None for a `aflow.results.PickleSerializer`.
    """

    def __init__(
        self,
        container: str,
        connection_string: Any = None,
        connection_string_secret: str | None = None,
        *,
        location: str | Callable[..., str] | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        require_azure()
        if not container:
            raise ValueError("AzureResult needs a container")
        super().__init__(location=location, serializer=serializer)
        self.container = container
        self.connection_string = connection_string
        self.connection_string_secret = connection_string_secret

    async def _connection_string(self) -> str:
        if self.connection_string is not None:
            return await connection_string_from("AzureResult", self.connection_string, None)
        if self.connection_string_secret:
            return await connection_string_from("AzureResult", None, self.connection_string_secret)
        value = os.environ.get(ENV_VAR)
        if not value:
            raise ValueError(
                "AzureResult needs a connection string: give connection_string= or "
                f"connection_string_secret=, or set the environment variable {ENV_VAR}"
            )
        return await connection_string_from("AzureResult", value, None)

    async def _service(self) -> AbstractAsyncContextManager[BlobServiceClient]:
        return blob_service(await self._connection_string())

    def _where(self, location: str) -> str:
        return f"blob {location!r} in container {self.container!r}"

    async def exists(self, location: str) -> bool:
        """Tell whether a blob exists at ``location``.

        Args:
            location: A formatted location (the blob's name).

        Returns:
            True if `read` would find a value there (False for a missing container too).

        Raises:
            OSError: Azure answered with another error than "not found".
        """
        from azure.core.exceptions import AzureError

        async with await self._service() as service:
            blob = service.get_blob_client(container=self.container, blob=_check_location(location))
            try:
                return bool(await blob.exists())
            except AzureError as exc:
                raise OSError(f"AzureResult: checking {self._where(location)} failed: {_text(exc)}") from None

    async def read(self, location: str) -> Any:
        """Read and deserialize the blob at ``location``.

        Args:
            location: A formatted location (the blob's name).

        Returns:
            The value.

        Raises:
            FileNotFoundError: There is no blob at ``location`` (or no such container).
            OSError: Azure answered with another error.
        """
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        async with await self._service() as service:
            blob = service.get_blob_client(container=self.container, blob=_check_location(location))
            try:
                downloader = await blob.download_blob()
                data = await downloader.readall()
            except ResourceNotFoundError as exc:
                missing = error_code(exc) == "ContainerNotFound"
                what = "no such container" if missing else "no such blob"
                raise FileNotFoundError(f"no result at {self._where(location)}: {what}") from None
            except AzureError as exc:
                raise OSError(f"AzureResult: reading {self._where(location)} failed: {_text(exc)}") from None
        return self.serializer.loads(data)

    async def write(self, value: Any, location: str) -> str:
        """Serialize ``value`` and store it at ``location``, replacing any blob there.

        Args:
            value: The value to store.
            location: A formatted location (the blob's name).

        Returns:
            ``location``.

        Raises:
            OSError: Azure refused the write (a missing container...).
        """
        from azure.core.exceptions import AzureError

        data = self.serializer.dumps(value)
        async with await self._service() as service:
            blob = service.get_blob_client(container=self.container, blob=_check_location(location))
            try:
                await blob.upload_blob(data, overwrite=True)
            except AzureError as exc:
                raise OSError(f"AzureResult: writing {self._where(location)} failed: {_text(exc)}") from None
        return location

    def __repr__(self) -> str:
        return f"AzureResult(container={self.container!r}, location={self.location!r}, serializer={self.serializer!r})"


def _text(exc: BaseException) -> str:
    code = error_code(exc)
    message = str(getattr(exc, "message", None) or exc).strip()
    first = message.splitlines()[0] if message else type(exc).__name__
    return f"{code}: {first}" if code else first


def _check_location(location: str) -> str:
    if not isinstance(location, str):
        raise TypeError(f"a result location must be a str, not {type(location).__name__}")
    if not location:
        raise ValueError("a result location must not be empty")
    return location
