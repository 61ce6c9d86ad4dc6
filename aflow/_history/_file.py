"""Checks on a run store's file when it opens: is it a run store, and if not, what is wrong.

A store must fail at `RunStore.open`, before a flow run recording in it starts a task, with one
`RunStoreError` that names the file and the problem, rather than with SQLite's own message
("file is not a database") from deep inside aiosqlite's thread. The checks here are plain file
reads and cheap queries; the blocking ones run in a worker thread (see `RunStore.open`).
"""

from __future__ import annotations

import os
import re
import sqlite3
from typing import TYPE_CHECKING

from ..exceptions import RunStoreError
from . import _schema as sql

if TYPE_CHECKING:
    import aiosqlite

__all__ = ("CREATE_SCRIPTS", "TABLES", "check_path", "describe_error", "schema_is_current")

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
