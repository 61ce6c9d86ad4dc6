"""Redis tasks on ``redis.asyncio``: set a key, get a key, or run any command line.

The tasks keep Prefect 1's names and arguments (``prefect.tasks.redis``): the connection
(``host``, ``port``, ``db``, ``password_secret``, ``redis_connection_params``) is set at
initialization only; the key, value and command may come from the call too.

Every Redis task of a flow run with the same connection settings (and password) shares one
client, and so one connection pool, through `clients` (an `aflow.integration.ClientFactory`);
the run closes it when it ends, on failure and cancellation too. The pool opens at most
``max_connections`` connections (default `DEFAULT_MAX_CONNECTIONS`, or
``redis_connection_params={"max_connections": n}``): more tasks at once wait for a free one.

The password is the value of the secret named by ``password_secret`` (see `aflow.Secret`: the
run context's ``secrets``, else the environment variable ``AFLOW__CONTEXT__SECRETS__<NAME>``),
read when the task runs; a secret that is not set means no password. It is registered for
redaction, so it never shows in a log record or a state message.

A reply the server refuses (``WRONGTYPE``, ``NOAUTH``, a wrong password) fails the task with the
server's message; a connection error or timeout is transient: the task retries while it has
``max_retries`` left (`aflow.integration.retry_or_fail`), then fails. redis-py itself tries a
command once more at once on a connection error (a pooled connection the server closed), not
with its default backoff: give ``redis_connection_params={"retry": ...}`` for another policy. A cancelled task (a flow
cancelled, a task ``timeout``) closes the connection it was using, so a blocking command such as
``BLPOP`` ends on the server too.

Needs the ``redis`` extra: ``pip install aflow-engine[redis]``.
"""

from __future__ import annotations

import hashlib
import logging
import shlex
from collections.abc import AsyncIterator, Hashable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio

from aflow import Task, defaults_from_attrs
from aflow.exceptions import SecretNotFound
from aflow.integration import ClientFactory, Failure, cleanup, map_errors
from aflow.secrets import Secret, redact, register

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ("DEFAULT_MAX_CONNECTIONS", "RedisClient", "RedisExecute", "RedisGet", "RedisSet", "clients")

DEFAULT_MAX_CONNECTIONS = 50
"""Connections a flow run's pool opens at most for one configuration, unless
``redis_connection_params`` sets ``max_connections``."""

logger = logging.getLogger("aflow_tasks.redis")


def _redis_asyncio() -> Any:
    try:
        import redis.asyncio
    except ImportError as exc:
        raise ImportError("redis tasks need redis: pip install aflow-engine[redis]") from exc
    return redis.asyncio


@dataclass(frozen=True, slots=True)
class RedisClient:
    """A flow run's client for one configuration: what `clients` hands out.

    Args:
        client: The ``redis.asyncio.Redis`` client (with redis-py's reply parsing).
        raw: A client on the same connection pool that returns replies as the server sent them
            (no per-command parsing); `RedisExecute` uses it.
        slots: Bounds the commands in flight to the pool's ``max_connections``.
    """

    client: redis.asyncio.Redis
    raw: redis.asyncio.Redis
    slots: anyio.Semaphore


@asynccontextmanager
async def _open_client(
    host: str, port: int, db: int, password: str | None, params: Mapping[str, Any]
) -> AsyncIterator[RedisClient]:
    """A new client and its connection pool (the default opener of `clients`), closed on exit."""
    aioredis = _redis_asyncio()
    options = dict(params)
    limit = options.pop("max_connections", None) or DEFAULT_MAX_CONNECTIONS
    if "retry" not in options:  # once at once (a pooled connection the server dropped), then the task's retries
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options["retry"] = Retry(NoBackoff(), 1)
    client = aioredis.Redis(host=host, port=port, db=db, password=password, max_connections=limit, **options)
    raw = aioredis.Redis(connection_pool=client.connection_pool)
    raw.response_callbacks = {}  # replies as the server sent them (Prefect 1's execute_command)
    try:
        yield RedisClient(client=client, raw=raw, slots=anyio.Semaphore(limit))
    finally:
        await cleanup(client.aclose, f"close the Redis client of {host}:{port}/{db}", logger)


