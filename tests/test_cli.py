"""The ``aflow`` command, run as a subprocess: exit codes, parameters, one-line errors, the run store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

X = "\N{MULTIPLICATION SIGN}"  # a mapped task's label: "inc" X "3"

FLOWS = textwrap.dedent(
    """
    from aflow import Flow, Parameter, task, unmapped

    @task
    async def nums(n):
        return list(range(n))

    @task
    async def inc(x, fail_on):
        if x in fail_on:
            raise ValueError(f"bad {x}")
        return x + 1

    @task
    async def total(xs):
        return sum(xs)

    with Flow("demo") as flow:
        n = Parameter("n", default=3)
        fail_on = Parameter("fail_on", default=[])
        total(inc.map(nums(n), fail_on=unmapped(fail_on)))

    @task
    async def show(value):
        print(f"VALUE {type(value).__name__} {value!r}")

    with Flow("echo") as echo:
        show(Parameter("value"))
    """
)

SINGLE = textwrap.dedent(
    """
    from aflow import Flow, task

    @task
    async def hello():
        return "hi"

    with Flow("single") as only_flow:
        hello()
    """
)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    (tmp_path / "single.py").write_text(SINGLE)
    (tmp_path / "broken.py").write_text("import aflow\nraise RuntimeError('broken on purpose')\n")
    (tmp_path / "typo.py").write_text("from aflow_tasks.shell import ShellTask\n\nlister = ShellTask(comand='ls')\n")
    # the line named is the file's innermost: in a function it calls, not the call at the bottom
    (tmp_path / "deep.py").write_text("import aflow\n\ndef setup():\n    return 1 / 0\n\nsetup()\n")
    (tmp_path / "syntax.py").write_text("import aflow\nflow = (\n")
    return tmp_path


def aflow_cli(*args: str, cwd: Path, script: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the command as a user would: a separate process, output piped (not a terminal)."""
    env = {k: v for k, v in os.environ.items() if k not in ("AFLOW_HISTORY", "FORCE_COLOR", "TTY_COMPATIBLE")}
    if script:
        command = [str(Path(sys.executable).parent / "aflow")]
    else:
        command = [sys.executable, "-W", "error", "-m", "aflow._cli"]
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("aflow: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


# -- aflow run --------------------------------------------------------------------------------


def test_run_a_flow_from_a_file_prints_a_summary_and_exits_0(workdir: Path) -> None:
    done = aflow_cli("run", "flows.py:flow", cwd=workdir)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("Flow 'demo': Success in ")
    assert re.search(r"^\s+nums\s+Success\s+\S+s$", out, re.M)
    assert re.search(rf"^\s+inc {X}3\s+Mapped: 3 Success\s+\S+s$", out, re.M)
    assert re.search(r"^\s+total\s+Success", out, re.M)
    assert "Failures" not in out
    assert "\x1b[" not in out  # not a terminal: no colours, no progress display


def test_a_failing_flow_exits_1_and_lists_failures_with_messages(workdir: Path) -> None:
    done = aflow_cli("run", "flows.py:flow", "--param", "n=4", "-p", "fail_on=[1, 3]", cwd=workdir)
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("Flow 'demo': Failed")
    assert f"inc {X}4" in done.stdout
    assert "Mapped: 2 Success, 2 Failed" in done.stdout
    assert "Failures:" in done.stdout
    assert "inc[1]: Failed: Error during execution of task: ValueError('bad 1')" in done.stdout
    assert "inc[3]: Failed:" in done.stdout
    assert "total: TriggerFailed:" in done.stdout


@pytest.mark.parametrize(
    ("argument", "shown"),
    [
        ("value=3", "int 3"),
        ("value=2.5", "float 2.5"),
        ("value=true", "bool True"),
        ("value=null", "NoneType None"),
        ('value={"a": [1, "x"]}', "dict {'a': [1, 'x']}"),
        ('value="3"', "str '3'"),
        ("value=hello world", "str 'hello world'"),
        ("value=a=b", "str 'a=b'"),
        ("value=", "str ''"),
        ("value=[1, 2", "str '[1, 2'"),
    ],
)
def test_parameter_values_are_json_when_valid_else_strings(workdir: Path, argument: str, shown: str) -> None:
    done = aflow_cli("run", "flows.py:echo", "-p", argument, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert f"VALUE {shown}\n" in done.stdout


def test_a_flow_is_found_by_its_name_too(workdir: Path) -> None:
    done = aflow_cli("run", "flows.py:demo", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Flow 'demo': Success")


def test_a_file_with_one_flow_needs_no_name(workdir: Path) -> None:
    done = aflow_cli("run", "single.py", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Flow 'single': Success")


def test_module_colon_flow(workdir: Path) -> None:
    (workdir / "cli_test_pkg").mkdir()
    (workdir / "cli_test_pkg" / "__init__.py").write_text("")
    (workdir / "cli_test_pkg" / "etl.py").write_text(FLOWS)
    done = aflow_cli("run", "cli_test_pkg.etl:echo", "-p", "value=[1]", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "VALUE list [1]" in done.stdout


def test_the_console_script(workdir: Path) -> None:
    script = Path(sys.executable).parent / "aflow"
    if not script.exists():
        pytest.skip("aflow is not installed with its console script in this environment")
    done = aflow_cli("run", "flows.py:flow", cwd=workdir, script=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Flow 'demo': Success")
    assert aflow_cli("--version", cwd=workdir, script=True).stdout.startswith("aflow, version ")


def test_progress_writes_nothing_when_stdout_is_not_a_terminal(workdir: Path) -> None:
    done = aflow_cli("run", "flows.py:flow", "--progress", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Flow 'demo': Success")  # the summary comes first: nothing was drawn
    assert "\x1b[" not in done.stdout + done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "missing.py:flow"], ["no such file: missing.py"]),
        (["run", "flows.py:nope"], ["no flow 'nope' in flows.py", "flow", "echo"]),
        (["run", "flows.py"], ["several flows"]),
        (["run", "no_such_module_xyz:flow"], ["no such file or module: no_such_module_xyz"]),
        (["run", "broken.py:flow"], ["error while loading broken.py, line 2: RuntimeError: broken on purpose"]),
        (
            ["run", "typo.py:flow"],
            [
                "error while loading typo.py, line 3: TaskDefinitionError: ShellTask() got an unexpected keyword "
                "argument 'comand': did you mean 'command'?"
            ],
        ),
        (["run", "deep.py:flow"], ["error while loading deep.py, line 4: ZeroDivisionError"]),
        (["run", "syntax.py:flow"], ["error while loading syntax.py, line 2: SyntaxError"]),
        (["run", "flows.py:flow", "-p", "n"], ["bad parameter 'n': expected KEY=VALUE"]),
        (["run", "flows.py:flow", "-p", "=3"], ["bad parameter '=3'"]),
        (["run", "flows.py:flow", "-p", "n=1", "-p", "n=2"], ["parameter 'n' given twice"]),
        (["run", "flows.py:flow", "-p", "colour=red"], ["has no parameter colour", "fail_on, n"]),
        (["run", "flows.py:echo"], ["needs parameter value"]),
        (["visualize", "missing.py:flow"], ["no such file"]),
        (["visualize", "flows.py:flow", "-o", "graph.unknown"], ["cannot tell what to write"]),
        (["runs", "list"], ["no run store: pass --db PATH"]),
        (["runs", "list", "--db", "missing.db"], ["no run store at missing.db"]),
    ],
)
def test_bad_input_is_one_line_on_stderr_with_exit_code_2(workdir: Path, args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(aflow_cli(*args, cwd=workdir), *fragments)


# -- aflow visualize --------------------------------------------------------------------------


def test_visualize_prints_dot_and_mermaid(workdir: Path) -> None:
    dot = aflow_cli("visualize", "flows.py:flow", cwd=workdir)
    assert dot.returncode == 0, dot.stderr
    assert dot.stdout.startswith('digraph "demo" {')
    assert 'label="inc (mapped)"' in dot.stdout
    mermaid = aflow_cli("visualize", "flows.py:flow", "--format", "mermaid", cwd=workdir)
    assert mermaid.returncode == 0, mermaid.stderr
    assert mermaid.stdout.startswith("flowchart TD\n")
    assert '[["inc (mapped)"]]' in mermaid.stdout


def test_visualize_writes_a_file(workdir: Path) -> None:
    done = aflow_cli("visualize", "flows.py:flow", "-o", "graph.dot", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert (workdir / "graph.dot").read_text().startswith('digraph "demo"')


# -- aflow runs -------------------------------------------------------------------------------


def test_runs_list_and_show_read_a_real_run_store(workdir: Path) -> None:
    db = workdir / "runs.db"
    ok = aflow_cli("run", "flows.py:flow", "--history", str(db), cwd=workdir)
    assert ok.returncode == 0, ok.stderr
    failed = aflow_cli("run", "flows.py:flow", "--history", "runs.db", "-p", "fail_on=[0]", cwd=workdir)
    assert failed.returncode == 1, failed.stderr
    aflow_cli("run", "single.py", "--history", "runs.db", cwd=workdir)

    listed = aflow_cli("runs", "list", "--db", "runs.db", cwd=workdir)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["RUN", "ID", "FLOW", "STATE", "STARTED", "DURATION"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[1], r[2]) for r in rows] == [("single", "Success"), ("demo", "Failed"), ("demo", "Success")]

    only_demo = aflow_cli("runs", "list", "--db", "runs.db", "--flow", "demo", cwd=workdir)
    assert [line.split()[1] for line in only_demo.stdout.splitlines()[1:]] == ["demo", "demo"]
    none = aflow_cli("runs", "list", "--db", "runs.db", "--flow", "other", cwd=workdir)
    assert none.stdout == "No runs recorded.\n"

    run_id = rows[1][0]
    shown = aflow_cli("runs", "show", run_id, "--db", "runs.db", cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert out.startswith(f"Run {run_id} of flow 'demo'\n")
    assert "state:      Failed: Some reference tasks failed." in out
    assert 'parameters: {"fail_on": [0], "n": 3}' in out
    assert re.search(rf"^\s+inc {X}3\s+Mapped: 2 Success, 1 Failed", out, re.M)
    assert re.search(r"^\s+total\s+TriggerFailed", out, re.M)
    assert "inc[0]: Failed: Error during execution of task: ValueError('bad 0')" in out

    assert_one_line_error(aflow_cli("runs", "show", "no-such-run", "--db", "runs.db", cwd=workdir), "no run")


def test_runs_prune_deletes_old_runs(workdir: Path) -> None:
    for target in ("flows.py:flow", "single.py", "single.py"):
        assert aflow_cli("run", target, "--history", "runs.db", cwd=workdir).returncode == 0
    # nothing is a day old yet
    kept = aflow_cli("runs", "prune", "--older-than", "1", "--db", "runs.db", cwd=workdir)
    assert (kept.returncode, kept.stdout) == (0, "Deleted 0 runs.\n")
    pruned = aflow_cli("runs", "prune", "--older-than", "0", "--flow", "single", "--db", "runs.db", cwd=workdir)
    assert (pruned.returncode, pruned.stdout) == (0, "Deleted 2 runs.\n")
    listed = aflow_cli("runs", "list", "--db", "runs.db", cwd=workdir)
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:]] == ["demo"]
    negative = aflow_cli("runs", "prune", "--older-than", "-1", "--db", "runs.db", cwd=workdir)
    assert negative.returncode == 2
    assert "-1.0 is not in the range x>=0" in negative.stderr  # click's own usage error


def test_runs_uses_the_history_environment_variable(workdir: Path) -> None:
    env = {**os.environ, "AFLOW_HISTORY": str(workdir / "env.db")}

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "aflow._cli", *args]
        return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=60, check=False)

    done = call("run", "single.py")
    assert done.returncode == 0, done.stderr
    listed = call("runs", "list")
    assert listed.returncode == 0, listed.stderr
    assert " single " in listed.stdout
