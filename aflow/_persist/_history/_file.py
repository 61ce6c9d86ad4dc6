"""A run store's file: the checks when it opens, its schema, and the writer's transactions.

A store must fail at `RunStore.open`, before a flow run recording in it starts a task, with one
`RunStoreError` that names the file and the problem, rather than with SQLite's own message
("file is not a database") from deep inside aiosqlite's thread. The checks here are ``stat``
calls and cheap queries; the blocking ones run in a worker thread (see `RunStore.open`).

Several processes share a file (WAL mode): opening a store that exists takes no write lock, and
the writer commits each batch in one short transaction on its own connection (`commit`).
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from typing import TYPE_CHECKING, Any

import anyio

from ...exceptions import RunStoreError
from . import _schema as sql

if TYPE_CHECKING:
    import aiosqlite

__all__ = (
    "BUSY_TIMEOUT",
    "CREATE_SCRIPTS",
    "TABLES",
    "check_path",
    "commit",
    "connect_writer",
    "describe_error",
    "prepare",
    "schema_is_current",
    "stopped",
)

BUSY_TIMEOUT = 30.0
"""Seconds a connection waits for another one's lock (SQLite's busy timeout) before failing."""

_MAGIC = b"SQLite format 3\x00"
_HEADER = 100  # bytes of a SQLite file's header

_TABLE_NAMES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"

CREATE_SCRIPTS = (
    sql.CREATE_SCHEMA,
    *(getattr(sql, n) for n in sorted(vars(sql)) if n.startswith("CREATE_") and n != "CREATE_SCHEMA"),
)
"""The schema's scripts (``_schema.CREATE_*``, the first one first): run when a table is missing."""

