"""ExecuteNotebook with real ipykernel kernels: parameters, exports, failures, streamed logs, cleanup."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from aflow import Flow
from aflow.states import Cancelled, Failed, Success, TimedOut
from aflow_tasks.jupyter import ExecuteNotebook
from tests.logwait import LineWaiter

from .conftest import assert_no_kernel, child_kernels, read, running

GUARD = 60


def injected(nb: Any) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if "injected-parameters" in c.metadata.get("tags", [])]


async def test_parameters_are_injected_after_the_parameters_cell_and_used(notebooks: dict[str, str]) -> None:
    task = ExecuteNotebook(notebooks["params"], parameters={"a": 1, "name": "init"})
    with anyio.fail_after(GUARD):
        body = await task.run(parameters={"a": 21, "name": "run's"})  # the call's values win
    assert isinstance(body, str)
    nb = read(body)
    assert injected(nb) == [2]  # markdown, parameters, injected-parameters, ...
    assert nb.cells[2].source == '# Parameters\na = 21\nname = "run\'s"\n'
    outputs = nb.cells[3].outputs
    assert outputs[0].text == "run's:42\n"
    assert outputs[1].data["text/plain"] == "'result=210'"
    assert nb.metadata.papermill.parameters == {"a": 21, "name": "run's"}
    assert child_kernels() == []


async def test_without_a_parameters_cell_the_parameters_go_first(notebooks: dict[str, str]) -> None:
    params = {"a": {"k": [1, 2.5, None, True]}}
    with anyio.fail_after(GUARD):
        body = await ExecuteNotebook(parameters=params, output_format="json").run(notebooks["noparams"])
    assert isinstance(body, str)
    nb = read(body)
    assert injected(nb) == [0]
    assert nb.cells[1].outputs[0].text == "got {'k': [1, 2.5, None, True]}\n"


async def test_each_output_format_in_one_flow_run(notebooks: dict[str, str]) -> None:
    path, params = notebooks["params"], {"a": 3, "name": "fmt"}
    with Flow("notebook-formats") as flow:
        formats = {
            "notebook": ExecuteNotebook(path, params)(),
            "html": ExecuteNotebook(path, params, output_format="html")(),
            "html_no_input": ExecuteNotebook(path, params)(
                output_format="html", exporter_kwargs={"exclude_input": True}
            ),
            "markdown": ExecuteNotebook(path, params, output_format="markdown")(),
            "python": ExecuteNotebook(path, params, output_format="python")(),
        }
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state, Success), state.message
    out = {name: state.result[t].result for name, t in formats.items()}
    assert json.loads(out["notebook"])["cells"][3]["outputs"][0]["text"] == ["fmt:6\n"]
    assert out["html"].lstrip().startswith("<!DOCTYPE html>")
    code = '<span class="nb">print</span>'  # the highlighted input
    assert "fmt:6" in out["html"]
    assert code in out["html"]
    assert "fmt:6" in out["html_no_input"]
    assert code not in out["html_no_input"]
    assert "# Doubling" in out["markdown"]
    assert "    fmt:6" in out["markdown"]
    assert "# Parameters\na = 3\n" in out["python"]
    assert "print(f'{name}:{a * 2}')" in out["python"]
    assert child_kernels() == []


async def test_a_raising_cell_fails_the_task_naming_the_exception(notebooks: dict[str, str]) -> None:
    with Flow("notebook-raises") as flow:
        t = ExecuteNotebook(notebooks["raises"])()
    with anyio.fail_after(GUARD):
        state = await flow.run()
    failed = state.result[t]
    assert isinstance(failed, Failed)
    assert failed.message is not None
    assert "failed in cell 1 (In [2]): KeyError: 'missing 42'" in failed.message
    assert notebooks["raises"] in failed.message
    assert child_kernels() == []


async def test_log_output_streams_while_the_notebook_runs(
    notebooks: dict[str, str], tmp_path: Path, lines: LineWaiter
) -> None:
    gate = tmp_path / "gate"
    with Flow("notebook-logs") as flow:
        t = ExecuteNotebook(notebooks["gated"], log_output=True)(parameters={"gate": str(gate)})
    handle = flow.start()
    # the second cell waits for the gate, which the test opens only after the first cell's record
    await lines.wait_for_text("first cell done", limit=GUARD)
    assert not any("second cell done" in m for m in lines.messages)
    gate.touch()
    with anyio.fail_after(GUARD):
        state = await handle
    assert isinstance(state.result[t], Success)
    assert "cell 2: first cell done" in lines.messages
    assert "cell 3: second cell done" in lines.messages


async def test_without_log_output_nothing_is_logged_from_the_cells(
    notebooks: dict[str, str], lines: LineWaiter
) -> None:
    with anyio.fail_after(GUARD):
        await ExecuteNotebook(notebooks["params"]).run()
    assert not any("x:2" in m for m in lines.messages)


async def test_cancelling_the_flow_kills_the_kernel(
    notebooks: dict[str, str], tmp_path: Path, lines: LineWaiter
) -> None:
    pidfile = tmp_path / "pid"
    with Flow("notebook-cancel") as flow:
        t = ExecuteNotebook(notebooks["forever"], log_output=True)(parameters={"pidfile": str(pidfile)})
    handle = flow.start()
    await lines.wait_for_text("kernel up", limit=GUARD)
    pids = [int(p) for p in pidfile.read_text().split()]  # the kernel and a child it started
    assert all(running(p) for p in pids)
    handle.cancel()
    with anyio.fail_after(GUARD):
        state = await handle
    assert isinstance(state, Cancelled)
    assert isinstance(state.result[t], Cancelled)
    await assert_no_kernel(*pids)  # the kernel's process group is killed


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.1, 0.3, 0.6, 1.0])
async def test_cancelling_at_any_moment_of_the_kernel_start_leaves_no_kernel(
    notebooks: dict[str, str], tmp_path: Path, delay: float
) -> None:
    pidfile = tmp_path / "pid"
    with Flow("notebook-cancel-early") as flow:
        t = ExecuteNotebook(notebooks["forever"])(parameters={"pidfile": str(pidfile)})
    handle = flow.start()
    await anyio.sleep(delay)
    handle.cancel()
    with anyio.fail_after(GUARD):
        state = await handle
    assert isinstance(state.result[t], Cancelled)
    await assert_no_kernel(*(int(p) for p in pidfile.read_text().split()) if pidfile.exists() else ())


async def test_a_task_timeout_times_out_and_kills_the_kernel(notebooks: dict[str, str], tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    with Flow("notebook-timeout") as flow:
        t = ExecuteNotebook(notebooks["forever"], timeout=4)(parameters={"pidfile": str(pidfile)})
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state.result[t], TimedOut)
    await assert_no_kernel(*(int(p) for p in pidfile.read_text().split()) if pidfile.exists() else ())


async def test_kernel_name_is_honoured(notebooks: dict[str, str]) -> None:
    path = notebooks["other_kernel"]  # its kernelspec names a kernel that does not exist
    with anyio.fail_after(GUARD):
        body = await ExecuteNotebook(path, kernel_name="python3", output_format="markdown").run()
    assert "    3" in body
    with Flow("notebook-no-kernel") as flow:
        t = ExecuteNotebook(path)()
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state.result[t], Failed)
    assert "no such kernel 'no-such-kernel'" in (state.result[t].message or "")
    assert child_kernels() == []


async def test_a_missing_path_or_an_unknown_format_is_a_value_error(notebooks: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="`path`"):
        await ExecuteNotebook().run()
    with pytest.raises(ValueError, match="nope"):
        await ExecuteNotebook(notebooks["params"], output_format="nope").run()
    with pytest.raises(ValueError, match="identifiers"):
        await ExecuteNotebook(notebooks["params"], parameters={"not a name": 1}).run()
    assert child_kernels() == []


async def test_cancelling_a_direct_run_raises_cancelled_error_and_kills_the_kernel(
    notebooks: dict[str, str], tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    run = asyncio.ensure_future(ExecuteNotebook(notebooks["forever"]).run(parameters={"pidfile": str(pidfile)}))
    with anyio.fail_after(GUARD):
        while not pidfile.exists() or len(pidfile.read_text().split()) < 2:  # noqa: ASYNC110 - a file to poll
            await anyio.sleep(0.02)
    pids = [int(p) for p in pidfile.read_text().split()]
    run.cancel()  # nbclient turns this into DeadKernelError: the task must turn it back
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, GUARD)
    await assert_no_kernel(*pids)
