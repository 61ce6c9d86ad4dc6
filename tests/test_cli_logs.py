"""``aflow run``'s log lines, summary and JSON, and ``aflow runs logs/show`` over a store another
process writes: every command runs as a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.streams.text import TextReceiveStream

from aflow.history import RunStore

FLOWS = textwrap.dedent(
    """
    import logging, os, time
    from pathlib import Path
    from aflow import Flow, Parameter, context, task
    from aflow_tasks.shell import ShellTask

    @task(max_retries=2)
    async def shaky(n):
        log = context.get("logger")
        log.info("working on %d", n)
        log.debug("details of %d", n)
        if n == 1 and context.get("task_run_count") < 3:
            raise ValueError(f"flaky {n}")
        return n * 10

    @task(log_stdout=True)
    def say(xs):
        print(f"total {sum(xs)}")
        return sum(xs)

    @task
    async def warn():
        logging.getLogger("thirdparty").warning("careful")

    with Flow("demo") as flow:
        items = Parameter("items", default=[0, 1, 2])
        say(shaky.map(items))
        ShellTask(stream_output=True, name="sh")(command="echo from-shell; echo to-stderr >&2")
        warn()

    @task
    def gated(gate):
        log = context.get("logger")
        log.info("first line")
        while not os.path.exists(gate):
            time.sleep(0.02)
        log.info("second line")
        return 1

    with Flow("gated") as gated_flow:
        gated(Parameter("gate"))

    @task
    async def echo_items(items):
        return len(items)

    with Flow("big") as big:
        echo_items(Parameter("items"))
    """
)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    return tmp_path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AFLOW_HISTORY", "FORCE_COLOR", "TTY_COMPATIBLE")}
    return {**env, **extra}


def aflow_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-W", "error", "-m", "aflow._cli", *args]
    return subprocess.run(
        command, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=60, check=False
    )


def only_run_id(workdir: Path, db: str = "runs.db") -> str:
    listed = aflow_cli("runs", "list", "--history", db, cwd=workdir)
    assert listed.returncode == 0, listed.stderr
    (row,) = listed.stdout.splitlines()[1:]
    return row.split()[0]


# -- aflow run --------------------------------------------------------------------------------


def test_run_shows_task_log_lines_with_task_and_map_index(workdir: Path) -> None:
    done = aflow_cli("run", "flows.py:flow", cwd=workdir)
    assert done.returncode == 0, done.stderr
    err = done.stderr.splitlines()
    line = r"^\d\d:\d\d:\d\d {level:<8}{source}: {message}$"
    for level, source, message in [
        ("INFO", r"shaky\[0\]", "working on 0"),
        ("INFO", r"shaky\[1\]", "working on 1"),
        ("INFO", r"shaky\[1\] \(attempt 2\)", "working on 1"),
        ("INFO", r"shaky\[1\] \(attempt 3\)", "working on 1"),
        ("INFO", "say", "total 30"),  # printed, with log_stdout=True
        ("INFO", "sh", "from-shell"),  # streamed by ShellTask
        ("INFO", "sh", r"\[stderr\] to-stderr"),
        ("WARNING", "thirdparty", "careful"),  # another logger's warning, formatted
    ]:
        pattern = line.format(level=level, source=source, message=message)
        assert any(re.match(pattern, e) for e in err), (pattern, err)
    assert "details of" not in done.stderr  # DEBUG is below the default level
    assert "total 30" not in done.stdout
    assert all(re.match(r"^\d\d:\d\d:\d\d ", e) for e in err)  # nothing bare (no last-resort handler)


def test_log_level_chooses_what_is_shown(workdir: Path) -> None:
    debug = aflow_cli("run", "flows.py:flow", "--log-level", "debug", cwd=workdir)
    assert debug.returncode == 0, debug.stderr
    assert re.search(r"DEBUG   shaky\[2\]: details of 2", debug.stderr)
    warning = aflow_cli("run", "flows.py:flow", "--log-level", "WARNING", cwd=workdir)
    assert warning.returncode == 0, warning.stderr
    assert warning.stderr.strip().splitlines() == [warning.stderr.strip()]  # one line: the warning
    assert warning.stderr.split(" ", 1)[1].startswith("WARNING thirdparty: careful")
    bad = aflow_cli("run", "flows.py:flow", "--log-level", "LOUD", cwd=workdir)
    assert bad.returncode == 2
    assert "'LOUD' is not one of" in bad.stderr


def test_summary_says_attempts_and_prints_the_result(workdir: Path) -> None:
    done = aflow_cli("run", "flows.py:flow", cwd=workdir)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"^\s+shaky \S3\s+Mapped: 3 Success; 5 attempts\s+\S+s$", out, re.M)
    assert re.search(r"^\s+say\s+Success\s+\S+s$", out, re.M)
    head, _, result = out.partition("\nResult:\n")
    assert "TASK" in head
    assert sorted(result.splitlines()) == ["  say = 30", '  sh = "from-shell"', "  warn = null"]


def test_a_long_result_is_abridged(workdir: Path) -> None:
    done = aflow_cli("run", "flows.py:big", "-p", f"items={list(range(2000))}", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "  echo_items = 2000\n" in done.stdout


def test_json_describes_the_run_for_machines(workdir: Path) -> None:
    done = aflow_cli("run", "flows.py:flow", "--json", "--history", "runs.db", cwd=workdir)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["flow"] == "demo"
    assert document["state"] == "Success"
    assert document["successful"] is True
    assert document["run_id"] == only_run_id(workdir)
    assert document["result"] == {"say": 30, "sh": "from-shell", "warn": None}
    tasks = {t["name"]: t for t in document["tasks"]}
    assert tasks["shaky"]["attempts"] == 5
    assert tasks["shaky"]["children"] == {"Success": 3}
    assert tasks["say"]["attempts"] == 1
    assert tasks["items"]["attempts"] == 0
    assert "working on" in done.stderr  # log lines stay on stderr


async def test_run_shows_log_lines_while_the_flow_runs(workdir: Path) -> None:
    gate = workdir / "gate"
    command = [sys.executable, "-m", "aflow._cli", "run", "flows.py:gated_flow", "-p", f"gate={gate}"]
    async with await anyio.open_process(command, cwd=workdir, env=clean_env()) as proc:
        assert proc.stderr is not None
        lines = lines_of(proc.stderr)
        with anyio.fail_after(30):
            first = await anext(lines)
            assert first.endswith("INFO    gated: first line")
            assert not gate.exists()  # the flow is still waiting: the line came live
            gate.touch()
            second = await anext(lines)
        assert second.endswith("INFO    gated: second line")
        assert await proc.wait() == 0


async def lines_of(stream: anyio.abc.ByteReceiveStream) -> AsyncIterator[str]:
    buffer = ""
    async for chunk in TextReceiveStream(stream):
        buffer += chunk
        *complete, buffer = buffer.split("\n")
        for line in complete:
            yield line


# -- aflow runs logs / show -------------------------------------------------------------------


def test_runs_logs_prints_a_runs_records_in_order(workdir: Path) -> None:
    assert aflow_cli("run", "flows.py:flow", "--history", "runs.db", cwd=workdir).returncode == 0
    run_id = only_run_id(workdir)
    done = aflow_cli("runs", "logs", run_id[:6], "--history", "runs.db", cwd=workdir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    stamp = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} "
    assert all(re.match(stamp, line) for line in lines), lines
    shaky_one = [line.split(" ", 2)[2] for line in lines if "shaky[1]" in line]
    assert shaky_one == [
        "INFO    shaky[1]: working on 1",
        "INFO    shaky[1] (attempt 2): working on 1",
        "INFO    shaky[1] (attempt 3): working on 1",
    ]
    assert any(line.endswith("INFO    sh: from-shell") for line in lines)
    assert any(line.endswith("INFO    say: total 30") for line in lines)
    assert not any("details of" in line for line in lines)  # DEBUG is not kept by default
    assert not any("thirdparty" in line for line in lines)  # not a task's logger

    only_sh = aflow_cli("runs", "logs", run_id, "--task", "sh", "--db", "runs.db", cwd=workdir)
    assert [line.split(" ", 2)[2] for line in only_sh.stdout.splitlines()] == [
        "INFO    sh: from-shell",
        "INFO    sh: [stderr] to-stderr",
    ]
    none = aflow_cli("runs", "logs", run_id, "--task", "nope", "--db", "runs.db", cwd=workdir)
    assert none.stdout == "No log records of task 'nope'.\n"


def test_run_ids_are_taken_by_unique_prefix(workdir: Path) -> None:
    async def fill() -> None:
        async with RunStore(workdir / "ids.db") as store:
            for run_id in ("abc-1", "abc-2", "xyz-1"):
                store.flow_run_started(run_id, "f", {}, datetime.now(UTC))

    anyio.run(fill)
    shown = aflow_cli("runs", "show", "x", "--history", "ids.db", cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Run xyz-1 of flow 'f'")
    ambiguous = aflow_cli("runs", "logs", "abc", "--history", "ids.db", cwd=workdir)
    assert ambiguous.returncode == 2
    assert ambiguous.stderr == "aflow: error: run id 'abc' is ambiguous: it starts abc-1, abc-2\n"
    missing = aflow_cli("runs", "show", "q", "--history", "ids.db", cwd=workdir)
    assert missing.returncode == 2
    assert "no run 'q'" in missing.stderr


def test_runs_show_lists_every_attempt_and_abridges_parameters(workdir: Path) -> None:
    assert aflow_cli("run", "flows.py:flow", "--history", "runs.db", cwd=workdir).returncode == 0
    run_id = only_run_id(workdir)
    done = aflow_cli("runs", "show", run_id[:8], "--history", "runs.db", cwd=workdir)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"^\s+TASK\s+STATE\s+AT\s+ATTEMPTS$", out, re.M)
    assert re.search(r"^\s+shaky \S3\s+Mapped: 3 Success\s+\S+ \S+\s+5$", out, re.M)
    assert "Attempts of retried task runs:" in out
    attempts = [line.split() for line in out.splitlines() if line.startswith("  shaky[1]  attempt")]
    assert [(a[2], a[4]) for a in attempts] == [("1", "Retrying:"), ("2", "Retrying:"), ("3", "Success:")]
    assert "attempt 1 failed: Error during execution of task: ValueError('flaky 1')" in out

    items = list(range(2000))
    assert aflow_cli("run", "flows.py:big", "-p", f"items={items}", "--history", "big.db", cwd=workdir).returncode == 0
    big = aflow_cli("runs", "show", only_run_id(workdir, "big.db"), "--history", "big.db", cwd=workdir)
    (params,) = [line for line in big.stdout.splitlines() if line.startswith("  parameters:")]
    assert len(params) < 120
    assert '{"items": [0, 1, 2, 3,' in params
    assert "(2000 items, 10890 characters)" in params


def test_every_runs_command_reads_the_history_variable(workdir: Path) -> None:
    env = clean_env(AFLOW_HISTORY=str(workdir / "env.db"))
    assert aflow_cli("run", "flows.py:flow", cwd=workdir, env=env).returncode == 0
    listed = aflow_cli("runs", "list", cwd=workdir, env=env)
    run_id = listed.stdout.splitlines()[1].split()[0]
    for args in (["list"], ["show", run_id[:5]], ["logs", run_id[:5]], ["list", "--state", "Success"]):
        done = aflow_cli("runs", *args, cwd=workdir, env=env)
        assert done.returncode == 0, (args, done.stderr)
        assert done.stdout.strip(), args
    failed_only = aflow_cli("runs", "list", "--state", "Failed", cwd=workdir, env=env)
    assert failed_only.stdout == "No runs recorded.\n"


@asynccontextmanager
async def running(command: list[str], cwd: Path) -> AsyncIterator[anyio.abc.Process]:
    async with await anyio.open_process(command, cwd=cwd, env=clean_env()) as proc:
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.terminate()


async def test_runs_logs_follow_tails_a_run_in_another_process(workdir: Path) -> None:
    gate = workdir / "gate"
    db = workdir / "runs.db"
    flow_cmd = [sys.executable, "-m", "aflow._cli", "run", "flows.py:gated_flow", "-p", f"gate={gate}", "--history"]
    async with running([*flow_cmd, str(db)], workdir) as flow_proc:
        with anyio.fail_after(30):
            run_id = await first_log_written(db)
        follow_cmd = [sys.executable, "-m", "aflow._cli", "runs", "logs", run_id[:8], "--follow", "--history", str(db)]
        async with running(follow_cmd, workdir) as follower:
            assert follower.stdout is not None
            lines = lines_of(follower.stdout)
            with anyio.fail_after(30):
                assert (await anext(lines)).endswith("INFO    gated: first line")
                gate.touch()  # the flow goes on, logs again and ends
                assert (await anext(lines)).endswith("INFO    gated: second line")
                assert await follower.wait() == 0  # the run ended: so does --follow
                assert await flow_proc.wait() == 0


async def first_log_written(db: Path) -> str:
    """Wait until the run in ``db`` has a log record; return its id (polls: another process writes)."""
    while True:
        if await anyio.Path(db).exists():
            async with RunStore(db) as store:
                runs = await store.list_runs()
                if runs and await store.task_logs(runs[0].run_id):
                    return runs[0].run_id
        await anyio.sleep(0.05)


def run_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the command with stdout and stderr on a pseudo-terminal (progress display on)."""
    import pty
    import select

    leader, follower = pty.openpty()
    env = clean_env(COLUMNS="120")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aflow._cli", *args], cwd=cwd, env=env, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the terminal closed: the command ended
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    code = proc.wait(timeout=10)
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))


def test_on_a_terminal_log_lines_print_above_the_progress_display(workdir: Path) -> None:
    code, text = run_on_a_terminal(["run", "flows.py:flow"], workdir)
    assert code == 0, text
    assert "INFO    say: total 30" in text  # printed by a log_stdout task while the display draws
    assert "INFO    sh: from-shell" in text
    assert re.search(r"✓ demo +━+ 7/7", text)
    assert "Flow 'demo': Success" in text
