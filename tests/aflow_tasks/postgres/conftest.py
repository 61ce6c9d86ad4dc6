"""A real PostgreSQL 15 server for the session (see ``_server.py``), and a fresh table per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from ._server import PostgresServer, start


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = start()  # fails loudly when the server cannot start: nothing is skipped
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg(pg_server: PostgresServer) -> dict[str, Any]:
    """The connection arguments of the tasks (superuser, trust auth)."""
    return pg_server.settings


def sql(server: PostgresServer, query: str, data: Any = None) -> list[tuple[Any, ...]]:
    """Run ``query`` on a connection of its own (autocommit) and return its rows."""
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        cursor = conn.execute(query, data)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def table(pg_server: PostgresServer) -> Iterator[str]:
    """A new table ``(id int primary key, name text)``, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    sql(pg_server, f"CREATE TABLE {name} (id int PRIMARY KEY, name text)")
    sql(pg_server, f"GRANT ALL ON {name} TO secret_user")
    yield name
    sql(pg_server, f"DROP TABLE IF EXISTS {name}")
