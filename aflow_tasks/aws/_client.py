"""aiobotocore sessions and clients shared by a flow run, credentials, and error mapping.

Inside a flow run, one aiobotocore session is opened for the run (`aflow.run_resource`), and one
client per (service, region, endpoint, credentials identity, client kwargs): every AWS task of the
run that asks for the same combination gets the same client, closed when the run ends (also on
failure and cancellation). Outside a flow run, a task opens a session and a client of its own and
closes them when it returns.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from aflow import Secret, Task, run_resource
from aflow.exceptions import SecretNotFound
from aflow.integration import ClientFactory, Failure, is_lazy, map_errors, resolve_lazy
from aflow.integration import cleanup as kit_cleanup
from aflow.secrets import register
from aflow.signals import FAIL, RETRY

__all__ = (
    "AWSTask",
    "aws_client",
    "aws_errors",
    "aws_failure",
    "cleanup",
    "clients",
    "error_code",
    "error_signal",
    "require_aiobotocore",
    "resolve_credentials",
)

CREDENTIALS_SECRET = "AWS_CREDENTIALS"
"""The context secret read when a task gets no ``credentials``."""

_CREDENTIAL_KEYS = {"ACCESS_KEY": "aws_access_key_id", "SECRET_ACCESS_KEY": "aws_secret_access_key"}
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
    }
)


def require_aiobotocore() -> None:
    """Raise a helpful ImportError when aiobotocore is not installed."""
    try:
        import aiobotocore.session  # type: ignore[import-untyped]  # noqa: F401
    except ImportError as exc:
        raise ImportError("aws tasks need aiobotocore: pip install aflow-engine[aws]") from exc


async def resolve_credentials(credentials: Any) -> dict[str, str] | None:
    """Return client keyword arguments for ``credentials``, or None for botocore's default chain.

    ``credentials`` is a dict with ``ACCESS_KEY``, ``SECRET_ACCESS_KEY`` and optionally
    ``SESSION_TOKEN`` (it may be lazy, such as an `aflow.Secret`). When it is None, the
    ``AWS_CREDENTIALS`` secret of the run context (or of the environment) is used if set. The
    values are registered for redaction.

    Args:
        credentials: The credentials dict, a lazy value giving one, or None.

    Raises:
        ValueError: The dict lacks a required key or is not a dict.
    """
    if credentials is not None and is_lazy(credentials):
        credentials = await resolve_lazy(credentials)
    if credentials is None:
        try:
            credentials = Secret(CREDENTIALS_SECRET).get()
        except SecretNotFound:
            return None
        if credentials is not None and is_lazy(credentials):
            credentials = await resolve_lazy(credentials)
    if credentials is None:
        return None
    if not isinstance(credentials, Mapping):
        raise ValueError(
            "AWS credentials must be a dict with the keys ACCESS_KEY, SECRET_ACCESS_KEY "
            f"and optionally SESSION_TOKEN, not a {type(credentials).__name__}"
        )
    missing = [key for key in _CREDENTIAL_KEYS if not credentials.get(key)]
    if missing:
        raise ValueError(
            f"AWS credentials lack {', '.join(missing)}: give a dict with the keys ACCESS_KEY, "
            "SECRET_ACCESS_KEY and optionally SESSION_TOKEN"
        )
    out = {arg: str(credentials[key]) for key, arg in _CREDENTIAL_KEYS.items()}
    if credentials.get("SESSION_TOKEN"):
        out["aws_session_token"] = str(credentials["SESSION_TOKEN"])
    register([out["aws_secret_access_key"], out.get("aws_session_token", "")])
    return out


def _identity(credentials: Mapping[str, str] | None) -> str | None:
    """A digest naming the credentials without holding them (for client keys)."""
    if credentials is None:
        return None
    text = json.dumps(sorted(credentials.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def _freeze(value: Any) -> Hashable:
    """A hashable stand-in for a client keyword value (dicts, lists, botocore ``Config``)."""
    if isinstance(value, Mapping):
        return ("dict", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    if isinstance(value, list | tuple | set | frozenset):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    options = getattr(value, "_user_provided_options", None)
    if isinstance(options, Mapping):  # botocore.config.Config
        return (type(value).__qualname__, _freeze(options))
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value  # type: ignore[no-any-return]


@functools.cache
def _data_loader(data_path: str | None) -> Any:
    """The botocore loader of service models and endpoints for ``data_path``, one per process.

    A loader caches what it reads (the JSON of the service models, endpoints, partitions), and a
    new session makes a new loader: without sharing it, every flow run's session read and parsed
    them again, on the event loop (about 0.1 s of CPU for S3).
    """
    from botocore.loaders import create_loader  # type: ignore[import-untyped]

    return create_loader(data_path)


@asynccontextmanager
async def _open_session() -> AsyncIterator[Any]:
    from aiobotocore.session import get_session

    session = get_session()
    session.register_component("data_loader", _data_loader(session.get_config_variable("data_path")))
    yield session


@asynccontextmanager
async def _open_client(service: str, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
    """Open an aiobotocore client on the run's shared session (the default opener of `clients`)."""
    async with (
        run_resource(("aflow_tasks.aws.session",), _open_session) as session,
        session.create_client(service, **kwargs) as client,
    ):
        yield client


clients: ClientFactory[[str, dict[str, Any]], Any] = ClientFactory("aflow_tasks.aws", _open_client)
"""The AWS tasks' client factory: one client per (service, region, endpoint, credentials, client
kwargs) per flow run. Its opener takes ``(service, create_client_kwargs)``; tests inject clients
with ``clients.override(opener)`` or ``clients.use(client)`` (see `aflow.integration.ClientFactory`)."""


