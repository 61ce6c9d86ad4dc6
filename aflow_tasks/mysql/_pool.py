"""The mysql family's connections: settings, the per-run pool, TLS options, killing a statement."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import ssl as ssl_module
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeAlias

import anyio

from aflow.integration import ClientFactory, Failure, to_the_end
from aflow.secrets import REDACTED

Data: TypeAlias = "Sequence[Any] | Mapping[str, Any]"
SSLArg: TypeAlias = "Mapping[str, Any] | ssl_module.SSLContext"

POOL_SIZE = 50
"""Connections one pool (one flow run and configuration) opens at most; more queries wait for one."""

KILL_LIMIT = 10.0
"""Seconds a cancelled task spends at most on ``KILL QUERY`` (connecting included)."""

CURSOR_TYPES = ("cursor", "dictcursor", "sscursor", "ssdictcursor")
"""The ``cursor_type`` names `MySQLFetch` accepts (case-insensitive), besides a cursor class."""

# server errors that may pass when tried again: lock wait timeout, deadlock, can't connect,
# server gone away, lost connection during query
_TRANSIENT = frozenset({1205, 1213, 2003, 2006, 2013})
_UNKNOWN_THREAD = 1094


def _aiomysql() -> ModuleType:
    try:
        return importlib.import_module("aiomysql")
    except ImportError as exc:
        raise ImportError("mysql tasks need aiomysql: pip install aflow-engine[mysql]") from exc


def _ssl_context(ssl: SSLArg | None) -> ssl_module.SSLContext | None:
    """An SSL context from a pymysql-style dict (``ca``, ``cert``, ``key``...), or the context given."""
    if ssl is None or isinstance(ssl, ssl_module.SSLContext):
        return ssl
    opts = {str(k).removeprefix("ssl_"): v for k, v in ssl.items()}
    unknown = set(opts) - {"ca", "capath", "cert", "key", "password", "cipher", "check_hostname", "verify_mode"}
    if unknown:
        raise ValueError(
            f"ssl has unknown keys {sorted(unknown)}: use ca, capath, cert, key, password, cipher, "
            "check_hostname, verify_mode (or give an ssl.SSLContext)"
        )
    ctx = ssl_module.create_default_context(cafile=opts.get("ca"), capath=opts.get("capath"))
    if "check_hostname" in opts:
        ctx.check_hostname = bool(opts["check_hostname"])
    if "verify_mode" in opts:
        mode = opts["verify_mode"]
        ctx.verify_mode = (
            mode
            if isinstance(mode, ssl_module.VerifyMode)
            else (ssl_module.CERT_REQUIRED if mode else ssl_module.CERT_NONE)
        )
    elif "ca" not in opts and "capath" not in opts:
        ctx.check_hostname = False
        ctx.verify_mode = ssl_module.CERT_NONE
    if "cert" in opts:
        ctx.load_cert_chain(opts["cert"], opts.get("key"), opts.get("password"))
    if "cipher" in opts:
        ctx.set_ciphers(opts["cipher"])
    return ctx


def _ssl_key(ssl: SSLArg | None) -> Any:
    if ssl is None:
        return None
    if isinstance(ssl, ssl_module.SSLContext):
        return ("context", id(ssl))
    # a digest: the dict may hold a key's password
    return ("dict", hashlib.sha256(repr(sorted((str(k), repr(v)) for k, v in ssl.items())).encode()).hexdigest())


@dataclass(frozen=True)
class MySQLSettings:
    """How to connect: what `open_pool` gets, and (with the password as a digest) the pool's key.

    Args:
        host: The server's host name or address.
        user: The user name.
        password: The password (None: none sent).
        db_name: The default database (None: none).
        port: The TCP port (None: the driver's 3306).
        charset: The connection's character set (None: the driver's).
        ssl: A pymysql-style dict or an ``ssl.SSLContext`` (None: no TLS).
    """

    host: str
    user: str
    password: str | None = field(default=None, repr=False)
    db_name: str | None = None
    port: int | None = None
    charset: str | None = None
    ssl: SSLArg | None = field(default=None, compare=False)

    @property
    def key(self) -> tuple[Any, ...]:
        """A hashable description of the configuration, holding no secret in the clear."""
        digest = None if self.password is None else hashlib.sha256(self.password.encode()).hexdigest()
        return (self.host, self.port, self.user, digest, self.db_name, self.charset, _ssl_key(self.ssl))

    def connect_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for ``aiomysql.connect``/``create_pool``: only those that are set."""
        kwargs: dict[str, Any] = {"host": self.host, "user": self.user}
        optional = {
            "password": self.password,
            "db": self.db_name,
            "port": self.port,
            "charset": self.charset,
            "ssl": _ssl_context(self.ssl),
        }
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        return kwargs


def _drop(conn: Any) -> None:
    """Close an aiomysql connection now: its socket is let go on the loop's next turn.

    A TLS connection's ``close()`` waits for the server's close_notify, which may outlive the
    event loop (a ``ResourceWarning``): the transport is aborted instead.
    """
    transport = _transport(conn)
    if transport is not None:
        transport.abort()
    conn.close()


async def _drop_later(conn: Any) -> None:
    _drop(conn)


def _transport(conn: Any) -> Any:
    writer = getattr(conn, "_writer", None)
    return None if writer is None else writer.transport


