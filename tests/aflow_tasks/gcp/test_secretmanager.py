from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

import aflow
from aflow import Flow, Task, defaults_from_attrs, signals
from aflow.secrets import redact
from aflow_tasks.gcp import GCPSecret
from aflow_tasks.gcp._auth import sessions

from .fake_secretmanager import FakeSecretManager

PROJECT = "my-project"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeSecretManager]:
    fake = FakeSecretManager()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake(fake_server: FakeSecretManager, monkeypatch: pytest.MonkeyPatch) -> FakeSecretManager:
    monkeypatch.setenv("SECRET_MANAGER_EMULATOR_HOST", fake_server.host)
    fake_server.secrets.clear()
    fake_server.fail_next.clear()
    fake_server.requests.clear()
    return fake_server


def test_init_defaults_are_prefect_1s() -> None:
    task = GCPSecret()
    assert (task.project_id, task.secret_id, task.version_id, task.credentials) == (None, None, "latest", None)
    assert task.checkpoint is False
    task = GCPSecret(project_id=123, secret_id="s", version_id=2, credentials={"type": "service_account"})
    assert (task.project_id, task.secret_id, task.version_id) == (123, "s", 2)
    assert "service_account" not in repr(task)


async def test_reads_the_latest_and_a_given_version(fake: FakeSecretManager) -> None:
    fake.add(PROJECT, "api-token", b"first-token-value", "zweiter-wert-\u00e9".encode())
    task = GCPSecret(PROJECT, "api-token")
    assert await task.run() == "zweiter-wert-\u00e9"
    assert await task.run(version_id=1) == "first-token-value"
    assert await task.run(version_id="2") == "zweiter-wert-\u00e9"
    assert await GCPSecret(PROJECT, "api-token", version_id=1).run() == "first-token-value"
    # no auth against the emulator, and the documented path
    assert fake.requests[0] == (f"/v1/projects/{PROJECT}/secrets/api-token/versions/latest:access", False)


async def test_call_values_win_over_init(fake: FakeSecretManager) -> None:
    fake.add("other-project", "other", b"from-the-call")
    task = GCPSecret(PROJECT, "api-token")
    assert await task.run(project_id="other-project", secret_id="other") == "from-the-call"


async def test_the_payload_is_registered_for_redaction(fake: FakeSecretManager) -> None:
    fake.add(PROJECT, "db-password", b"hunter2-gcp-payload")
    with Flow("secret", checkpoint=True) as flow:
        value = GCPSecret(PROJECT, "db-password")()
    state = await flow.run()
    assert state.is_successful(), state.message
    assert state.result[value].result == "hunter2-gcp-payload"
    assert redact("pw hunter2-gcp-payload") == "pw ****"


async def test_a_missing_secret_or_version_fails_naming_it(fake: FakeSecretManager) -> None:
    fake.add(PROJECT, "exists", b"v1")
    with pytest.raises(signals.FAIL, match=rf"projects/{PROJECT}/secrets/nope/versions/latest failed: not found"):
        await GCPSecret(PROJECT, "nope").run()
    with pytest.raises(signals.FAIL, match=r"secrets/exists/versions/7 failed: not found: NOT_FOUND: Secret Version"):
        await GCPSecret(PROJECT, "exists", version_id=7).run()


async def test_missing_ids_are_value_errors(fake: FakeSecretManager) -> None:
    with pytest.raises(ValueError, match="GCPSecret needs a GCP project ID"):
        await GCPSecret(secret_id="s").run()
    with pytest.raises(ValueError, match="GCPSecret needs a Secret Manager secret ID"):
        await GCPSecret(PROJECT).run()


async def test_503_and_429_are_retried(fake: FakeSecretManager) -> None:
    fake.add(PROJECT, "flaky", b"finally")
    fake.fail_next.extend([503, 429])
    task = GCPSecret(PROJECT, "flaky", max_retries=2, retry_delay=timedelta(seconds=0))
    with Flow("retry") as flow:
        value = task()
    state = await flow.run()
    assert state.is_successful(), state.message
    assert state.result[value].result == "finally"
    assert len(fake.requests) == 3
    # out of retries: FAIL with the service's message
    fake.fail_next.append(503)
    with pytest.raises(signals.FAIL, match="HTTP 503: UNAVAILABLE: try again later"):
        await GCPSecret(PROJECT, "flaky").run()


async def test_other_errors_fail(fake: FakeSecretManager) -> None:
    fake.fail_next.append(403)
    with pytest.raises(signals.FAIL, match="HTTP 403: RESOURCE_EXHAUSTED: try again later"):
        await GCPSecret(PROJECT, "x").run()


async def test_an_unreachable_service_fails(monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int) -> None:
    monkeypatch.setenv("SECRET_MANAGER_EMULATOR_HOST", f"http://127.0.0.1:{unused_tcp_port}")
    with pytest.raises(signals.FAIL, match="reading GCP secret projects/p/secrets/s/versions/latest failed"):
        await GCPSecret("p", "s").run()


async def test_emulator_host_with_a_scheme(fake: FakeSecretManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_MANAGER_EMULATOR_HOST", f"http://{fake.host}/")
    fake.add(PROJECT, "s", b"with-scheme")
    assert await GCPSecret(PROJECT, "s").run() == "with-scheme"


async def test_credentials_are_checked_and_lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_MANAGER_EMULATOR_HOST", raising=False)
    with pytest.raises(ValueError, match="service account's JSON key"):
        await GCPSecret(PROJECT, "s", credentials="not json").run()
    with (
        aflow.context.temporary(secrets={"GCP_KEY": "not a key"}),
        pytest.raises(ValueError, match="service account's JSON key"),
    ):
        await GCPSecret(PROJECT, "s", credentials=aflow.Secret("GCP_KEY")).run()


class Needs(Task):
    """Returns its token (a task whose attribute is a lazy default)."""

    def __init__(self, token: Any = None, **kwargs: Any) -> None:
        self.token = token
        super().__init__(**kwargs)

    @defaults_from_attrs("token")
    async def run(self, token: Any = None) -> Any:
        return token


async def test_a_lazy_default_sharing_the_runs_session(fake: FakeSecretManager) -> None:
    fake.add(PROJECT, "t", b"lazy-token-value")
    opened: list[int] = []

    @asynccontextmanager
    async def counting() -> AsyncIterator[Any]:
        opened.append(1)
        async with sessions.opener() as s:
            yield s

    with sessions.override(counting):
        with Flow("lazy") as flow:
            reads = [GCPSecret(PROJECT, "t")() for _ in range(5)]
            used = Needs(token=GCPSecret(PROJECT, "t"))()
        state = await flow.run()
    assert state.is_successful(), state.message
    assert [state.result[r].result for r in reads] == ["lazy-token-value"] * 5
    assert state.result[used].result == "lazy-token-value"
    assert opened == [1]  # six reads, one aiohttp session for the run
