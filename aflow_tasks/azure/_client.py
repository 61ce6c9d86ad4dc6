"""The Azure Blob Storage client of a flow run, connection strings, and error mapping.

Inside a flow run, one ``azure.storage.blob.aio.BlobServiceClient`` per connection string is
opened on first use (through `clients`, an `aflow.integration.ClientFactory` keyed by a digest
of the string, never the string) and closed when the run ends; outside a run each use opens and
closes a client of its own. Every connection string used is registered for redaction, whole and
its ``AccountKey``/``SharedAccessSignature``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from aflow import Secret
from aflow.integration import ClientFactory, Failure, is_lazy, map_errors, resolve_lazy, retry_after_seconds
from aflow.secrets import register

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobServiceClient

__all__ = (
    "azure_errors",
    "azure_failure",
    "blob_service",
    "clients",
    "connection_string_from",
    "error_code",
    "register_connection_string",
    "require_azure",
)

_SECRET_PARTS = ("accountkey", "sharedaccesssignature")


def require_azure() -> None:
    """Raise a helpful ImportError when azure-storage-blob is not installed."""
    try:
        import azure.storage.blob.aio  # noqa: F401
    except ImportError as exc:
        raise ImportError("azure tasks need azure-storage-blob: pip install aflow-engine[azure]") from exc


def register_connection_string(connection_string: str) -> None:
    """Register a connection string, and its account key or SAS token, for redaction.

    Args:
        connection_string: An Azure Storage connection string.
    """
    secrets = [connection_string]
    for part in connection_string.split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() in _SECRET_PARTS and value:
            secrets.append(value)
    register(secrets)


async def connection_string_from(who: str, connection_string: Any, secret_name: str | None) -> str:
    """The connection string to use: ``connection_string`` (a str or lazy value) wins, else the secret.

    Args:
        who: The task or result, for messages.
        connection_string: A connection string, a lazy value giving one (an `aflow.Secret`), or None.
        secret_name: The name of the `aflow.Secret` holding it, read when ``connection_string`` is None.

    Raises:
        ValueError: Neither is given, or the value is not a non-empty str.
        aflow.exceptions.SecretNotFound: The named secret is not set.
    """
    value = connection_string
    if value is not None and is_lazy(value):
        value = await resolve_lazy(value)
    if value is None:
        if not secret_name:
            raise ValueError(
                f"{who} needs a connection string: give connection_string= or the name of the secret "
                "holding it (azure_credentials_secret=)"
            )
        value = Secret(secret_name).get()
        if value is not None and is_lazy(value):
            value = await resolve_lazy(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{who} needs a connection string (a non-empty str), got a {type(value).__name__}")
    register_connection_string(value)
    return value


@asynccontextmanager
async def _open_service(connection_string: str) -> AsyncIterator[BlobServiceClient]:
    """Open a ``BlobServiceClient`` (the default opener of `clients`), closed on exit."""
    from azure.storage.blob.aio import BlobServiceClient

    # no retries inside the SDK (its storage policy waits 15 s and more): a task's max_retries
    # decide, through aflow.integration.retry_or_fail
    client = BlobServiceClient.from_connection_string(connection_string, retry_total=0)
    try:
        yield client
    finally:
        await client.close()


clients: ClientFactory[[str], BlobServiceClient] = ClientFactory("aflow_tasks.azure", _open_service)
"""The Azure tasks' client factory: one ``BlobServiceClient`` per connection string per flow run.
Its opener takes ``(connection_string)``; tests inject clients with ``clients.override(opener)``
or ``clients.use(client)`` (see `aflow.integration.ClientFactory`)."""


def blob_service(connection_string: str) -> AbstractAsyncContextManager[BlobServiceClient]:
    """The flow run's ``BlobServiceClient`` for ``connection_string``, as an async context manager.

    Args:
        connection_string: An Azure Storage connection string (registered for redaction here).
    """
    require_azure()
    register_connection_string(connection_string)
    digest = hashlib.sha256(connection_string.encode()).hexdigest()
    return clients.client(("blob", digest), connection_string)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def error_code(exc: BaseException) -> str | None:
    """The storage error code (``BlobNotFound``...) of an azure-core error, as a plain str."""
    code = getattr(exc, "error_code", None)
    if code is None:
        return None
    return str(getattr(code, "value", code))


def azure_failure(exc: BaseException, action: str) -> Failure:
    """What an azure-core error means: transient for 429, 5xx and connection failures.

    Args:
        exc: An ``azure.core.exceptions.AzureError``.
        action: What was being done, for the message (``"Azure download of blob 'b' ..."``).
    """
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        known = error_code(exc)
        code = known or (str(status) if status is not None else "Error")
        message = _first_line(str(exc.message or "")) or _first_line(exc.reason or "") or "no message"
        retry_after = None
        response: Any = exc.response
        if response is not None:
            headers = response.headers
            retry_after = retry_after_seconds(headers.get("Retry-After"), date=headers.get("Date"))
        transient = status is not None and (status == 429 or status >= 500)
        return Failure(f"{action} failed: {code}: {message}", transient=transient, retry_after=retry_after)
    transient = isinstance(exc, ServiceRequestError | ServiceResponseError)
    return Failure(f"{action} failed: {type(exc).__name__}: {_first_line(str(exc))}", transient=transient)


def azure_errors(action: str, hint: dict[str, str] | None = None) -> map_errors:
    """Turn azure-core errors raised in the block into `FAIL`/`RETRY` (429/5xx retried).

    Args:
        action: What the block does, for messages.
        hint: Words appended to the message for some error codes (``{"BlobAlreadyExists": ...}``).
    """
    from azure.core.exceptions import AzureError

    def classify(exc: BaseException) -> Failure:
        failure = azure_failure(exc, action)
        code = error_code(exc)
        if hint and code in hint:
            return Failure(f"{failure.message} ({hint[code]})", failure.transient, failure.retry_after)
        return failure

    return map_errors(AzureError, classify)