class MySQLPool:
    """The connections of one flow run and configuration: at most ``size`` open, reused by its tasks.

    What `clients` hands out (``clients.use(pool)`` takes one). A connection given back healthy
    (its transaction ended) is reused; any other is closed.

    Args:
        settings: Where and how to connect.
        size: The most connections open at once; more `acquire` calls wait. Defaults to `POOL_SIZE`.
    """

    def __init__(self, settings: MySQLSettings, size: int = POOL_SIZE) -> None:
        self.settings = settings
        self.size = size
        self.closed = False
        self._free: list[Any] = []
        self._open: set[Any] = set()
        self._slots = asyncio.Semaphore(size)

    async def acquire(self) -> Any:
        """A connection (an ``aiomysql.Connection``, autocommit off): a free one, else a new one.

        Raises:
            pymysql.err.MySQLError: If a new connection cannot be made.
        """
        if self.closed:
            raise RuntimeError("this MySQLPool is closed")
        await self._slots.acquire()
        try:
            while self._free:
                conn = self._free.pop()
                if not conn.closed:
                    return conn
                self._open.discard(conn)
            # aiomysql leaves the socket of a connect cut off by a cancellation open: let it
            # finish (bounded), then close what it made
            connect = _aiomysql().connect(autocommit=False, **self.settings.connect_kwargs())
            conn = await to_the_end(connect, _drop_later, limit=KILL_LIMIT)
        except BaseException:
            self._slots.release()
            raise
        self._open.add(conn)
        return conn

    def release(self, conn: Any, *, reusable: bool) -> None:
        """Give ``conn`` back: kept for reuse if ``reusable`` (and open), else closed.

        Args:
            conn: A connection from `acquire`.
            reusable: Whether its state is known and clean (no open transaction, no unread result).
        """
        if reusable and not self.closed and not conn.closed:
            self._free.append(conn)
        else:
            self._open.discard(conn)
            _drop(conn)
        self._slots.release()

    async def close(self) -> None:
        """Close every connection: free ones say goodbye to the server (bounded), others are dropped."""
        self.closed = True
        free, self._free = self._free, []
        conns, self._open = self._open, set()

        async def quit(conn: Any) -> None:
            with contextlib.suppress(Exception):
                await conn.ensure_closed()

        transports = [t for t in map(_transport, conns) if t is not None]
        with anyio.move_on_after(2.0):
            await asyncio.gather(*(quit(conn) for conn in free))
        for conn in conns:
            _drop(conn)
        for transport in transports:  # ensure_closed() closes a TLS one gracefully: too slow
            transport.abort()
        await asyncio.sleep(0)  # the dropped sockets are let go now, not after the loop ends


@asynccontextmanager
async def open_pool(settings: MySQLSettings) -> AsyncIterator[MySQLPool]:
    """A `MySQLPool` for ``settings`` (the default opener of `clients`), closed on exit.

    No connection is made before the first query; at most `POOL_SIZE` are open at once.

    Args:
        settings: Where and how to connect.
    """
    _aiomysql()  # fail early, with the extra to install, when aiomysql is missing
    pool = MySQLPool(settings)
    try:
        yield pool
    finally:
        await to_the_end(pool.close())


clients: ClientFactory[[MySQLSettings], MySQLPool] = ClientFactory("aflow_tasks.mysql", open_pool)
"""The flow run's pools, one per `MySQLSettings` key. In tests: ``clients.override(opener)``
(the opener takes a `MySQLSettings`) or ``clients.use(pool)`` (see
`aflow.integration.ClientFactory`)."""


def _hide(text: str, password: str | None) -> str:
    if password:
        text = text.replace(password, REDACTED).replace(repr(password)[1:-1], REDACTED)
    return text


def _classifier(what: str, password: str | None) -> Any:
    def classify(exc: Exception) -> Failure:
        args: tuple[Any, ...] = getattr(exc, "args", ())
        if len(args) >= 2 and isinstance(args[0], int):
            code: int | None = args[0]
            message = f"{what} failed: ({args[0]}) {args[1]}"
        else:
            code = None
            message = f"{what} failed: {type(exc).__name__}: {exc}"
        return Failure(_hide(message, password), transient=code in _TRANSIENT)

    return classify


_kill_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


async def _kill_query(settings: MySQLSettings, thread_id: int) -> None:
    """``KILL QUERY thread_id`` from a connection of its own (the pool's may all be busy).

    Kills from one event loop go one at a time: MariaDB makes concurrent ``KILL``s of sleeping
    statements wait up to 2 s each (they contend for one server mutex), one after another takes
    milliseconds.
    """
    loop = asyncio.get_running_loop()
    lock = _kill_locks.get(loop)
    if lock is None:
        lock = _kill_locks[loop] = asyncio.Lock()
    async with lock:
        conn = await _aiomysql().connect(connect_timeout=KILL_LIMIT, **settings.connect_kwargs())
        try:
            cursor = await conn.cursor()
            await cursor.execute(f"KILL QUERY {int(thread_id)}")
        finally:
            _drop(conn)


def _no_such_thread(exc: Exception) -> bool:
    args: tuple[Any, ...] = getattr(exc, "args", ())
    return bool(args) and args[0] == _UNKNOWN_THREAD


def _cursor_class(cursor_type: Any) -> Any:
    cursors = _aiomysql().cursors
    classes = {
        "cursor": cursors.Cursor,
        "dictcursor": cursors.DictCursor,
        "sscursor": cursors.SSCursor,
        "ssdictcursor": cursors.SSDictCursor,
    }
    if isinstance(cursor_type, type):
        # pymysql's cursor classes (Prefect 1's) stand for aiomysql's of the same name
        if cursor_type.__module__.startswith("pymysql") and cursor_type.__name__.lower() in classes:
            return classes[cursor_type.__name__.lower()]
        return cursor_type
    if isinstance(cursor_type, str) and cursor_type.lower() in classes:
        return classes[cursor_type.lower()]
    raise TypeError(f"'cursor_type' should be one of {list(classes)} or a full cursor class, got {cursor_type!r}")
