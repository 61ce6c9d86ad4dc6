"""The fake Databricks server, started once per session; each test gets it cleared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aflow import secrets as secrets_mod

from .fake_databricks import FakeDatabricks

TOKEN = "dapi-fake-token-8c1e"
LOGIN, PASSWORD = "ada", "pw-fake-4411"


@pytest.fixture(scope="session")
def dbx_server() -> Iterator[FakeDatabricks]:
    server = FakeDatabricks(TOKEN, LOGIN, PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dbx(dbx_server: FakeDatabricks) -> Iterator[FakeDatabricks]:
    dbx_server.clear()
    secrets_mod._clear()
    yield dbx_server
    secrets_mod._clear()


@pytest.fixture
def conn(dbx: FakeDatabricks) -> dict[str, str]:
    return {"host": dbx.url, "token": TOKEN}