@asynccontextmanager
async def aws_client(
    service: str,
    *,
    credentials: Any = None,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    client_kwargs: Mapping[str, Any] | None = None,
) -> AsyncIterator[Any]:
    """The flow run's shared aiobotocore client for ``service``, as an async context manager.

    Inside a flow run, every use with the same service, region, endpoint, credentials and
    client kwargs gets the same client, closed when the run ends; outside one the block gets a
    client (and a session) of its own::

        async with aws_client("s3", credentials=creds) as s3:
            await s3.put_object(Bucket="b", Key="k", Body=b"x")

    Args:
        service: The botocore service name (``"s3"``, ``"lambda"``...).
        credentials: See `resolve_credentials`.
        region_name: The region (None: botocore's default configuration).
        endpoint_url: Another endpoint (an S3-compatible store, a local test server).
        client_kwargs: More ``create_client`` arguments (``config=botocore.config.Config(...)``...).
    """
    require_aiobotocore()
    creds = await resolve_credentials(credentials)
    kwargs: dict[str, Any] = dict(client_kwargs or {})
    if region_name is not None:
        kwargs["region_name"] = region_name
    if endpoint_url is not None:
        kwargs["endpoint_url"] = endpoint_url
    key = (
        service,
        region_name,
        endpoint_url,
        _identity(creds),
        _freeze(client_kwargs or {}),
    )
    if creds:
        kwargs.update(creds)
    async with clients.client(key, service, kwargs) as client:
        yield client


def aws_failure(exc: BaseException, action: str) -> Failure:
    """What a botocore error means: transient for throttling codes and 429/5xx answers.

    Args:
        exc: A ``botocore.exceptions.ClientError`` or ``BotoCoreError``.
        action: What was being done, for the message (``"S3 upload of s3://b/k"``).
    """
    from botocore.exceptions import ClientError  # type: ignore[import-untyped]

    if not isinstance(exc, ClientError):
        return Failure(f"{action} failed: {type(exc).__name__}: {exc}")
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    message = str(error.get("Message") or "").strip() or "no message"
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    retryable = code in _THROTTLING_CODES or (isinstance(status, int) and (status == 429 or status >= 500))
    return Failure(f"{action} failed: {code}: {message}", transient=retryable)


def error_signal(task: Task | None, exc: BaseException, action: str) -> FAIL | RETRY:
    """The signal for a botocore error: RETRY for throttling or 5xx while retries remain, else FAIL.

    Args:
        task: The task that made the call (its ``max_retries``), or None (never retried).
        exc: A ``botocore.exceptions.ClientError`` or ``BotoCoreError``.
        action: What was being done, for the message (``"S3 upload of s3://b/k"``).
    """
    failure = aws_failure(exc, action)
    if task is None:
        return failure.fail(failure.message)
    return failure.signal(task)


def aws_errors(task: Task | None, action: str) -> map_errors:
    """Turn botocore errors raised in the block into `FAIL`/`RETRY` (see `error_signal`).

    Use it with ``with`` or ``async with``.

    Args:
        task: The task making the calls, or None (never retried).
        action: What the block does, for messages.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    def classify(exc: BaseException) -> Failure:
        failure = aws_failure(exc, action)
        return failure if task is not None else Failure(failure.message)

    return map_errors((ClientError, BotoCoreError), classify, task=task)


async def cleanup(
    call: Callable[[], Awaitable[Any]],
    what: str,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    *,
    expected: tuple[str, ...] = (),
    limit: float = 30,
) -> None:
    """Make a cleanup call after a failure or a cancellation: shielded, bounded, never raising.

    `aflow.integration.cleanup`, quiet (DEBUG) for the AWS error codes in ``expected``.

    Args:
        call: Makes the call (stop an execution, terminate a job, abort an upload).
        what: What it does, for the log ("stop execution arn:...").
        logger: Where a failure goes.
        expected: Error codes that only mean there was nothing to clean up.
        limit: Seconds to wait for it.
    """
    await kit_cleanup(call, what, logger, expected=lambda exc: error_code(exc) in expected, limit=limit)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a ``ClientError`` (None for other exceptions)."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        code = response.get("Error", {}).get("Code")
        return None if code is None else str(code)
    return None


class AWSTask(Task):
    """Base of the AWS tasks: the client settings every one of them takes.

    Args:
        credentials: A dict with ``ACCESS_KEY``, ``SECRET_ACCESS_KEY`` and optionally
            ``SESSION_TOKEN``, or a lazy value giving one (an `aflow.Secret`). Defaults to None:
            the ``AWS_CREDENTIALS`` secret if set, else botocore's default chain.
        region_name: The AWS region. Defaults to None (botocore's configuration).
        endpoint_url: Another endpoint URL (S3-compatible stores, local test servers). Defaults
            to None.
        client_kwargs: More arguments for the client (``config=botocore.config.Config(...)``).
            Defaults to None.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        credentials: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        require_aiobotocore()
        self.credentials = credentials
        self.region_name = region_name
        self.endpoint_url = endpoint_url
        self.client_kwargs = dict(client_kwargs or {})
        super().__init__(**kwargs)

    def _client(self, service: str, credentials: Any) -> AbstractAsyncContextManager[Any]:
        return aws_client(
            service,
            credentials=credentials,
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            client_kwargs=self.client_kwargs,
        )
