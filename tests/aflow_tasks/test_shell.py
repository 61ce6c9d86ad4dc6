from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from aflow import Flow, TaskDefinitionError, signals
from aflow.states import Cancelled, Failed, TimedOut
from aflow_tasks.shell import ShellTask

# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Script files go to a directory of the test's own, checked empty afterwards."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scripts))
    yield scripts
    assert list(scripts.iterdir()) == [], "a script file was left behind"


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie is dead: this machine's init does not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


async def assert_gone(pids: list[int]) -> None:
    """Poll (at most about 2 s) for the kernel to finish the processes, then assert."""
    for _ in range(100):
        if not any(running(p) for p in pids):
            return
        await anyio.sleep(0.02)
    assert [p for p in pids if running(p)] == []


# Prints the shell's pid, a background child's and a grandchild's (under another sh), then waits.
FAMILY = "echo $$; sleep 30 & echo $!; sh -c 'sleep 30 & echo $!; wait' & wait"


# -- configuration -------------------------------------------------------------------------------


def test_init_defaults_are_stored():
    t = ShellTask()
    assert t.command is None
    assert t.env is None
    assert t.helper_script is None
    assert t.shell == "bash"
    assert t.return_all is False
    assert t.log_stderr is False
    assert t.stream_output is False
    assert t.cwd is None
    assert t.kill_grace == 5.0
    assert t.timeout is None  # the engine's timeout, untouched


def test_init_values_are_stored_and_task_kwargs_pass_through(tmp_path):
    t = ShellTask(
        command="ls",
        env={"A": "1"},
        helper_script="cd /",
        shell="sh",
        return_all=True,
        log_stderr=True,
        stream_output="debug",
        cwd=tmp_path,
        kill_grace=0.5,
        name="lister",
        timeout=3,
        max_retries=1,
    )
    assert (t.command, t.env, t.helper_script, t.shell) == ("ls", {"A": "1"}, "cd /", "sh")
    assert (t.return_all, t.log_stderr, t.stream_output, t.cwd, t.kill_grace) == (
        True,
        True,
        logging.DEBUG,
        tmp_path,
        0.5,
    )
    assert (t.name, t.timeout, t.max_retries) == ("lister", 3.0, 1)


@pytest.mark.parametrize(
    ("given", "stored"),
    [(True, logging.INFO), (False, False), ("INFO", logging.INFO), ("warning", logging.WARNING), (15, 15), (0, False)],
)
def test_stream_output_levels(given, stored):
    assert ShellTask(stream_output=given).stream_output == stored


def test_bad_arguments():
    with pytest.raises(ValueError, match="not a logging level name"):
        ShellTask(stream_output="LOUD")
    with pytest.raises(TypeError, match="stream_output"):
        ShellTask(stream_output=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kill_grace"):
        ShellTask(kill_grace=-1)


async def test_missing_command_is_a_clear_error():
    with pytest.raises(ValueError, match=r"ShellTask needs a command: pass command="):
        await ShellTask().run()


async def test_missing_shell_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match=r"shell 'no-such-shell-aflow' was not found"):
        await ShellTask(command="echo hi", shell="no-such-shell-aflow").run()


async def test_missing_cwd_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not an existing directory"):
        await ShellTask(command="pwd", cwd=tmp_path / "nope").run()


# -- success -------------------------------------------------------------------------------------


async def test_returns_the_last_line():
    assert await ShellTask(command="echo hi").run() == "hi"
    assert await ShellTask(command="echo one; echo two").run() == "two"
    assert await ShellTask(command="printf 'a\\nno newline'").run() == "no newline"
    assert await ShellTask(command="printf 'crlf\\r\\n'").run() == "crlf"


async def test_return_all_and_no_output():
    assert await ShellTask(command="echo one; echo; echo three", return_all=True).run() == ["one", "", "three"]
    assert await ShellTask(command="true").run() is None
    assert await ShellTask(command="true", return_all=True).run() == []


async def test_undecodable_bytes_are_replaced():
    assert await ShellTask(command="printf 'caf\\xc3\\xa9 \\xff\\n'").run() == "café \ufffd"


async def test_call_overrides_win_over_init(tmp_path):
    t = ShellTask(command="echo init", env={"WHO": "init"}, helper_script="greet() { echo init; }", cwd="/")
    assert await t.run() == "init"
    assert await t.run(command="echo call") == "call"
    assert await t.run(command='echo "$WHO"') == "init"
    assert await t.run(command='echo "$WHO"', env={"WHO": "call"}) == "call"
    assert await t.run(command="greet") == "init"
    assert await t.run(command="greet", helper_script="greet() { echo call; }") == "call"
    assert await t.run(command="pwd") == "/"
    assert await t.run(command="pwd", cwd=tmp_path) == str(tmp_path)


