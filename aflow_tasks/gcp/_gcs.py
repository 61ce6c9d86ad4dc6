"""What the Cloud Storage tasks and `GCSResult` share: the run's ``Storage`` client, errors, uploads."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import mimetypes
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from aflow import Task
from aflow.integration import ClientFactory, Failure, map_errors, retry_after_seconds
from aflow.secrets import register

from ._auth import credentials_key, emulator_host, resolve_credentials, session, token_for

if TYPE_CHECKING:
    from gcloud.aio.storage import Storage

EMULATOR_VARIABLE = "STORAGE_EMULATOR_HOST"
"""The secret read when a task gets no ``credentials`` (as Prefect 1); unset means ADC."""

_CHUNK_UNIT = 256 * 1024
Timeout = float | tuple[float, float]


def need(value: Any, task: str, arg: str) -> None:
    if value is None or (arg != "data" and value == ""):
        raise ValueError(
            f"{task} needs {arg}: give it at initialization ({task}({arg}=...)) or to the call ({arg}=...)"
        )


def check_chunk_size(chunk_size: int | None) -> int | None:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0 or chunk_size % _CHUNK_UNIT:
        raise ValueError(f"chunk_size must be a positive multiple of 256 KiB ({_CHUNK_UNIT} bytes), got {chunk_size!r}")
    return chunk_size


def client_timeout_of(request_timeout: Timeout | None) -> Any:
    import aiohttp

    if request_timeout is None:
        return aiohttp.ClientTimeout(total=None)
    if isinstance(request_timeout, tuple):
        connect, read = request_timeout
        return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read)
    if isinstance(request_timeout, bool) or not isinstance(request_timeout, int | float) or request_timeout <= 0:
        raise ValueError(f"request_timeout must be positive seconds or (connect, read), got {request_timeout!r}")
    return aiohttp.ClientTimeout(total=float(request_timeout))


@asynccontextmanager
async def _open_storage(credentials: Mapping[str, Any] | str | None, emulated: bool) -> AsyncIterator[Storage]:
    from gcloud.aio.storage import Storage

    async with session() as client:
        token = token_for(credentials, client, emulated=emulated)
        # Storage reads STORAGE_EMULATOR_HOST itself (and then sends no Authorization header)
        yield Storage(session=client, token=token)  # type: ignore[arg-type]


storages: ClientFactory[[Mapping[str, Any] | str | None, bool], Storage] = ClientFactory(
    "aflow_tasks.gcp.storage", _open_storage
)
"""One ``gcloud.aio.storage.Storage`` per credentials per flow run, on the run's session; its opener
takes ``(credentials, emulated)`` (``storages.override(opener)`` in tests)."""


@asynccontextmanager
async def storage_client(credentials: Any) -> AsyncIterator[Storage]:
    """The flow run's ``Storage`` for ``credentials`` (see `resolve_credentials`).

    Args:
        credentials: A service-account key, a lazy value giving one, or None.
    """
    creds = await resolve_credentials(credentials)
    host = emulator_host(EMULATOR_VARIABLE)
    key = ("storage", credentials_key(creds), host)
    async with storages.client(key, creds, host is not None) as storage:
        yield storage


def gcs_failure(exc: BaseException, action: str) -> Failure:
    """What an aiohttp/gcloud-aio error means: transient for 408/429/5xx, timeouts and lost connections.

    Args:
        exc: The error.
        action: What was being done, for the message (``"GCS upload to gs://b/k"``).
    """
    import aiohttp

    if isinstance(exc, aiohttp.ClientResponseError):
        status = exc.status
        message = (exc.message or "").strip() or "no message"
        retry_after = None
        if exc.headers is not None:
            retry_after = retry_after_seconds(exc.headers.get("Retry-After"), date=exc.headers.get("Date"))
        transient = status in (408, 429) or status >= 500
        return Failure(f"{action} failed: HTTP {status}: {message}", transient=transient, retry_after=retry_after)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return Failure(f"{action} failed: timed out", transient=True)
    return Failure(f"{action} failed: {type(exc).__name__}: {exc}", transient=True)


def gcs_errors(action: str) -> map_errors:
    """Turn aiohttp errors raised in the block into `FAIL`/`RETRY` (see `gcs_failure`).

    The original error is not chained: its request holds the Authorization header.

    Args:
        action: What the block does, for messages.
    """
    import aiohttp

    return map_errors((aiohttp.ClientError, asyncio.TimeoutError), lambda exc: gcs_failure(exc, action), chain=False)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an aiohttp ``ClientResponseError`` (None for other errors)."""
    import aiohttp

    return exc.status if isinstance(exc, aiohttp.ClientResponseError) else None


async def bucket_exists(storage: Storage, bucket: str, client_timeout: Any) -> bool:
    """Whether ``bucket`` exists (a 404 says no; other errors propagate).

    Args:
        storage: The client.
        bucket: The bucket's name.
        client_timeout: An ``aiohttp.ClientTimeout``.
    """
    try:
        await storage.get_bucket_metadata(bucket, timeout=client_timeout)
    except Exception as exc:
        if status_of(exc) == 404:
            return False
        raise
    return True


