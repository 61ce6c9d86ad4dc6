"""Snowflake emulated by fakesnow: ``fakesnow.patch()`` replaces ``snowflake.connector.connect``.

fakesnow runs Snowflake SQL on an in-memory DuckDB, in this process: every connection of a test
package sees the same databases. The patch is entered once for the package and left at its end;
if fakesnow or the connector is missing, the fixture fails loudly (nothing is skipped).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="package", autouse=True)
def fake_snowflake() -> Iterator[None]:
    import fakesnow  # the test extra installs it: a missing one is an error, not a skip

    with fakesnow.patch(create_database_on_connect=True, create_schema_on_connect=True):
        yield


@pytest.fixture
def creds() -> dict[str, Any]:
    """Connection arguments for the emulator (it accepts any account, user and password)."""
    return {"account": "acme-test", "user": "ada", "password": "pw-not-secret-1", "database": "db1", "schema": "s1"}
