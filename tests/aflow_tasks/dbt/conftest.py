"""Fixtures of the dbt task tests: a small dbt project on DuckDB and the fake dbt Cloud, once per session."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aflow import secrets as secrets_mod

from .fake_dbt_cloud import FakeDbtCloud

TOKEN = "dbt-cloud-token-8c1e7"

MODELS = {
    "first.sql": "select 1 as id\n",
    "second.sql": "select id + 1 as id from {{ ref('first') }}\n",
    "broken.sql": "select * from no_such_table\n",
    # a table whose query runs for hours: the cancellation test stops it
    "slow.sql": "{{ config(materialized='table') }}\nselect count(*) as n from range(100000000000000)\n",
}


# dbt in a venv of its own (dbt-core pins pathspec<0.13, which the test tools' mypy cannot use);
# dbt-core 1.11+ pulls a parser whose build downloads from the internet
DBT_PACKAGES = ("dbt-core>=1.8,<1.11", "dbt-duckdb>=1.8,<1.11")


@pytest.fixture(scope="session", autouse=True)
def dbt_command() -> Iterator[Path]:
    """The ``dbt`` program, first on PATH for the session: installed once into a cached venv."""
    venv = Path(os.environ.get("AFLOW_DBT_VENV") or Path.home() / ".cache" / "aflow-tests" / "dbt-venv")
    dbt = venv / "bin" / "dbt"
    if not dbt.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *DBT_PACKAGES], check=True, timeout=900)
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{venv / 'bin'}{os.pathsep}{path}"
    try:
        yield dbt
    finally:
        os.environ["PATH"] = path


@pytest.fixture(scope="session")
def dbt_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dbt project (profile ``aflow_demo``): models first, second, broken (fails) and slow."""
    root = tmp_path_factory.mktemp("dbt_project")
    (root / "dbt_project.yml").write_text(
        'name: aflow_demo\nversion: "1.0"\nprofile: aflow_demo\nmodel-paths: ["models"]\n', encoding="utf-8"
    )
    (root / "models").mkdir()
    for name, sql in MODELS.items():
        (root / "models" / name).write_text(sql, encoding="utf-8")
    return root


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """HOME is the test's; dbt sends no usage statistics and checks no version online."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("DBT_PROFILES_DIR", "DBT_CLOUD_ACCOUNT_ID", "DBT_CLOUD_JOB_ID", "DBT_CLOUD_TOKEN", "DBT_USE_COLORS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.setenv("DBT_VERSION_CHECK", "false")
    secrets_mod._clear()
    yield
    secrets_mod._clear()


@pytest.fixture(scope="session")
def cloud() -> Iterator[FakeDbtCloud]:
    """The fake dbt Cloud, shared by the session."""
    server = FakeDbtCloud(token=TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Records(logging.Handler):
    """Collects the records of the ``aflow.task`` loggers; `wait_for` awaits one matching a text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    async def wait_for(self, text: str, within: float = 60.0) -> logging.LogRecord:
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while loop.time() < end:
            for record in self.records:
                if text in record.getMessage():
                    return record
            await asyncio.sleep(0.02)
        raise AssertionError(f"no log record with {text!r}; got {self.messages[-20:]}")


@pytest.fixture
def logs() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("aflow.task")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def survivors(marker: str) -> list[int]:
    """Live processes whose environment holds ``AFLOW_TRIAL=<marker>`` (zombies are dead)."""
    needle = f"AFLOW_TRIAL={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X"):
            found.append(int(entry))
    return found
