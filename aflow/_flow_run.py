"""`FlowRun`: the handle of a flow run started in the background with `Flow.start`."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    from ._engine._flow_runner import FlowRunner
    from .states import State

__all__ = ("FlowRun",)


@final
class FlowRun:
    """A flow run in progress: await it for the final state, or cancel it.

    Cancelling a coroutine that awaits the handle does not cancel the run (the handle owns
    it); call `cancel` for that.
    """

    def __init__(self, runner: FlowRunner, task: asyncio.Task[State]) -> None:
        self._runner = runner
        self._task = task

    @property
    def flow_run_id(self) -> str:
        """The run's id (as in ``aflow.context.flow_run_id``)."""
        return self._runner.run_id

    def cancel(self) -> None:
        """Stop the run: running bodies are cancelled and unfinished tasks end Cancelled."""
        self._runner.cancel()

    def done(self) -> bool:
        """Whether the run has ended."""
        return self._task.done()

    async def wait(self) -> State:
        """Wait for the run to end and return its final state."""
        return await asyncio.shield(self._task)

    def __await__(self) -> Generator[Any, None, State]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        status = "done" if self.done() else "running"
        return f"<FlowRun {self.flow_run_id} of {self._runner.flow.name!r}: {status}>"
