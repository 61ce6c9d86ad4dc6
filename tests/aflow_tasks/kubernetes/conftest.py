"""Fixtures of the kubernetes task tests: the fake API server and the two ways to reach it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aflow import secrets as secrets_mod

from .fake_api import FakeKube

TOKEN = "fake-kube-token-5f2a"


class LineWaiter(logging.Handler):
    """Collects the task loggers' messages and wakes waiters as they arrive."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._event = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._event.set()
        self._event = anyio.Event()

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    async def wait_for_text(self, text: str, count: int = 1, limit: float = 30) -> list[str]:
        """Wait until ``count`` messages contain ``text``; return them."""
        with anyio.fail_after(limit):
            while True:
                event = self._event
                found = [m for m in self.messages if text in m]
                if len(found) >= count:
                    return found
                await event.wait()


@pytest.fixture
def lines() -> Iterator[LineWaiter]:
    handler = LineWaiter()
    logger = logging.getLogger("aflow.task")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No real cluster settings leak in: HOME is the test's, no in-cluster or KUBECONFIG variables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AFLOW__CONTEXT__SECRETS__KUBERNETES_API_KEY", raising=False)
    secrets_mod._clear()
    yield
    secrets_mod._clear()


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    server = FakeKube(token=TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def kubeconfig(url: str, token: str | None = TOKEN) -> dict[str, Any]:
    """A kubeconfig whose current context ``broken`` points at a closed port; ``fake`` at the fake."""
    user: dict[str, Any] = {"token": token} if token else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "fake", "cluster": {"server": url}},
            {"name": "broken", "cluster": {"server": "http://127.0.0.1:9"}},
        ],
        "users": [{"name": "tester", "user": user}],
        "contexts": [
            {"name": "fake", "context": {"cluster": "fake", "user": "tester"}},
            {"name": "broken", "context": {"cluster": "broken", "user": "tester"}},
        ],
        "current-context": "fake",
    }


@pytest.fixture(params=["explicit", "kubeconfig-file"])
def conn(request: pytest.FixtureRequest, fake: FakeKube, tmp_path: Path) -> dict[str, Any]:
    """Connection arguments: an explicit kubeconfig dict, or ~/.kube/config with a selected context."""
    if request.param == "explicit":
        return {"kube_config": kubeconfig(fake.url)}
    config = kubeconfig(fake.url)
    config["current-context"] = "broken"  # so only the selected context can work
    path = Path.home() / ".kube" / "config"
    path.parent.mkdir()
    path.write_text(json.dumps(config))  # JSON is YAML
    return {"kube_context": "fake"}
