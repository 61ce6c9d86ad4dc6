"""The fake Airbyte and Fivetran servers, started once per session; each test gets them cleared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aflow import secrets as secrets_mod

from .fake_airbyte import FakeAirbyte
from .fake_fivetran import FakeFivetran

API_KEY, API_SECRET = "ft-key-2b9d", "ft-secret-71aa"


@pytest.fixture(scope="session")
def airbyte_server() -> Iterator[FakeAirbyte]:
    server = FakeAirbyte()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fivetran_server() -> Iterator[FakeFivetran]:
    server = FakeFivetran(API_KEY, API_SECRET)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def airbyte(airbyte_server: FakeAirbyte) -> FakeAirbyte:
    airbyte_server.clear()
    return airbyte_server


@pytest.fixture
def fivetran(fivetran_server: FakeFivetran) -> Iterator[FakeFivetran]:
    fivetran_server.clear()
    secrets_mod._clear()
    yield fivetran_server
    secrets_mod._clear()