async def test_helper_script_runs_first_in_the_same_shell(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "marker").write_text("x")
    t = ShellTask(helper_script=f'cd {work}\nshout() {{ echo "$1!"; }}', return_all=True)
    assert await t.run(command="ls; shout hey") == ["marker", "hey!"]


async def test_env_is_merged_over_the_process_environment(monkeypatch):
    monkeypatch.setenv("AFLOW_SHELL_OUTER", "outer")
    out = await ShellTask(command='echo "$AFLOW_SHELL_OUTER $INNER $NUM"; command -v ls', return_all=True).run(
        env={"INNER": "inner", "NUM": 7}
    )
    assert isinstance(out, list)
    assert out[0] == "outer inner 7"
    assert out[1].endswith("/ls")  # PATH came from os.environ
    assert "INNER" not in os.environ


async def test_other_shells_and_interpreters():
    assert await ShellTask(command="echo $((6 * 7))", shell="sh").run() == "42"
    assert await ShellTask(command="print(6 * 7)", shell=sys.executable).run() == "42"


async def test_a_posix_shell_reads_the_script_from_a_pipe_and_others_from_a_file(private_tmp):
    # bash /dev/fd/N: the shell runs a script file, as Prefect 1's does, but none is written
    for shell in ("bash", "sh"):
        zero = await ShellTask(command='echo "$0"', shell=shell).run()
        assert isinstance(zero, str)
        assert zero.startswith("/dev/fd/")
    # another interpreter runs a script file (removed afterwards: the fixture checks)
    script = await ShellTask(command="import sys; print(sys.argv[0])", shell=sys.executable).run()
    assert isinstance(script, str)
    assert script.startswith(str(private_tmp))


async def test_a_script_too_long_for_the_pipe_goes_through_a_file(private_tmp):
    filler = ": " + "x" * 200_000
    out = await ShellTask(command=f'{filler}\necho "$0"', helper_script="greet() { echo hi; }").run()
    assert isinstance(out, str)
    assert out.startswith(str(private_tmp))
    assert await ShellTask(command=f"{filler}\ngreet", helper_script="greet() { echo hi; }").run() == "hi"


async def test_a_single_command_killed_by_a_signal_reports_the_shell_exit_code():
    # as with Prefect 1's script file: the shell runs the command and exits 128 + 9 (bash -c
    # would exec the command instead and report the signal)
    with pytest.raises(signals.FAIL, match=r"^Command failed with exit code 137"):
        await ShellTask(command='sh -c "kill -9 \\$\\$"').run()


async def test_a_script_that_looks_like_an_option_still_runs_as_a_script():
    # as an argument, bash would read these as its own options
    assert await ShellTask(command="--version 2>/dev/null; echo ran").run() == "ran"
    assert await ShellTask(command="+x 2>/dev/null; echo ran", shell="sh").run() == "ran"


async def test_stdin_is_empty():
    assert await ShellTask(command="cat; echo end").run() == "end"


async def test_large_stdout_and_stderr_together_do_not_deadlock():
    # ~2 MB on each pipe, interleaved: both pipes must be read while the command runs
    cmd = 'for i in $(seq 1 100000); do echo "out $i xxxxxxxxxx"; echo "err $i xxxxxxxxxx" >&2; done'
    with anyio.fail_after(60):
        out = await ShellTask(command=cmd, return_all=True).run()
    assert isinstance(out, list)
    assert len(out) == 100000
    assert out[-1] == "out 100000 xxxxxxxxxx"


# -- failure -------------------------------------------------------------------------------------


async def test_nonzero_exit_fails_with_code_and_output_tail():
    t = ShellTask(command="for i in $(seq 1 30); do echo line$i; done; echo oops >&2; exit 3")
    with pytest.raises(signals.FAIL) as info:
        await t.run()
    msg = str(info.value)
    assert msg.startswith("Command failed with exit code 3")
    assert "line30" in msg
    assert "line11" in msg
    assert "line10\n" not in msg  # only the tail: the last 20 lines
    assert "stderr:\noops" in msg
    assert info.value.state.result == "line30"


