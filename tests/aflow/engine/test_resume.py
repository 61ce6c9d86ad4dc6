"""The resume proof: a flow whose process is killed (SIGKILL) mid-run, then run again.

The second run must execute exactly the tasks that had not finished in the first: the others
are Cached, their values read back from targets (``LocalResult`` files) or from the run
store's cache (``cache_for`` + ``history=<sqlite file>``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import aflow
from aflow.history import RunStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

TIMEOUT = 60  # seconds for one run of the script

SCRIPT = textwrap.dedent(
    """
    from __future__ import annotations

    import asyncio
    import json
    import os
    import signal
    import sys
    from datetime import timedelta
    from pathlib import Path

    import anyio

    from aflow import Flow, cache_validators, task
    from aflow.history import RunStore
    from aflow.results import LocalResult

    WORK = Path(sys.argv[1])
    MODE = sys.argv[2]  # "target" or "cache"
    LOG = WORK / "executions.log"
    MARKER = WORK / "killed-once"
    STORE: list[RunStore] = []

    if MODE == "target":
        RESULT = LocalResult(WORK / "results")

        def persisted(**kwargs):
            name = kwargs.get("name")
            return task(name=name, target="{flow_name}/{task_name}.pkl", result=RESULT)
    else:

        def persisted(**kwargs):
            return task(
                name=kwargs.get("name"),
                cache_for=timedelta(hours=1),
                cache_validator=cache_validators.all_inputs,
            )


    def log(name: str) -> None:
        with open(LOG, "a") as f:
            f.write(name + "\\n")
            f.flush()
            os.fsync(f.fileno())


    @persisted(name="extract")
    def extract() -> list[int]:
        log("extract")
        return [1, 2, 3, 4]


    @persisted(name="clean_a")
    def clean_a(xs: list[int]) -> list[int]:
        log("clean_a")
        return [x * 10 for x in xs]


    @persisted(name="clean_b")
    def clean_b(xs: list[int]) -> list[int]:
        log("clean_b")
        return [x + 1 for x in xs]


    @persisted(name="clean_c")
    async def clean_c(xs: list[int]) -> list[int]:
        async with await anyio.open_file(LOG, "a") as f:
            await f.write("clean_c\\n")
        return [-x for x in xs]


    @persisted(name="combine")
    async def combine(a: list[int], b: list[int], c: list[int]) -> int:
        async with await anyio.open_file(LOG, "a") as f:
            await f.write("combine\\n")
        if not MARKER.exists():  # the first run dies here, with its upstreams done
            MARKER.touch()
            if STORE:
                await STORE[0].flush()  # the run's "Running" record reaches the file first
            os.kill(os.getpid(), signal.SIGKILL)
        return sum(a) + sum(b) + sum(c)


    @persisted(name="report")
    def report(total: int) -> str:
        log("report")
        return f"total={total}"


    @persisted(name="publish")
    def publish(total: int, text: str) -> dict:
        log("publish")
        return {"total": total, "text": text}


    with Flow("resume-" + MODE) as flow:
        raw = extract()
        total = combine(clean_a(raw), clean_b(raw), clean_c(raw))
        out = publish(total, report(total))


    async def main() -> None:
        if MODE == "cache":
            async with RunStore(WORK / "runs.db") as store:
                STORE.append(store)
                state = await flow.run(history=store)
        else:
            state = await flow.run()
        print(
            json.dumps(
                {
                    "flow": type(state).__name__,
                    "states": {t.name: type(s).__name__ for t, s in state.result.items()},
                    "result": state.result[out].result,
                }
            )
        )


    asyncio.run(main())
    """
)

ALL_TASKS = {"extract", "clean_a", "clean_b", "clean_c", "combine", "report", "publish"}
BEFORE_KILL = {"extract", "clean_a", "clean_b", "clean_c"}


def run_script(script: Path, work: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    root = str(Path(aflow.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", str(script), str(work), mode],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
    )


def executions(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("mode", ["target", "cache"])
def test_a_killed_run_resumes_where_it_died(tmp_path: Path, mode: str) -> None:
    script = tmp_path / "flow_script.py"
    script.write_text(SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    log = work / "executions.log"

    first = run_script(script, work, mode)
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert first.stdout == ""  # it died before printing a final state
    first_run = executions(log)
    assert set(first_run) == BEFORE_KILL | {"combine"}
    assert first_run[0] == "extract"
    assert first_run[-1] == "combine"
    assert (work / "killed-once").exists()
    if mode == "target":
        # what finished before the kill is on disk: exactly the upstreams of the killer
        found = sorted(p.name for p in (work / "results" / "resume-target").iterdir())
        assert found == sorted(f"{name}.pkl" for name in BEFORE_KILL)

    second = run_script(script, work, mode)
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    second_run = executions(log)[len(first_run) :]
    # exactly the tasks that had not finished: combine first, then its downstreams
    assert sorted(second_run) == sorted(ALL_TASKS - BEFORE_KILL)
    assert second_run[0] == "combine"
    assert second_run.index("report") < second_run.index("publish")

    out: dict[str, Any] = json.loads(second.stdout)
    assert out["flow"] == "Success"
    assert out["result"] == {"total": 100 + 14 - 10, "text": "total=104"}
    for name in BEFORE_KILL:
        assert out["states"][name] == "Cached", name
    if mode == "target":
        for name in ALL_TASKS - BEFORE_KILL:
            assert out["states"][name] == "Success", name
    else:  # with cache_for, a fresh success is Cached too (Prefect 1): the log tells them apart
        assert set(out["states"].values()) == {"Cached"}

    third = run_script(script, work, mode)  # everything is stored now: nothing runs
    assert third.returncode == 0, third.stderr
    assert executions(log)[len(first_run) + len(second_run) :] == []
    assert json.loads(third.stdout)["result"] == out["result"]


def test_the_run_store_shows_the_killed_run_unfinished(tmp_path: Path) -> None:
    script = tmp_path / "flow_script.py"
    script.write_text(SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    assert run_script(script, work, "cache").returncode == -signal.SIGKILL
    assert run_script(script, work, "cache").returncode == 0

    async def read() -> tuple[Any, Any, Any]:
        async with RunStore(work / "runs.db") as store:
            runs = await store.list_runs("resume-cache")
            killed, resumed = sorted(runs, key=lambda r: r.started_at)
            return killed, resumed, await store.latest_task_states(killed.run_id)

    killed, resumed, killed_tasks = asyncio.run(read())
    assert killed.state == "Running"  # it never finished
    assert killed.ended_at is None
    assert resumed.state == "Success"
    assert resumed.ended_at is not None
    # flushed by the killer just before the kill: its upstreams done, itself running
    last = {rec.task_name: rec.state for rec in killed_tasks.values()}
    assert last == {**dict.fromkeys(BEFORE_KILL, "Cached"), "combine": "Running"}