clients: ClientFactory[[str, int, int, str | None, Mapping[str, Any]], RedisClient] = ClientFactory(
    "aflow_tasks.redis", _open_client
)
"""The Redis tasks' client factory: one `RedisClient` per configuration per flow run. Its opener
takes ``(host, port, db, password, redis_connection_params)``; tests count or replace clients
with ``clients.override(...)`` (see `aflow.integration.ClientFactory`)."""


def _hashable(value: Any) -> Hashable:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value  # type: ignore[no-any-return]


def _password(secret_name: str | None) -> str | None:
    """The value of the secret ``secret_name`` as a string, or None when it is not set."""
    if not secret_name:
        return None
    try:
        value = Secret(secret_name).get()
    except SecretNotFound:
        return None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"the secret {secret_name!r} (the Redis password) must be a string")
    password = str(value)
    register(password)
    return password


def _failure(label: str) -> Any:
    errors = _redis_asyncio()  # redis.asyncio re-exports redis-py's exceptions

    def classify(exc: Exception) -> Failure:
        text = redact(str(exc) or type(exc).__name__)
        if text != str(exc):  # the server echoed a secret: the chained exception must not show it
            exc.args = (text,)
        if isinstance(exc, errors.AuthenticationError):
            return Failure(f"{label}: Redis refused the credentials: {text}")
        if isinstance(exc, (errors.ConnectionError, errors.TimeoutError)):
            return Failure(f"{label}: could not talk to Redis ({type(exc).__name__}): {text}", transient=True)
        return Failure(f"{label}: Redis said: {text}")

    return map_errors(errors.RedisError, classify)


class _RedisTask(Task):
    """The connection settings shared by the Redis tasks."""

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        password_secret: str | None = "REDIS_PASSWORD",
        redis_connection_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.host = host
        self.port = port
        self.db = db
        self.password_secret = password_secret
        self.redis_connection_params = redis_connection_params or {}
        super().__init__(**kwargs)

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[RedisClient]:
        password = _password(self.password_secret)
        params = dict(self.redis_connection_params)
        digest = hashlib.sha256(password.encode()).hexdigest() if password is not None else None
        key = (self.host, self.port, self.db, digest, tuple(sorted((k, _hashable(v)) for k, v in params.items())))
        async with (
            clients.client(key, self.host, self.port, self.db, password, params) as redis_client,
            redis_client.slots,
        ):
            yield redis_client

    @property
    def _label(self) -> str:
        return f"{type(self).__name__} on {self.host}:{self.port}/{self.db}"