async def test_failure_result_with_return_all_and_signal_death():
    with pytest.raises(signals.FAIL) as info:
        await ShellTask(command="echo a; echo b; exit 1", return_all=True).run()
    assert info.value.state.result == ["a", "b"]
    with pytest.raises(signals.FAIL, match=r"killed by SIGKILL \(exit code -9\)"):
        await ShellTask(command="kill -9 $$", shell="sh").run()


async def test_log_stderr_logs_stderr_at_error_on_failure(lines):
    with pytest.raises(signals.FAIL):
        await ShellTask(command="echo e1 >&2; echo e2 >&2; exit 2", log_stderr=True).run()
    errors = [r.getMessage() for r in lines.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "exit code 2" in errors[0]
    assert errors[0].endswith("e1\ne2")


async def test_stderr_not_logged_without_log_stderr_or_on_success(lines):
    with pytest.raises(signals.FAIL):
        await ShellTask(command="echo e1 >&2; exit 2").run()
    assert await ShellTask(command="echo e1 >&2; echo ok", log_stderr=True).run() == "ok"
    # only Prefect 1's failure line (see the next test): no stderr, and nothing for the success
    errors = [r.getMessage() for r in lines.records if r.levelno >= logging.ERROR]
    assert errors == ["Command failed with exit code 2"]


async def test_a_failure_always_logs_the_exit_code_at_error_as_prefect_1(lines):
    with Flow("shell-fails") as flow:
        ShellTask(command="echo out; echo e1 >&2; exit 7", name="fails")()
        ShellTask(command="kill -9 $$", shell="sh", name="killed")()
    state = await flow.run()
    assert isinstance(state, Failed)
    errors = {r.name: r.getMessage() for r in lines.records if r.levelno == logging.ERROR}
    assert errors["aflow.task.fails"] == "Command failed with exit code 7"
    assert errors["aflow.task.killed"] == "Command failed with exit code -9 (killed by SIGKILL)"
    assert not any("e1" in m for m in errors.values())  # stderr only with log_stderr=True


# -- streaming -----------------------------------------------------------------------------------


async def test_stream_output_logs_each_line_as_it_arrives(tmp_path, lines):
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    # the command blocks on the fifo until the test has seen "ready" in the log
    t = ShellTask(
        command=f'echo ready; echo "to stderr" >&2; read -r word < {fifo}; echo "got $word"', stream_output=True
    )
    result: list[object] = []

    async def run() -> None:
        result.append(await t.run())

    def release() -> None:
        with open(fifo, "w") as f:
            f.write("go\n")

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        assert sorted(await lines.wait_for(2)) == ["[stderr] to stderr", "ready"]  # two pipes: either first
        assert result == []  # still running
        await anyio.to_thread.run_sync(release)
    assert result == ["got go"]  # the last line of stdout only
    assert lines.info[2:] == ["got go"]
    assert {r.name for r in lines.records} == {"aflow.task.ShellTask"}


async def test_stream_output_at_a_named_level(lines):
    assert await ShellTask(command="echo a; echo b", stream_output="DEBUG").run() == "b"
    assert [(r.levelno, r.getMessage()) for r in lines.records] == [(logging.DEBUG, "a"), (logging.DEBUG, "b")]


async def test_streamed_stderr_lines_go_at_the_same_level_marked(lines):
    assert await ShellTask(command="echo e1 >&2; echo e2 >&2; echo ok", stream_output="DEBUG").run() == "ok"
    logged = [(r.levelno, r.getMessage()) for r in lines.records]
    assert sorted(logged) == [(logging.DEBUG, "[stderr] e1"), (logging.DEBUG, "[stderr] e2"), (logging.DEBUG, "ok")]
    assert logged.index((logging.DEBUG, "[stderr] e1")) < logged.index((logging.DEBUG, "[stderr] e2"))


async def test_lines_with_percent_signs_are_logged_verbatim(lines):
    await ShellTask(command="echo '100% %s %(x)d'", stream_output=True).run()
    assert lines.info == ["100% %s %(x)d"]


# -- cancellation: the whole process group goes ----------------------------------------------------


async def test_cancelled_caller_kills_the_process_group(lines):
    t = ShellTask(command=FAMILY, stream_output=True)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(t.run)
            pids = [int(x) for x in await lines.wait_for(3)]
            assert all(running(p) for p in pids)
            scope.cancel()
    assert scope.cancelled_caught
    await assert_gone(pids)
    # everything obeyed SIGTERM (dead children of an init that does not reap count as gone)
    assert not any("SIGKILL" in m for m in lines.messages)


async def test_move_on_after_kills_the_process_group(tmp_path):
    pidfile = tmp_path / "pids"
    t = ShellTask(command=f"{{ {FAMILY}; }} > {pidfile}")
    with anyio.move_on_after(1.0) as scope:
        await t.run()
    assert scope.cancelled_caught
    pids = [int(x) for x in pidfile.read_text().split()]
    assert len(pids) == 3
    await assert_gone(pids)


async def test_task_timeout_in_a_flow_times_out_and_kills_the_group(lines):
    with Flow("shell-timeout") as flow:
        t = ShellTask(command=FAMILY, stream_output=True, timeout=1.5)()
    state = await flow.run()
    assert state.is_failed()
    assert isinstance(state.result[t], TimedOut)
    pids = [int(x) for x in lines.info]
    assert len(pids) == 3
    await assert_gone(pids)


async def test_cancelled_flow_run_kills_the_group(lines):
    with Flow("shell-cancel") as flow:
        t = ShellTask(command=FAMILY, stream_output=True)()
    handle = flow.start()
    pids = [int(x) for x in await lines.wait_for(3)]
    assert all(running(p) for p in pids)
    handle.cancel()
    state = await handle
    assert isinstance(state, Cancelled)
    assert isinstance(state.result[t], Cancelled)
    await assert_gone(pids)
    assert not any("SIGKILL" in m for m in lines.messages)


async def test_sigkill_after_the_grace_period_when_sigterm_is_ignored(lines):
    # the shell and its children ignore SIGTERM (an ignored signal stays ignored across exec)
    t = ShellTask(command=f"trap '' TERM; {FAMILY}", stream_output=True, kill_grace=0.2)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(t.run)
            pids = [int(x) for x in await lines.wait_for(3)]
            scope.cancel()
    await assert_gone(pids)
    warnings = [r.getMessage() for r in lines.records if r.levelno == logging.WARNING]
    assert warnings == ["Command still running 0.2 seconds after SIGTERM: sending SIGKILL to its process group"]


async def test_grandchild_ignoring_sigterm_is_killed_after_the_shell_exits(lines):
    # the shell dies of SIGTERM at once; a grandchild ignoring it must still be found and killed
    cmd = "echo $$; sh -c \"trap '' TERM; sleep 30 & echo \\$!; wait\" & wait"
    t = ShellTask(command=cmd, stream_output=True, kill_grace=0.2)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(t.run)
            pids = [int(x) for x in await lines.wait_for(2)]
            scope.cancel()
    await assert_gone(pids)
    assert any("sending SIGKILL" in m for m in lines.messages)


async def test_graceful_shutdown_within_the_grace_period_is_streamed(lines):
    # the shell handles SIGTERM: its cleanup output is still read and logged, and no SIGKILL is needed
    cmd = "trap 'echo cleaning up; exit 0' TERM; echo $$; sleep 30 & echo $!; wait"
    t = ShellTask(command=cmd, stream_output=True)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(t.run)
            pids = [int(x) for x in await lines.wait_for(2)]
            scope.cancel()
    await assert_gone(pids)
    assert "cleaning up" in lines.info
    assert not any("SIGKILL" in m for m in lines.messages)


# -- in a flow -----------------------------------------------------------------------------------


async def test_in_a_flow_with_upstream_values():
    with Flow("shell-flow") as flow:
        n = ShellTask(command="echo 21", name="n")()
        doubled = ShellTask(name="double")(command="echo $((N * 2))", env={"N": n})
        listing = ShellTask(return_all=True, name="all")(command="echo a; echo b")
    state = await flow.run()
    assert state.is_successful()
    assert state.result[doubled].result == "42"
    assert state.result[listing].result == ["a", "b"]


async def test_failure_in_a_flow():
    with Flow("shell-fail") as flow:
        t = ShellTask(command="echo partial; exit 4")()
    state = await flow.run()
    assert state.is_failed()
    task_state = state.result[t]
    assert type(task_state) is Failed
    assert "exit code 4" in (task_state.message or "")


def test_a_misspelled_keyword_names_shelltask_and_the_nearest_valid_name():
    with pytest.raises(TaskDefinitionError) as info:
        ShellTask(comand="echo hi")
    assert str(info.value) == "ShellTask() got an unexpected keyword argument 'comand': did you mean 'command'?"
    with pytest.raises(
        TaskDefinitionError,
        match=r"ShellTask\(\) got an unexpected keyword argument 'max_retry': did you mean 'max_retries'\?",
    ):
        ShellTask(command="true", max_retry=2)
