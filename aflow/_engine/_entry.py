"""The engine's one entry: the only engine module the model imports (inside `Flow.run`/`start`).

It builds the run settings from the flow's defaults and the run's arguments (`RunSettings.build`),
makes the scheduler and runs it, with the progress display if asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._runtime._flow_run import FlowRun
from .._runtime._settings import RunSettings
from ._scheduler import FlowRunner

if TYPE_CHECKING:
    from rich.console import Console

    from .._model._flow import Flow
    from .._surface._progress import ProgressDisplay
    from ..states import State

__all__ = ("new_run", "run_flow", "start_flow")


def new_run(flow: Flow, parameters: Mapping[str, Any], **run_args: Any) -> FlowRunner:
    """A run of ``flow``, checked but not started.

    Raises:
        ParameterError: For unknown parameters or missing required ones.
        ValueError: For a bad run argument (named in the message).
    """
    return FlowRunner(flow, dict(parameters), RunSettings.build(flow, **run_args))


async def run_flow(
    flow: Flow, parameters: Mapping[str, Any], progress: bool | Console | ProgressDisplay, **run_args: Any
) -> State:
    """Run ``flow`` in the current event loop to its final state (`aflow.Flow.run`)."""
    runner = new_run(flow, parameters, **run_args)
    if progress is False:
        return await runner.run()
    from .._surface._progress import run_with_progress

    return await run_with_progress(runner, progress)


def start_flow(
    flow: Flow, parameters: Mapping[str, Any], progress: bool | Console | ProgressDisplay, **run_args: Any
) -> FlowRun:
    """Start a run of ``flow`` in the background of the running loop (`aflow.Flow.start`)."""
    runner = new_run(flow, parameters, **run_args)
    loop = asyncio.get_running_loop()
    if progress is False:
        return FlowRun(runner, loop.create_task(runner.run()))
    from .._surface._progress import ProgressDisplay, run_with_progress

    display = ProgressDisplay.of(progress)  # a bad value fails here, not in the background
    return FlowRun(runner, loop.create_task(run_with_progress(runner, display)))