TABLES = frozenset(t for script in CREATE_SCRIPTS for t in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", script))
"""The tables of a run store: opening a store that has them all and the current version writes nothing."""


def _in_memory(path: str) -> bool:
    return path == ":memory:" or path.startswith("file:")


def check_path(path: str) -> None:
    """Refuse a path that cannot hold a run store, before SQLite opens it (blocking: call in a thread).

    Only ``stat`` calls: opening and closing the file here would drop the POSIX locks that this
    process's SQLite connections hold on it (closing any descriptor of a file does), and another
    process could then write under them. The file's content is SQLite's to judge.

    Raises:
        RunStoreError: ``path`` is a directory, or its directory does not exist.
    """
    if _in_memory(path):
        return
    if os.path.isdir(path):
        raise RunStoreError(
            f"Run history path {path!r} is a directory, not a file: "
            f"give the path of a SQLite file, e.g. {os.path.join(path, 'runs.db')!r}"
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise RunStoreError(f"Run history file {path!r} cannot be created: the directory {parent!r} does not exist")


def describe_error(path: str, exc: sqlite3.Error) -> RunStoreError:
    """The error to raise for ``exc``, raised by SQLite while opening ``path`` (blocking: reads the file's header)."""
    said = str(exc) or type(exc).__name__
    if isinstance(exc, sqlite3.OperationalError) and "unable to open" in said:
        return RunStoreError(f"Run history file {path!r} cannot be opened (SQLite: {said}): check its permissions")
    if isinstance(exc, sqlite3.OperationalError):
        return RunStoreError(f"Run history file {path!r} could not be opened as a run store (SQLite: {said})")
    hint = ""
    try:  # reached only when SQLite cannot read the file: no data of it is under a lock to keep
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            header = f.read(_HEADER)
    except OSError:
        header, size = b"", 0
    if header and not header.startswith(_MAGIC[: len(header)]):
        return RunStoreError(
            f"Run history file {path!r} is not a SQLite database (it starts with {header[:16]!r}): "
            "give the path of a run store, or of a new file to create one"
        )
    if len(header) == _HEADER and header.startswith(_MAGIC):
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        pages = int.from_bytes(header[28:32], "big")
        if header[24:28] == header[92:96] and 0 < size < pages * page_size:  # the page count is valid
            hint = f"; it is truncated: {size} bytes, its header says {pages * page_size}"
    elif header and len(header) < _HEADER and header.startswith(_MAGIC[: len(header)]):
        hint = f"; it is truncated: {size} bytes, shorter than a SQLite header"
    return RunStoreError(
        f"Run history file {path!r} is damaged (SQLite: {said}{hint}): "
        "restore it from a copy, or move it away to start a new store"
    )


async def schema_is_current(conn: aiosqlite.Connection, path: str) -> bool:
    """Whether ``conn``'s file holds this aflow's schema complete (read only: no write lock taken).

    Returns:
        True if nothing needs creating; False for a new (empty) file or a store missing tables.

    Raises:
        RunStoreError: The file is another program's database, or has a newer schema version.
    """
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row is not None else 0
    if version > sql.SCHEMA_VERSION:
        raise RunStoreError(
            f"Run history file {path!r} has schema version {version}; this aflow reads up to "
            f"{sql.SCHEMA_VERSION}: upgrade aflow, or give another path"
        )
    async with conn.execute(_TABLE_NAMES) as cursor:
        tables = {str(r[0]) for r in await cursor.fetchall()}
    if version == 0 and tables - TABLES:
        others = ", ".join(sorted(tables - TABLES)[:5])
        raise RunStoreError(
            f"Run history file {path!r} is a SQLite database but not a run store (it has the tables "
            f"{others}, and no run store's schema version): give another path"
        )
    return version == sql.SCHEMA_VERSION and tables >= TABLES


def connect_writer(path: str) -> sqlite3.Connection:
    """The writer's own connection (blocking: call in a thread), used by one thread at a time."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")  # durable in WAL mode, and much faster
    except BaseException:
        conn.close()
        raise
    return conn


def commit(conn: sqlite3.Connection, writes: list[tuple[str, list[Any]]]) -> None:
    """Run ``writes`` (statement, rows) in one transaction (blocking: call in a thread).

    Run in one call, without a trip through the event loop between statements, the transaction
    holds the file's write lock only while SQLite works: a busy loop in this process does not make
    another process's writer wait. ``BEGIN IMMEDIATE`` takes the lock first (waiting up to the
    busy timeout), so the transaction never has to upgrade a read lock, which SQLite refuses
    at once when another connection wrote meanwhile.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        for query, rows in writes:
            conn.executemany(query, rows)
        conn.execute("COMMIT")
    except BaseException:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled back
        raise


async def stopped(conn: aiosqlite.Connection) -> None:
    """Wait for the thread of ``conn``, whose connect failed, to end (else it may outlive the event loop)."""
    thread = getattr(conn, "_thread", None)  # aiosqlite stops it by itself, without waiting
    if thread is not None and thread.is_alive():
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(thread.join, 5.0)


async def prepare(conn: aiosqlite.Connection, path: str) -> None:
    """Switch ``conn``'s file to WAL mode and create (or check) the schema.

    A store that exists is only read here: opening it takes no write lock, so it does not wait
    for (or hold up) another process writing the file.
    """
    mode = await _enable_wal(conn)
    if mode != "wal":
        raise RunStoreError(f"Run history file {path!r} could not be switched to WAL mode (journal_mode is {mode!r})")
    await conn.execute("PRAGMA synchronous = NORMAL")  # durable in WAL mode, and much faster
    if await schema_is_current(conn, path):
        return
    await conn.execute("BEGIN IMMEDIATE")  # two stores opening one new file: one creates the schema
    try:
        if not await schema_is_current(conn, path):  # the other may have created it meanwhile
            for statement in ";".join(CREATE_SCRIPTS).split(";"):
                if statement.strip():
                    await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {sql.SCHEMA_VERSION}")
        await conn.execute("COMMIT")
    except BaseException:
        with anyio.CancelScope(shield=True):
            await conn.execute("ROLLBACK")
        raise


async def _enable_wal(conn: aiosqlite.Connection) -> str:
    """Set WAL mode and return the journal mode now in force.

    Switching needs an exclusive lock, and SQLite reports "database is locked" at once, without
    its busy handler, when another connection holds one (two stores opening one new file): so
    retry with a growing pause, for up to `BUSY_TIMEOUT` seconds.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    pause = 0.001
    while True:
        try:
            async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
                row = await cursor.fetchone()
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.05)
            continue
        return "" if row is None else str(row[0]).lower()
