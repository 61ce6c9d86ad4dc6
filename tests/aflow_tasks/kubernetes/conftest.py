"""Fixtures of the kubernetes task tests: the fake API server and the two ways to reach it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aflow import secrets as secrets_mod

from .fake_api import FakeKube

TOKEN = "fake-kube-token-5f2a"


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
