"""Take the screenshots of docs/ui.md: real flow runs in other processes, a real ``aflow ui``, Chromium.

Run from the repository root: ``python scripts/ui_screenshots.py`` (needs ``aflow-engine[ui]`` and Debian's
``chromium``); writes docs/img/ui-runs.png, docs/img/ui-run.png and docs/img/ui-live.png.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.cdp import Page, chromium  # noqa: E402
from tests.ui_support import aflow_ui, run_flow, start_flow  # noqa: E402

FLOWS = textwrap.dedent(
    """
    import asyncio
    import os
    from datetime import timedelta

    from aflow import Flow, Parameter, context, task, unmapped

    @task
    async def extract(n):
        await asyncio.sleep(0.15)
        context.get("logger").info("fetched %d records", n)
        return list(range(n))

    @task(max_retries=1, retry_delay=timedelta(milliseconds=120))
    async def transform(record, fail, flaky):
        logger = context.get("logger")
        await asyncio.sleep(0.04 + (record * 37 % 11) / 60)
        if record == flaky and context.get("task_run_count") == 1:
            logger.warning("record %d: upstream timeout, retrying", record)
            raise TimeoutError("upstream timeout")
        if record == fail:
            logger.error("record %d is malformed", record)
            raise ValueError(f"record {record} is malformed")
        logger.info("record %d transformed", record)
        return record * 10

    @task
    async def load(rows):
        await asyncio.sleep(0.1)
        context.get("logger").info("loaded %d rows", len(rows))

    with Flow("etl") as etl:
        fail, flaky = Parameter("fail", default=-1), Parameter("flaky", default=3)
        rows = transform.map(extract(Parameter("n", default=12)), fail=unmapped(fail), flaky=unmapped(flaky))
        load(rows)

    @task
    async def wait_for(path):
        context.get("logger").info("waiting for the upstream export")
        while not os.path.exists(path):
            await asyncio.sleep(0.05)

    @task
    async def report(_):
        context.get("logger").info("report sent")

    with Flow("nightly-report") as nightly:
        report(wait_for(Parameter("go")))
    """
)


async def shoot(endpoint: str, url: str, out: Path, live_id: str) -> None:
    """Load the runs list, a failed run and a run in progress; save each as a PNG in ``out``."""
    page = await Page.connect(endpoint)
    try:
        await page.goto(f"{url}/")
        await page.screenshot(out / "ui-runs.png")
        await page.goto(f"{url}/?flow=etl")
        await page.eval("document.querySelector('#runs tbody a.flow').click()")
        await page.wait_for("location.pathname.startsWith('/runs/') && document.body.dataset.ready")
        await page.wait_for("document.querySelectorAll('#logs .log').length > 5")
        await page.screenshot(out / "ui-run.png")
        await page.goto(f"{url}/runs/{live_id}")
        await page.wait_for("document.querySelectorAll('#logs .log').length > 0")
        await page.screenshot(out / "ui-live.png")
    finally:
        await page.close()


def main() -> None:
    """Record the runs, serve them, take the screenshots."""
    out = ROOT / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="aflow-ui-shots-"))
    (work / "flows.py").write_text(FLOWS)
    db = work / "runs.db"
    db.unlink(missing_ok=True)
    run_flow(work, "etl", db)
    run_flow(work, "etl", db, "n=20", "flaky=-1")
    run_flow(work, "etl", db, "fail=7")
    go = work / "go"
    go.unlink(missing_ok=True)
    live = start_flow(work, "nightly", db, f"go={json.dumps(str(go))}")
    try:
        time.sleep(1.5)
        with aflow_ui("--history", str(db)) as url, chromium() as endpoint:
            import httpx

            [live_run] = httpx.get(f"{url}/api/runs?flow=nightly-report").json()["runs"]
            asyncio.run(shoot(endpoint, url, out, live_run["id"]))
    finally:
        go.touch()
        live.communicate(timeout=60)
    for name in ("ui-runs.png", "ui-run.png", "ui-live.png"):
        sys.stdout.write(f"{out / name}\n")


if __name__ == "__main__":
    main()
