"""Kill a checkpointing flow with SIGKILL at random moments, rerun it, and check what reran.

A subprocess runs a flow of 300 tasks (15 chains of 20 steps, each step sleeping up to 0.2 s),
each with a ``target`` on a `SegmentResult` (or a `LocalResult`); each task execution appends
its name to a log first. The test kills the process from outside after a random delay, reads
what the store holds (a fresh store instance, in this process), and reruns. Checked after
every kill: no task whose result was persisted before the kill runs again, every persisted
value is whole and right, and no step is persisted without the step before it. The last run
completes with the right values.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import aflow
from aflow.results import LocalResult, Result, SegmentResult

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

W, L = 15, 20  # W chains of L steps (each step after the one before it), then "total"
SCRIPT = textwrap.dedent(
    """
    from __future__ import annotations

    import asyncio
    import os
    import random
    import sys

    from aflow import Flow, task
    from aflow.results import LocalResult, SegmentResult

    WORK, STORE, W, L = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    RESULT = (SegmentResult if STORE == "segment" else LocalResult)(os.path.join(WORK, "results"))
    LOG = os.open(os.path.join(WORK, "executions.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)


    def ran(name: str) -> None:
        # one O_APPEND write: a whole line, kept by the kernel when this process is killed
        os.write(LOG, (name + "\\n").encode())


    @task(target="c{k}/{j}.v", result=RESULT)
    async def step(prev: int, k: int, j: int) -> int:
        ran(f"c{k}/{j}")
        await asyncio.sleep(random.random() * 0.2)
        return prev + 1


    @task(target="total.v", result=RESULT)
    def total(xs: list[int]) -> int:
        ran("total")
        return sum(xs)


    with Flow("kill-anywhere") as flow:
        ends = []
        for j in range(W):
            value = j
            for k in range(L):
                value = step(value, k, j)
            ends.append(value)
        out = total(ends)


    async def main() -> None:
        print("started", flush=True)
        state = await flow.run()
        assert state.is_successful(), state
        print("result", state.result[out].result, flush=True)


    asyncio.run(main())
    """
)


def expected(name: str) -> int:
    if name == "total":
        return sum(j + L for j in range(W))
    k, j = name[1:].split("/")
    return int(j) + int(k) + 1


def upstream(name: str) -> str:
    k, j = name[1:].split("/")
    return f"c{int(k) - 1}/{j}"


NAMES = [f"c{k}/{j}" for k in range(L) for j in range(W)] + ["total"]


def persisted(store: str, results: Path) -> set[str]:
    """The tasks whose results the store holds now (each value checked whole and right)."""

    async def read() -> set[str]:
        result: Result = SegmentResult(results) if store == "segment" else LocalResult(results)
        found = set()
        for name in NAMES:
            if await result.exists(f"{name}.v"):
                assert await result.read(f"{name}.v") == expected(name), name
                found.add(name)
        return found

    return asyncio.run(read())


def executions(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize(("store", "kills"), [("segment", 20), ("local", 6)])
def test_a_flow_killed_anywhere_never_reruns_a_persisted_task(tmp_path: Path, store: str, kills: int) -> None:
    script = tmp_path / "flow_script.py"
    script.write_text(SCRIPT)
    log = tmp_path / "executions.log"
    seed = random.randrange(2**32)
    print(f"kill-anywhere seed: {seed}")  # shown when the test fails
    rng = random.Random(seed)
    env = dict(os.environ)
    root = str(Path(aflow.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-X", "dev", "-W", "error", str(script), str(tmp_path), store, str(W), str(L)]

    done: set[str] = set()  # persisted as of the last kill
    killed = 0
    for attempt in range(kills + 1):
        seen = len(executions(log))
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "started\n", proc.communicate()[1]
            if attempt < kills:
                time.sleep(rng.random() * 0.4)  # anywhere in the run: mid-task, mid-write, between
                proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=60)
        ran = executions(log)[seen:]
        again = sorted(set(ran) & done)
        assert again == [], f"seed {seed}: persisted before kill {killed}, yet ran again: {again}"
        if proc.returncode == 0:  # it finished before the kill came (or was not to be killed)
            assert out.splitlines() == [f"result {expected('total')}"], err
            break
        assert proc.returncode == -signal.SIGKILL, err
        killed += 1
        now = persisted(store, tmp_path / "results")
        assert now >= done, f"seed {seed}: results vanished: {sorted(done - now)}"
        # a step starts once the step before it is persisted (its write returned): never the other way
        orphans = [n for n in now if n != "total" and not n.startswith("c0/") and upstream(n) not in now]
        assert orphans == [], f"seed {seed}: persisted before their upstream: {orphans}"
        print(f"kill {killed}: {len(now)} of {len(NAMES)} persisted, {len(ran)} ran in this run")
        done = now
    else:
        pytest.fail(f"seed {seed}: the last run did not complete")

    assert killed >= kills // 4, f"seed {seed}: only {killed} kills landed mid-run"
    assert persisted(store, tmp_path / "results") == set(NAMES)
    runs = executions(log)
    assert set(runs) == set(NAMES)  # every task ran at least once; reruns only of unpersisted ones
