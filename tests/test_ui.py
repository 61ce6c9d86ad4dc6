"""``aflow ui`` as a separate process over a store written by flow runs in other processes: the JSON API,
the pages' HTTP answers, read-only and local by default, and its one-line errors."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from aflow.history import RunStore
from tests.ui_support import aflow_ui, child_env, write_store

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="module")
def url(store: Path) -> Iterator[str]:
    # no --history and no --host: the store comes from $AFLOW_HISTORY, the address is the default one
    with aflow_ui(env=child_env(AFLOW_HISTORY=str(store))) as base:
        yield base


@pytest.fixture(scope="module")
def client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as c:
        yield c


def run_id(client: httpx.Client, flow: str) -> str:
    [run] = client.get("/api/runs", params={"flow": flow}).json()["runs"]
    return str(run["id"])


def test_it_binds_the_loopback_address_by_default(url: str) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)


def test_runs_newest_first_filtered_by_flow_and_state_and_paged(client: httpx.Client) -> None:
    body = client.get("/api/runs").json()
    assert [r["flow_name"] for r in body["runs"]] == ["ui-broken", "ui-demo"]
    assert {"id", "flow_name", "state", "started_at", "ended_at"} <= set(body["runs"][0])
    assert "parameters" not in body["runs"][0]  # on the run's own page only
    assert [r["state"] for r in body["runs"]] == ["Failed", "Success"]
    assert body["has_more"] is False
    assert [r["flow_name"] for r in client.get("/api/runs?flow=ui-demo").json()["runs"]] == ["ui-demo"]
    assert [r["flow_name"] for r in client.get("/api/runs?state=Failed").json()["runs"]] == ["ui-broken"]
    assert client.get("/api/runs?flow=ui-demo&state=Failed").json()["runs"] == []
    first = client.get("/api/runs?limit=1").json()
    assert ([r["flow_name"] for r in first["runs"]], first["has_more"]) == (["ui-broken"], True)
    second = client.get("/api/runs?limit=1&offset=1").json()
    assert ([r["flow_name"] for r in second["runs"]], second["has_more"]) == (["ui-demo"], False)
    bad = client.get("/api/runs?limit=many")
    assert bad.status_code == 400
    assert "limit must be an integer" in bad.json()["detail"]


def test_a_run_has_its_task_runs_with_attempts_and_its_graph(client: httpx.Client) -> None:
    rid = run_id(client, "ui-demo")
    body = client.get(f"/api/runs/{rid[:8]}").json()  # any unique prefix
    assert (body["id"], body["flow_name"], body["state"]) == (rid, "ui-demo", "Success")
    assert body["parameters"] == {"n": 3}
    tasks = {(t["name"], t["map_index"]): t for t in body["tasks"]}
    assert set(tasks) == {("numbers", None), ("flaky", 0), ("flaky", 1), ("flaky", 2), ("total", None)}
    for t in tasks.values():
        assert {"name", "map_index", "state", "started_at", "ended_at", "attempts", "message"} <= set(t)
        assert t["state"] == "Success"
    retried = tasks["flaky", 1]
    assert retried["attempts"] == 2
    assert [(s[2], s[3]) for s in retried["segments"]] == [
        ("Retrying", "attempt"),
        ("Retrying", "wait"),
        ("Success", "attempt"),
    ]
    assert tasks["flaky", 0]["attempts"] == 1
    assert body["counts"] == {"Success": 5}
    nodes = {n["name"]: n for n in body["graph"]["nodes"]}
    assert set(nodes) >= {"numbers", "flaky", "total"}
    assert (nodes["flaky"]["mapped"], nodes["flaky"]["state"], nodes["flaky"]["counts"]) == (
        True,
        "Mapped",
        {"Success": 3},
    )
    slugs = {n["slug"]: n["name"] for n in body["graph"]["nodes"]}
    edges = {(slugs[e["source"]], slugs[e["target"]]) for e in body["graph"]["edges"]}
    assert {("numbers", "flaky"), ("flaky", "total")} <= edges
    page = client.get(f"/api/runs/{rid}?task=flaky&limit=2&offset=1").json()
    assert (page["tasks_total"], [t["map_index"] for t in page["tasks"]]) == (
        3,
        sorted(t["map_index"] for t in page["tasks"]),
    )
    assert len(page["tasks"]) == 2
    assert [t["name"] for t in client.get(f"/api/runs/{rid}?state=Failed").json()["tasks"]] == []


def test_a_runs_logs_name_their_task_and_filter_by_it(client: httpx.Client) -> None:
    rid = run_id(client, "ui-demo")
    logs = client.get(f"/api/runs/{rid}/logs").json()["logs"]
    assert {"time", "level", "task", "map_index", "message"} <= set(logs[0])
    lines = [(r["level"], r["task"], r["map_index"], r["message"]) for r in logs]
    assert ("INFO", "numbers", None, "making 3 numbers") in lines
    assert ("WARNING", "flaky", 1, "item 1 failed once") in lines
    assert ("INFO", "total", None, "total is 3") in lines
    assert [r["time"] for r in logs] == sorted(r["time"] for r in logs)
    flaky = client.get(f"/api/runs/{rid}/logs", params={"task": "flaky"}).json()["logs"]
    assert {r["task"] for r in flaky} == {"flaky"}
    assert len(flaky) == 4  # three items done, one failed once
    after = client.get(f"/api/runs/{rid}/logs", params={"after": logs[0]["seq"]}).json()
    assert [r["seq"] for r in after["logs"]] == [r["seq"] for r in logs[1:]]


@pytest.mark.parametrize("path", ["/api/runs/no-such-run", "/api/runs/no-such-run/logs"])
def test_an_unknown_run_is_a_json_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert "no-such-run" in response.json()["detail"]


def test_an_unknown_run_or_page_is_a_404_page(client: httpx.Client) -> None:
    for path in ("/runs/no-such-run", "/nothing/here"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "404 Not Found" in response.text
        assert "Traceback" not in response.text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_writes_are_refused(client: httpx.Client, method: str) -> None:
    rid = run_id(client, "ui-demo")
    for path in ("/", "/api/runs", f"/api/runs/{rid}", f"/runs/{rid}", "/static/app.js"):
        response = client.request(method, path)
        assert response.status_code == 405, path
        assert response.headers["allow"] == "GET, HEAD"
    assert client.get("/api/runs").json()["runs"]  # nothing was deleted


def test_the_pages_and_their_assets_come_from_this_server_only(client: httpx.Client) -> None:
    rid = run_id(client, "ui-demo")
    for path in ("/", f"/runs/{rid}", "/static/app.js", "/static/style.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        # no CDN: the only absolute URL is the SVG namespace
        assert set(re.findall(r"https?://[^\s\"'<>]+", response.text)) <= {"http://www.w3.org/2000/svg"}


def ui_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "aflow._cli", "ui", *args]
    return subprocess.run(command, env=child_env(**env), capture_output=True, text=True, timeout=60, check=False)


def test_without_a_store_it_says_how_to_get_one(tmp_path: Path) -> None:
    done = ui_cli()
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "aflow: error: no run store: pass --history PATH (or set $AFLOW_HISTORY)\n"
    done = ui_cli("--history", str(tmp_path / "missing.db"))
    assert done.returncode == 2
    assert "no run store at" in done.stderr
    assert "--history" in done.stderr
    assert not (tmp_path / "missing.db").exists()


def test_without_aiohttp_it_names_the_extra(store: Path) -> None:
    code = "import sys; sys.modules['aiohttp'] = None; from aflow._cli import main; main()"
    command = [sys.executable, "-c", code, "ui", "--history", str(store)]
    done = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "pip install 'aflow-engine[ui]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_port_in_use_is_one_line(store: Path, url: str) -> None:
    port = url.rsplit(":", 1)[1]
    done = ui_cli("--history", str(store), "--port", port)
    assert done.returncode == 1
    assert done.stderr.startswith(f"aflow: error: cannot serve on 127.0.0.1:{port}")
    assert "Traceback" not in done.stderr


def test_an_ambiguous_prefix_is_a_404_naming_the_candidates_and_a_run_without_tasks_shows(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"

    async def write() -> None:
        async with RunStore(db) as store:
            for run in ("abc-1", "abc-2"):
                store.flow_run_started(run, "empty", {}, datetime.now(UTC))

    asyncio.run(write())
    with aflow_ui("--db", str(db)) as url, httpx.Client(base_url=url) as client:
        for path in ("/api/runs/abc", "/runs/abc"):
            response = client.get(path)
            assert response.status_code == 404
            assert "abc-1" in response.text
            assert "abc-2" in response.text
        body = client.get("/api/runs/abc-2").json()
        assert (body["state"], body["tasks"], body["tasks_total"]) == ("Running", [], 0)
        assert body["graph"] == {"nodes": [], "edges": [], "recorded": False}
        assert client.get("/api/runs/abc-2/logs").json()["logs"] == []


def test_the_benchmark_runs(tmp_path: Path) -> None:
    # bench/ui.py at a small size, so it keeps working (the numbers in docs/ui.md come from its full size)
    command = [sys.executable, "bench/ui.py", "--runs", "20", "--children", "300", "--repeat", "1"]
    done = subprocess.run(command, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "| GET /api/runs/{big}?offset=150 |" in done.stdout
    assert "300 task runs" in done.stdout
