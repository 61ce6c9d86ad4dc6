"""`GCSResult`: task results stored as objects in a Google Cloud Storage bucket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, final

from aflow.results import Result, Serializer

from ._gcs import gcs_failure, status_of, storage_client, upload_bytes

__all__ = ("GCSResult",)


@final
class GCSResult(Result):
    """Results stored as objects in a Google Cloud Storage bucket: usable as a checkpoint store and for targets.

    The formatted location is the object name. Inside a flow run the result uses the run's shared
    session (`aflow_tasks.gcp._auth`); a write is one upload, so readers see the old object or
    the new one, and a write replaces what was there. ``STORAGE_EMULATOR_HOST`` is honoured.

    Args:
        bucket: The bucket.
        location: A location template or callable (see `aflow.results.Result`).
        serializer: How values become bytes; None for a `aflow.results.PickleSerializer`.
        credentials: A service-account key (a dict, its JSON text, or a lazy `aflow.Secret`);
            None for the ``GCP_CREDENTIALS`` secret, else Application Default Credentials.
        request_timeout: Seconds to wait for each request. Defaults to 60.
    """

    def __init__(
        self,
        bucket: str,
        *,
        location: str | Callable[..., str] | None = None,
        serializer: Serializer | None = None,
        credentials: Any = None,
        request_timeout: float = 60,
    ) -> None:
        if not bucket:
            raise ValueError("GCSResult needs a bucket")
        super().__init__(location=location, serializer=serializer)
        self.bucket = bucket
        self.credentials = credentials
        self.request_timeout = request_timeout

    def _timeout(self) -> Any:
        import aiohttp

        return aiohttp.ClientTimeout(total=self.request_timeout)

    def _error(self, exc: Exception, doing: str, location: str) -> OSError:
        failure = gcs_failure(exc, f"GCSResult: {doing} gs://{self.bucket}/{location}")
        return OSError(failure.message)

    async def exists(self, location: str) -> bool:
        """Tell whether an object exists at ``location``.

        Args:
            location: A formatted location (the object name).

        Returns:
            True if `read` would find a value there.

        Raises:
            OSError: GCS answered with another error than "not found".
        """
        name = _check_key(location)
        async with storage_client(self.credentials) as storage:
            try:
                await storage.download_metadata(self.bucket, name, timeout=self._timeout())
            except Exception as exc:
                if status_of(exc) in (404, 410):
                    return False
                if not _is_client_error(exc):
                    raise
                raise self._error(exc, "checking", name) from None
        return True

    async def read(self, location: str) -> Any:
        """Read and deserialize the object at ``location``.

        Args:
            location: A formatted location (the object name).

        Returns:
            The value.

        Raises:
            FileNotFoundError: There is no object (or no bucket) at ``location``.
            OSError: GCS answered with another error.
        """
        name = _check_key(location)
        async with storage_client(self.credentials) as storage:
            try:
                data = await storage.download(self.bucket, name, timeout=self._timeout())
            except Exception as exc:
                if status_of(exc) in (404, 410):
                    raise FileNotFoundError(f"no result at gs://{self.bucket}/{name}") from None
                if not _is_client_error(exc):
                    raise
                raise self._error(exc, "reading", name) from None
        return self.serializer.loads(data)

    async def write(self, value: Any, location: str) -> str:
        """Serialize ``value`` and store it at ``location`` (one upload, replacing any object there).

        Args:
            value: The value to store.
            location: A formatted location (the object name).

        Returns:
            ``location``.

        Raises:
            OSError: GCS refused the write (a missing bucket included).
        """
        name = _check_key(location)
        data = self.serializer.dumps(value)
        async with storage_client(self.credentials) as storage:
            try:
                await upload_bytes(
                    storage,
                    self.bucket,
                    name,
                    data,
                    content_type="application/octet-stream",
                    client_timeout=self._timeout(),
                )
            except Exception as exc:
                if not _is_client_error(exc):
                    raise
                raise self._error(exc, "writing", name) from None
        return location

    def __repr__(self) -> str:
        return f"GCSResult(bucket={self.bucket!r}, location={self.location!r}, serializer={self.serializer!r})"


def _is_client_error(exc: Exception) -> bool:
    import asyncio

    import aiohttp

    return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError)


def _check_key(location: str) -> str:
    if not isinstance(location, str):
        raise TypeError(f"a result location must be a str, not {type(location).__name__}")
    if not location:
        raise ValueError("a result location must not be empty")
    return location
