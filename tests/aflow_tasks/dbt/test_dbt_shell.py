"""DbtShellTask: profiles.yml as Prefect 1 writes it, streamed dbt logs, failures, cleanup on cancel.

Most behaviours need no dbt (the command is a shell line); the real dbt runs (dbt-core on
DuckDB, about 5 s each) are few: two concurrent ones in one flow run (a success and a failing
model) and one cancelled while a slow model runs.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from aflow import Flow, Secret
from aflow.signals import FAIL
from aflow.states import Cancelled, Failed, Success, TimedOut
from aflow_tasks.dbt import DbtShellTask

from .conftest import Records, survivors

yaml: Any = importlib.import_module("yaml")  # dbt-core's dependency (untyped here)

DUCK = {"type": "duckdb", "threads": 1}


def profile(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((path / "profiles.yml").read_text(encoding="utf-8"))
    return loaded


# -- profiles.yml (no dbt needed) ----------------------------------------------------------------


async def test_writes_profiles_with_run_time_kwargs_merged_and_announces_the_dir(tmp_path: Path) -> None:
    where = tmp_path / "profiles"
    where.mkdir()
    task = DbtShellTask(
        command='echo "$DBT_PROFILES_DIR"',
        profile_name="demo",
        environment="dev",
        profiles_dir=where,
        dbt_kwargs={**DUCK, "path": "a.duckdb"},
    )
    assert await task.run(dbt_kwargs={"path": "b.duckdb", "schema": "s"}) == str(where)
    assert profile(where) == {
        "demo": {"outputs": {"dev": {**DUCK, "path": "b.duckdb", "schema": "s"}}, "target": "dev"}
    }
    assert "DBT_PROFILES_DIR" not in os.environ  # the command's environment only
    assert task.dbt_kwargs == {**DUCK, "path": "a.duckdb"}  # the task is left as it was


async def test_an_existing_profile_is_kept_unless_overwrite_profiles(tmp_path: Path) -> None:
    (tmp_path / "profiles.yml").write_text("mine: {}\n", encoding="utf-8")
    args: dict[str, Any] = {"profile_name": "demo", "environment": "dev", "profiles_dir": tmp_path, "dbt_kwargs": DUCK}
    await DbtShellTask(command="true", **args).run()
    assert profile(tmp_path) == {"mine": {}}
    await DbtShellTask(command="true", overwrite_profiles=True, **args).run()
    assert profile(tmp_path) == {"demo": {"outputs": {"dev": DUCK}, "target": "dev"}}


async def test_looks_in_dbt_profiles_dir_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    envar_dir, own = tmp_path / "envar", tmp_path / "own"
    envar_dir.mkdir()
    own.mkdir()
    (envar_dir / "profiles.yml").write_text("found: {}\n", encoding="utf-8")
    monkeypatch.setenv("DBT_PROFILES_DIR", str(envar_dir))
    task = DbtShellTask(command='echo "$DBT_PROFILES_DIR"', profiles_dir=own, set_profiles_envar=False)
    assert await task.run() == str(envar_dir)  # found there: nothing written, nothing needed
    assert not (own / "profiles.yml").exists()


async def test_default_dir_is_home_dot_dbt(tmp_path: Path) -> None:
    task = DbtShellTask(command='echo "$DBT_PROFILES_DIR"', profile_name="p", environment="e", dbt_kwargs=DUCK)
    home_dbt = Path(os.environ["HOME"]) / ".dbt"
    assert await task.run() == str(home_dbt)
    assert profile(home_dbt)["p"] == {"outputs": {"e": DUCK}, "target": "e"}


async def test_set_profiles_envar_false_leaves_the_variable_alone(tmp_path: Path) -> None:
    task = DbtShellTask(
        command='echo "[${DBT_PROFILES_DIR:-}]"',
        profile_name="p",
        environment="e",
        profiles_dir=tmp_path,
        set_profiles_envar=False,
    )
    assert await task.run() == "[]"
    assert (tmp_path / "profiles.yml").exists()


async def test_lazy_dbt_kwargs_are_read_and_written(tmp_path: Path) -> None:
    task = DbtShellTask(
        command="true", profile_name="p", environment="e", profiles_dir=tmp_path, dbt_kwargs={"password": Secret("PW")}
    )
    flow_state = None
    with Flow("dbt-secret") as flow:
        task()
    flow_state = await flow.run(context={"secrets": {"PW": "hunter2-secret"}})
    assert isinstance(flow_state, Success)
    assert profile(tmp_path)["p"]["outputs"]["e"] == {"password": "hunter2-secret"}


@pytest.mark.parametrize("missing", ["profile_name", "environment"])
async def test_writing_a_profile_needs_its_names(tmp_path: Path, missing: str) -> None:
    args: dict[str, Any] = {"profile_name": "p", "environment": "e", missing: None}
    with pytest.raises(ValueError, match=missing):
        await DbtShellTask(command="true", profiles_dir=tmp_path, **args).run()


async def test_a_command_is_required() -> None:
    with pytest.raises(ValueError, match="command"):
        await DbtShellTask().run()


def test_init_keeps_prefect_1_defaults() -> None:
    task = DbtShellTask()
    assert (task.command, task.profile_name, task.environment, task.profiles_dir) == (None, None, None, None)
    assert (task.overwrite_profiles, task.set_profiles_envar, task.dbt_kwargs) == (False, True, {})
    assert (task.shell, task.return_all, task.log_stderr) == ("bash", False, False)
    assert (task.helper_script, task.env) == (None, None)
    assert task.stream_output  # dbt's lines are logged as they come, by default
    assert DbtShellTask(stream_output=False).stream_output is False


async def test_helper_script_env_return_all_and_cwd(tmp_path: Path) -> None:
    (tmp_path / "profiles.yml").write_text("x: {}\n", encoding="utf-8")
    task = DbtShellTask(
        helper_script="greet() { echo hello $1; }",
        env={"WHO": "dbt"},
        profiles_dir=tmp_path,
        return_all=True,
        cwd=tmp_path,
    )
    assert await task.run(command='greet "$WHO"; pwd; echo "$DBT_USE_COLORS"') == ["hello dbt", str(tmp_path), "false"]


async def test_a_failure_names_the_exit_code_and_the_failing_nodes(tmp_path: Path) -> None:
    (tmp_path / "profiles.yml").write_text("x: {}\n", encoding="utf-8")
    fake_dbt = (
        "echo '12:00:01  1 of 2 ERROR creating sql view model main.broken [ERROR in 0.04s]'; "
        "echo '12:00:02  \x1b[31mFailure in model broken (models/broken.sql)\x1b[0m'; "
        "echo '12:00:02    Runtime Error in model broken (models/broken.sql)'; "
        "echo '12:00:02  Failure in test not_null_first_id (models/schema.yml)'; exit 1"
    )
    with pytest.raises(FAIL) as info:
        await DbtShellTask(command=fake_dbt, profiles_dir=tmp_path, stream_output=False).run()
    first = str(info.value).splitlines()[0]
    assert first == "dbt failed with exit code 1 (model broken, test not_null_first_id)"
    assert "Command failed with exit code 1" in str(info.value)


async def test_timeout_stops_the_command_and_times_out(tmp_path: Path) -> None:
    (tmp_path / "profiles.yml").write_text("x: {}\n", encoding="utf-8")
    marker = uuid.uuid4().hex
    with Flow("dbt-timeout") as flow:
        t = DbtShellTask(command="sleep 300 & wait", profiles_dir=tmp_path, env={"AFLOW_TRIAL": marker}, timeout=0.5)()
    state = await flow.run()
    assert isinstance(state.result[t], TimedOut)
    for _ in range(100):
        if not survivors(marker):
            break
        await asyncio.sleep(0.05)
    assert survivors(marker) == []


# -- real dbt ------------------------------------------------------------------------------------


def _real(project: Path, tmp_path: Path, name: str, **kwargs: object) -> DbtShellTask:
    """A task on the shared project, with a profiles dir, DuckDB file and target dir of its own."""
    own = tmp_path / name
    own.mkdir()
    return DbtShellTask(
        name=name,
        profile_name="aflow_demo",
        environment="dev",
        profiles_dir=own,
        overwrite_profiles=True,
        dbt_kwargs={**DUCK, "path": str(own / "demo.duckdb")},
        env={"DBT_TARGET_PATH": str(own / "target"), "DBT_LOG_PATH": str(own / "logs")},
        cwd=project,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_real_dbt_success_and_failing_model_in_one_flow_run(
    dbt_project: Path, tmp_path: Path, logs: Records
) -> None:
    good = _real(dbt_project, tmp_path, "good", return_all=True)
    bad = _real(dbt_project, tmp_path, "bad")
    with Flow("dbt-real") as flow:
        ok = good(command="dbt run --select first second")
        broken = bad(command="dbt run --select broken")
    state = await flow.run()
    assert isinstance(state, Failed)
    assert isinstance(state.result[ok], Success)
    lines = state.result[ok].result
    assert any("Completed successfully" in line for line in lines)
    assert lines[-1].endswith("TOTAL=2")
    assert not any("\x1b[" in line for line in lines)  # no colour codes
    failed = state.result[broken]
    assert isinstance(failed, Failed)
    assert (failed.message or "").splitlines()[0] == "dbt failed with exit code 1 (model broken)"
    # each node's events reached the task's logger
    node_lines = [r.getMessage() for r in logs.records if r.name == "aflow.task.good"]
    assert any("OK created sql view model main.first" in m for m in node_lines)
    assert any("ERROR creating sql view model main.broken" in r.getMessage() for r in logs.records)


async def test_real_dbt_streams_while_running_and_cancel_leaves_no_process(
    dbt_project: Path, tmp_path: Path, logs: Records
) -> None:
    marker = uuid.uuid4().hex
    task = _real(dbt_project, tmp_path, "slow", kill_grace=3)
    task.env = {**(task.env or {}), "AFLOW_TRIAL": marker}
    with Flow("dbt-cancel") as flow:
        t = task(command="dbt run --select slow")
    handle = flow.start()
    record = await logs.wait_for("START sql table model main.slow")
    assert record.name == "aflow.task.slow"
    assert survivors(marker)  # the node's event was logged while dbt still ran
    handle.cancel()
    state = await asyncio.wait_for(handle, 30)
    assert isinstance(state, Cancelled)
    assert isinstance(state.result[t], Cancelled)
    assert survivors(marker) == []