async def make_bucket(storage: Storage, bucket: str, project: str | None, client_timeout: Any, task: Task) -> None:
    """Create ``bucket`` in ``project`` (else the credentials' project); one made meanwhile is fine.

    Args:
        storage: The client.
        bucket: The bucket's name.
        project: The project, or None.
        client_timeout: An ``aiohttp.ClientTimeout``.
        task: The task creating it (its name and logger).
    """
    import aiohttp

    if project is None and not storage._api_is_dev:
        project = await storage.token.get_project()
    if project is None and not storage._api_is_dev:  # an emulator takes any project
        raise ValueError(f"{type(task).__name__} needs project to create the bucket {bucket!r}")
    task.logger.debug("bucket %s not found; creating it", bucket)
    headers = {**await storage._headers(), "Content-Type": "application/json; charset=UTF-8"}
    url = f"{storage._api_root}/storage/v1/b"
    body = json.dumps({"name": bucket})
    try:
        params = {"project": project or "emulator"}
        await storage.session.post(url, headers=headers, params=params, data=body, timeout=client_timeout)
    except aiohttp.ClientResponseError as exc:  # created meanwhile by another task: fine
        if exc.status != 409:
            raise


def encryption_headers(encryption_key: str | bytes | None) -> dict[str, str]:
    """The customer-supplied encryption key headers (the key: 32 bytes, or their base64)."""
    if encryption_key is None:
        return {}
    key = encryption_key.encode() if isinstance(encryption_key, str) else bytes(encryption_key)
    if len(key) != 32:
        try:
            key = base64.b64decode(key, validate=True)
        except ValueError:
            key = b""
    if len(key) != 32:
        raise ValueError("encryption_key must be 32 bytes (AES-256), raw or base64-encoded")
    encoded = base64.b64encode(key).decode()
    register([encoded, encryption_key if isinstance(encryption_key, str) else ""])
    return {
        "x-goog-encryption-algorithm": "AES256",
        "x-goog-encryption-key": encoded,
        "x-goog-encryption-key-sha256": base64.b64encode(hashlib.sha256(key).digest()).decode(),
    }


def as_bytes(data: Any) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, io.BytesIO):
        return data.read()
    raise TypeError(f"data must be str, bytes or BytesIO: got {type(data).__name__} instead")


def content_type_for(blob: str, data: Any, content_type: str | None) -> str:
    if content_type:
        return content_type
    guessed = mimetypes.guess_type(blob)[0]
    if guessed:
        return guessed
    return "text/plain; charset=utf-8" if isinstance(data, str) else "application/octet-stream"


async def upload_bytes(
    storage: Storage,
    bucket: str,
    blob: str,
    body: bytes,
    *,
    content_type: str,
    content_encoding: str | None = None,
    headers: Mapping[str, str] | None = None,
    resumable: bool | None = None,
    client_timeout: Any = None,
) -> dict[str, Any]:
    """Upload ``body`` to ``gs://bucket/blob`` in one request (a resumable upload when asked or over 5 MiB).

    The content type and encoding are set in the same request (a content encoding, an empty body
    or JSON go up as a multipart upload, with the object's metadata).

    Args:
        storage: The client.
        bucket: The bucket.
        blob: The object name.
        body: The data.
        content_type: Its ``Content-Type``.
        content_encoding: Its ``Content-Encoding`` (``"gzip"``...), or None.
        headers: More request headers (encryption keys).
        resumable: True for a resumable upload; None lets gcloud-aio decide by size.
        client_timeout: An ``aiohttp.ClientTimeout``.
    """
    metadata: dict[str, Any] | None = None
    if content_encoding or not body or content_type.startswith("application/json"):
        # metadata makes it a multipart upload. A plain media upload (one request, the type in its
        # header) is the common case; gcp-storage-emulator fails on media uploads of JSON and of
        # nothing, which a multipart upload (valid on GCS too) sidesteps. gcloud-aio turns
        # "Content-Type" into the JSON field contentType ("contentType" would become contenttype).
        metadata = {"Content-Type": content_type}
        if content_encoding:
            metadata["Content-Encoding"] = content_encoding
    return await storage.upload(
        bucket,
        blob,
        body,
        content_type=content_type,
        metadata=metadata,
        headers=dict(headers or {}),
        force_resumable_upload=resumable,
        timeout=client_timeout,
    )


def project_of(credentials: Any) -> str | None:
    if isinstance(credentials, Mapping):
        project = credentials.get("project_id")
        return str(project) if project else None
    return None


async def object_exists(storage: Storage, bucket: str, blob: str, client_timeout: Any) -> bool:
    try:
        await storage.download_metadata(bucket, blob, timeout=client_timeout)
    except Exception as exc:
        if status_of(exc) in (404, 410):
            return False
        raise
    return True
