"""A run store written by flow runs in other processes, and a real ``aflow ui`` process serving it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .cdp import stop

FLOWS = textwrap.dedent(
    """
    import asyncio
    import os
    from datetime import timedelta

    from aflow import Flow, Parameter, context, task

    @task
    def numbers(n):
        context.get("logger").info("making %d numbers", n)
        return list(range(n))

    @task(max_retries=1, retry_delay=timedelta(milliseconds=50))
    def flaky(x):
        logger = context.get("logger")
        if x == 1 and context.get("task_run_count") == 1:
            logger.warning("item %d failed once", x)
            raise ValueError("first try fails")
        logger.info("item %d done", x)
        return x

    @task
    def total(xs):
        context.get("logger").info("total is %d", sum(xs))
        return sum(xs)

    with Flow("ui-demo") as flow:
        total(flaky.map(numbers(Parameter("n", default=3))))

    @task
    def boom():
        context.get("logger").error("about to fail")
        raise RuntimeError("boom")

    with Flow("ui-broken") as broken:
        boom()

    @task
    async def wait_for_go(path):
        context.get("logger").info("waiting for %s", os.path.basename(path))
        while not os.path.exists(path):
            await asyncio.sleep(0.05)
        context.get("logger").info("go")

    @task
    def after(_):
        return "done"

    with Flow("ui-live") as live:
        after(wait_for_go(Parameter("go")))

    @task
    def chatty():
        for i in range(1500):
            context.get("logger").info("line %d", i)

    with Flow("ui-chatty") as talkative:
        chatty()
    """
)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AFLOW_HISTORY", "FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(extra)
    return env


def run_flow(workdir: Path, target: str, db: Path, *params: str) -> subprocess.CompletedProcess[str]:
    """Run a flow of FLOWS with ``aflow run`` in another process, recording into ``db``."""
    args = [a for p in params for a in ("--param", p)]
    command = [sys.executable, "-m", "aflow._cli", "run", f"flows.py:{target}", "--history", str(db), *args]
    return subprocess.run(
        command, cwd=workdir, env=child_env(), capture_output=True, text=True, timeout=60, check=False
    )


def start_flow(workdir: Path, target: str, db: Path, *params: str) -> subprocess.Popen[str]:
    """Start a flow of FLOWS with ``aflow run`` in another process; the caller waits for it."""
    args = [a for p in params for a in ("--param", p)]
    command = [sys.executable, "-m", "aflow._cli", "run", f"flows.py:{target}", "--history", str(db), *args]
    return subprocess.Popen(
        command, cwd=workdir, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def write_store(workdir: Path) -> Path:
    """Write FLOWS to ``workdir`` and record a successful run (retries, a map, logs) and a failed one."""
    (workdir / "flows.py").write_text(FLOWS)
    db = workdir / "runs.db"
    done = run_flow(workdir, "flow", db)
    assert done.returncode == 0, done.stderr
    done = run_flow(workdir, "broken", db)
    assert done.returncode == 1, done.stderr
    return db


@contextmanager
def aflow_ui(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``aflow ui ARGS --port 0`` as a separate process; yield the URL it prints; stop it."""
    command = [sys.executable, "-W", "error", "-m", "aflow._cli", "ui", "--port", "0", *args]
    proc = subprocess.Popen(command, env=env or child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        found: list[str] = []
        reader = threading.Thread(target=lambda: found.append(proc.stdout.readline() if proc.stdout else ""))
        reader.start()
        reader.join(30)
        line = found[0] if found else ""
        match = re.search(r"at (http://\S+/) ", line)
        if match is None:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"aflow ui did not start: {line!r} {err}")
        yield match.group(1).rstrip("/")
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err
    finally:
        stop(proc)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
