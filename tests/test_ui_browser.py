"""``aflow ui`` in a real browser: Debian's headless Chromium loads the pages of a real ``aflow ui``
process over a store written by flow runs in other processes, and the tests check what a person
sees (see tests/cdp.py for the DevTools client)."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cdp import CHROMIUM_NAMES, Page, chromium
from tests.ui_support import FLOWS, aflow_ui, run_flow, start_flow, write_store

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("ui-browser"))


@pytest.fixture(scope="module")
def url(store: Path) -> Iterator[str]:
    with aflow_ui("--history", str(store)) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[str]:
    if not any(shutil.which(name) for name in CHROMIUM_NAMES):
        pytest.skip("needs Chromium: apt-get install chromium (.ci/run installs it)")
    with chromium() as endpoint:
        yield endpoint


@pytest.fixture
async def page(browser: str) -> AsyncIterator[Page]:
    p = await Page.connect(browser)
    try:
        yield p
    finally:
        await p.close()


X = "\N{MULTIPLICATION SIGN}"  # a mapped task's label: "flaky" X "3"


async def api(url: str, path: str) -> Any:
    async with httpx.AsyncClient(base_url=url) as client:
        return (await client.get(path)).json()


NODE_STATES = "[...document.querySelectorAll('#graph-svg .node')].map(n => [n.dataset.name, n.dataset.state])"


def js(value: object) -> str:
    return json.dumps(value)


async def test_the_runs_page_lists_runs_and_filters_them(page: Page, url: str) -> None:
    await page.goto(f"{url}/")
    assert await page.text("#runs tbody tr td:first-child") == ["ui-broken", "ui-demo"]
    assert await page.text("#runs tbody .state") == ["Failed", "Success"]
    await page.goto(f"{url}/?state=Failed")
    assert await page.text("#runs tbody tr td:first-child") == ["ui-broken"]
    assert await page.eval("document.getElementById('state-filter').value") == "Failed"
    await page.goto(f"{url}/?flow=nothing-like-this")
    assert await page.eval("document.getElementById('empty').hidden") is False
    # a click on a run opens its page
    await page.goto(f"{url}/?flow=ui-demo")
    await page.eval("document.querySelector('#runs tbody a.flow').click()")
    await page.wait_for("location.pathname.startsWith('/runs/') && document.body.dataset.ready")
    assert await page.wait_for("document.getElementById('flow-name').textContent") == "ui-demo"


async def test_the_run_page_shows_the_graph_the_timeline_and_the_logs(page: Page, url: str, tmp_path: Path) -> None:
    [run] = (await api(url, "/api/runs?flow=ui-demo"))["runs"]
    await page.goto(f"{url}/runs/{run['id']}")
    assert await page.text("#flow-name") == ["ui-demo"]
    assert await page.text("#run-state") == ["Success"]
    # the graph: one node per task, coloured by state; the mapped task collapsed with its counts
    nodes = await page.eval(
        "[...document.querySelectorAll('#graph-svg .node')].map(n => [n.querySelector('.name').textContent,"
        " n.dataset.state, n.querySelector('.counts').textContent, getComputedStyle(n.querySelector('rect')).stroke])"
    )
    by_name = {n[0]: n for n in nodes}
    assert set(by_name) == {"n", "numbers", f"flaky {X}3", "total"}
    assert by_name[f"flaky {X}3"][1:3] == ["Mapped", "3 Success"]
    assert by_name["numbers"][1:3] == ["Success", "Success"]
    assert by_name["total"][1:3] == ["Success", "Success"]
    assert by_name["n"][1:3] == ["NotRecorded", "parameter"]  # the engine records no parameter states
    green = by_name["numbers"][3]
    assert green == "rgb(46, 158, 91)"
    assert {by_name[name][3] for name in ("total", f"flaky {X}3")} == {green}
    assert by_name["n"][3] != green
    assert await page.eval("document.querySelectorAll('#graph-svg path.edge').length") >= 2
    # the timeline: one row per task run, the retried one with two attempts and the wait between them
    rows = await page.eval(
        "[...document.querySelectorAll('#timeline tbody tr')].map(r => [r.querySelector('.task').textContent,"
        " r.querySelector('.state').textContent, r.querySelector('.attempts').textContent,"
        " [...r.querySelectorAll('rect.seg')].map(s => s.dataset.kind)])"
    )
    assert sorted(r[0] for r in rows) == ["flaky[0]", "flaky[1]", "flaky[2]", "numbers", "total"]
    assert {r[1] for r in rows} == {"Success"}
    retried = next(r for r in rows if r[0] == "flaky[1]")
    assert retried[2:] == ["2", ["attempt", "wait", "attempt"]]
    assert await page.eval("document.querySelectorAll('#timeline rect.seg.attempt.s-failed').length") == 1
    # the logs, shown without a click, each line naming its task
    await page.wait_for("document.querySelectorAll('#logs .log').length >= 6")
    logs = await page.text("#logs .log")
    assert any("WARNING flaky[1] item 1 failed once" in line for line in logs)
    assert any("INFO numbers making 3 numbers" in line for line in logs)
    assert any("INFO total total is 3" in line for line in logs)
    # filtered by task
    await page.eval(
        "const s = document.getElementById('log-filter'); s.value = 'total'; s.dispatchEvent(new Event('change'))"
    )
    await page.wait_for("document.querySelectorAll('#logs .log').length === 1")
    assert await page.text("#logs .log .message") == ["total is 3"]
    await page.screenshot(tmp_path / "run.png")
    assert (tmp_path / "run.png").read_bytes().startswith(b"\x89PNG")


async def test_an_unknown_run_is_a_404_page(page: Page, url: str) -> None:
    await page.send("Page.navigate", url=f"{url}/runs/no-such-run")
    await page.wait_for("document.readyState === 'complete' && !!document.querySelector('h1')")
    assert await page.text("h1") == ["404 Not Found"]
    assert "no-such-run" in (await page.text("main"))[0]


async def test_a_run_in_progress_updates_live_and_ends_in_its_final_states(
    page: Page, url: str, store: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    flow = start_flow(store.parent, "live", store, f"go={js(str(go))}")
    try:
        await page.goto(f"{url}/")
        await page.wait_for(
            "[...document.querySelectorAll('#runs tbody td:first-child')].some(td => td.textContent === 'ui-live')"
        )
        [run] = (await api(url, "/api/runs?flow=ui-live"))["runs"]
        await page.goto(f"{url}/runs/{run['id']}")
        assert await page.text("#run-state") == ["Running"]
        await page.wait_for("!!document.querySelector('#graph-svg .node[data-state=Running]')")
        assert await page.eval("document.getElementById('live').hidden") is False
        assert await page.eval(f"Object.fromEntries({NODE_STATES})") == {
            "go": "Pending",  # parameters have no recorded state: not recorded once the run has ended
            "wait_for_go": "Running",
            "after": "Pending",
        }
        await page.wait_for(
            "[...document.querySelectorAll('#logs .message')].some(m => m.textContent === 'waiting for go')"
        )
        go.touch()
        _, err = await asyncio.to_thread(flow.communicate, timeout=60)
        assert flow.returncode == 0, err
        # no reload: the page polls until the run has ended
        shown = await page.wait_for(
            "document.getElementById('run-state').textContent !== 'Running'"
            " && document.getElementById('run-state').textContent",
            seconds=40,
        )
        assert shown == "Success"
        states = await page.eval(f"Object.fromEntries({NODE_STATES})")
        assert states == {"go": "NotRecorded", "wait_for_go": "Success", "after": "Success"}
        rows = await page.text("#timeline tbody .state")
        assert rows == ["Success", "Success"]
        await page.wait_for("[...document.querySelectorAll('#logs .message')].some(m => m.textContent === 'go')")
        assert await page.eval("document.getElementById('live').hidden") is True
    finally:
        go.touch()
        if flow.returncode is None:
            flow.communicate(timeout=60)


async def test_more_log_lines_load_once_however_often_the_run_was_redrawn(page: Page, tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(FLOWS)
    db = tmp_path / "chatty.db"
    done = run_flow(tmp_path, "talkative", db)
    assert done.returncode == 0, done.stderr
    with aflow_ui("--history", str(db)) as ui:
        (run,) = (await api(ui, "/api/runs"))["runs"]
        await page.goto(f"{ui}/runs/{run['id']}")
        assert await page.wait_for("document.querySelectorAll('#logs .log').length") == 1000  # the first page
        for _ in range(3):  # redraw the run (a filter change), waiting for each redraw
            await page.eval(
                "window.shown = document.getElementById('tasks-info').firstChild;"
                "document.getElementById('task-state-filter').dispatchEvent(new Event('change'))"
            )
            await page.wait_for("document.getElementById('tasks-info').firstChild !== window.shown")
        listeners = await page.send(
            "Runtime.evaluate",
            expression="getEventListeners(document.getElementById('logs-more')).click.length",
            includeCommandLineAPI=True,
            returnByValue=True,
        )
        assert listeners["result"]["value"] == 1  # one handler, not one per redraw
        await page.eval("document.getElementById('logs-more').click()")
        await page.wait_for("document.getElementById('logs-more').hidden")
        await page.wait_for("document.getElementById('logs-info').textContent === '1500 lines'")
        messages = await page.text("#logs .log .message")
    assert messages == [f"line {i}" for i in range(1500)]  # each line once, in order