class RedisSet(_RedisTask):
    """Set a Redis key to a value (``SET``), with an optional expiry and condition.

    Args:
        host: The Redis host (default ``"localhost"``).
        port: The Redis port (default 6379).
        db: The database index (default 0).
        password_secret: The name of the secret that holds the password (default
            ``"REDIS_PASSWORD"``); a secret that is not set means no password.
        redis_key: The key to set (default None: give it to the call).
        redis_val: The value to set: a string, bytes or a number (default None: give it to the call).
        redis_connection_params: More keyword arguments of ``redis.asyncio.Redis``
            (``decode_responses``, ``socket_timeout``, ``ssl``, ``max_connections``...); default None.
        ex: Expire the key after this many seconds (default None: no expiry).
        px: Expire the key after this many milliseconds (default None: no expiry).
        nx: Set the key only if it does not exist (default False).
        xx: Set the key only if it already exists (default False).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        password_secret: str | None = "REDIS_PASSWORD",
        redis_key: str | None = None,
        redis_val: Any = None,
        redis_connection_params: dict[str, Any] | None = None,
        ex: int | timedelta | None = None,
        px: int | timedelta | None = None,
        nx: bool = False,
        xx: bool = False,
        **kwargs: Any,
    ) -> None:
        self.redis_key = redis_key
        self.redis_val = redis_val
        self.ex = ex
        self.px = px
        self.nx = nx
        self.xx = xx
        super().__init__(host, port, db, password_secret, redis_connection_params, **kwargs)

    @defaults_from_attrs("redis_key", "redis_val", "ex", "px", "nx", "xx")
    async def run(
        self,
        redis_key: str | None = None,
        redis_val: Any = None,
        ex: int | timedelta | None = None,
        px: int | timedelta | None = None,
        nx: bool = False,
        xx: bool = False,
    ) -> bool | None:
        """Set the key.

        Args:
            redis_key: The key (default None: the one given at initialization).
            redis_val: The value (default None: the one given at initialization).
            ex: Expiry in seconds (default None: the initialization's, or none).
            px: Expiry in milliseconds (default None: the initialization's, or none).
            nx: Only if the key does not exist (default False: the initialization's).
            xx: Only if the key exists (default False: the initialization's).

        Returns:
            True when the key was set; None when ``nx`` or ``xx`` prevented it.

        Raises:
            ValueError: If ``redis_key`` or ``redis_val`` is missing.
        """
        missing = [name for name, value in (("redis_key", redis_key), ("redis_val", redis_val)) if value is None]
        if missing or redis_key is None:
            raise ValueError(f"redis_key and redis_val must be provided: {' and '.join(missing)} missing")
        with _failure(self._label):
            async with self._client() as redis_client:
                result = await redis_client.client.set(redis_key, redis_val, ex=ex, px=px, nx=nx, xx=xx)
        return True if result else None


class RedisGet(_RedisTask):
    """Get the value of a Redis key (``GET``).

    Args:
        host: The Redis host (default ``"localhost"``).
        port: The Redis port (default 6379).
        db: The database index (default 0).
        password_secret: The name of the secret that holds the password (default
            ``"REDIS_PASSWORD"``); a secret that is not set means no password.
        redis_connection_params: More keyword arguments of ``redis.asyncio.Redis``
            (``decode_responses``...); default None.
        redis_key: The key to read (default None: give it to the call).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        password_secret: str | None = "REDIS_PASSWORD",
        redis_connection_params: dict[str, Any] | None = None,
        redis_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.redis_key = redis_key
        super().__init__(host, port, db, password_secret, redis_connection_params, **kwargs)

    @defaults_from_attrs("redis_key")
    async def run(self, redis_key: str | None = None) -> Any:
        """Read the key.

        Args:
            redis_key: The key (default None: the one given at initialization).

        Returns:
            The value as bytes (a str with ``decode_responses=True``), or None if the key is not set.

        Raises:
            ValueError: If ``redis_key`` is missing.
        """
        if not redis_key:
            raise ValueError("redis_key must be provided")
        with _failure(self._label):
            async with self._client() as redis_client:
                return await redis_client.client.get(redis_key)


class RedisExecute(_RedisTask):
    """Run one Redis command line, such as ``"INCR counter"`` or ``"HSET h f 'a b'"``.

    The line is split as a shell does (`shlex.split`): quote a value that holds spaces.
    The reply comes back as the server sent it (bytes, or str with ``decode_responses``;
    integers; lists), without redis-py's per-command parsing.

    Args:
        host: The Redis host (default ``"localhost"``).
        port: The Redis port (default 6379).
        db: The database index (default 0).
        password_secret: The name of the secret that holds the password (default
            ``"REDIS_PASSWORD"``); a secret that is not set means no password.
        redis_connection_params: More keyword arguments of ``redis.asyncio.Redis``
            (``decode_responses``...); default None.
        redis_cmd: The command line (default None: give it to the call).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        password_secret: str | None = "REDIS_PASSWORD",
        redis_connection_params: dict[str, Any] | None = None,
        redis_cmd: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.redis_cmd = redis_cmd
        super().__init__(host, port, db, password_secret, redis_connection_params, **kwargs)

    @defaults_from_attrs("redis_cmd")
    async def run(self, redis_cmd: str | None = None) -> Any:
        """Run the command.

        Args:
            redis_cmd: The command line (default None: the one given at initialization).

        Returns:
            The server's reply.

        Raises:
            ValueError: If ``redis_cmd`` is missing, or cannot be split (an unclosed quote).
        """
        if not redis_cmd or not redis_cmd.strip():
            raise ValueError("A redis command must be specified: redis_cmd is missing")
        try:
            args = shlex.split(redis_cmd)
        except ValueError as exc:
            raise ValueError(f"redis_cmd cannot be split into words: {exc}") from None
        with _failure(self._label):
            async with self._client() as redis_client:
                return await redis_client.raw.execute_command(*args)  # type: ignore[no-untyped-call]
