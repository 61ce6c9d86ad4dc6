"""The running half of `Flow`'s API: `run`, `start`, `run_sync`, `serve` and `visualize`.

Runs go to the engine through its one entry (``aflow._engine._entry``), imported when a run
starts: the model imports nothing else of the engine.
"""

from __future__ import annotations

import inspect
import os
from typing import TYPE_CHECKING, Any, Literal, cast

from .._runtime._flow_run import FlowRun, explained_if_not_awaited
from .._runtime._settings import DEFAULT_WARN_BLOCKING, RunSettings
from ._building import building

if TYPE_CHECKING:
    from rich.console import Console

    from .._engine._scheduler import FlowRunner
    from .._runtime._clock import Clock
    from .._surface._progress import ProgressDisplay
    from .._surface._visualize import FlowGraph
    from ..executors import Executor
    from ..history import RunStore
    from ..states import State
    from ._flow import Flow

__all__ = ("FlowRunning",)


class FlowRunning:
    """Running a flow, visualising it and serving it on its schedule (a base of `aflow.Flow`)."""

    def _as_flow(self) -> Flow:
        return cast("Flow", self)

    def visualize(
        self,
        flow_state: State | None = None,
        *,
        format: Literal["dot", "mermaid"] = "dot",
        filename: str | os.PathLike[str] | None = None,
    ) -> FlowGraph:
        """The flow's graph as Graphviz DOT or Mermaid text (a ``str`` that Jupyter shows as a picture).

        A mapped task is one node; given a run's state, nodes are coloured by their final
        states and a mapped node shows its number of children and their states.

        Args:
            flow_state: A state returned by `run`, to colour the nodes by.
            format: ``"dot"`` or ``"mermaid"``.
            filename: Also write the graph there: ``.dot``/``.gv`` and ``.mmd`` files get the
                text; image suffixes (``.png``, ``.svg``, ``.pdf``...) an image drawn by Graphviz,
                which needs ``pip install aflow-engine[viz]`` and the ``dot`` program
                (``apt-get install graphviz``).

        Raises:
            ValueError: An unknown ``format``, or a ``filename`` suffix that is neither text nor image.
            ImportError: An image was asked for without the graphviz package.
            RuntimeError: An image was asked for without Graphviz's ``dot`` program.
        """
        from .._surface._visualize import visualize

        return visualize(self._as_flow(), flow_state, format=format, filename=filename)

    @explained_if_not_awaited
    async def run(
        self,
        parameters: dict[str, Any] | None = None,
        *,
        context: dict[str, Any] | None = None,
        max_concurrency: int | None = None,
        concurrency: dict[str, int] | None = None,
        clock: Clock | None = None,
        flow_run_name: str | None = None,
        history: RunStore | str | os.PathLike[str] | None = None,
        executor: Executor | None = None,
        progress: bool | Console | ProgressDisplay = False,
        cancel_grace: float | None = None,
        warn_blocking: float | None = DEFAULT_WARN_BLOCKING,
        history_log_level: int | str | None = None,
        **parameter_values: Any,
    ) -> State:
        """Run the flow in the current event loop and return its final state.

        ``state.result`` maps every task to its final state. Tasks start as soon as their
        upstreams finish; independent branches run concurrently. Await it (``state = await
        flow.run()``); a script without an event loop calls `run_sync` instead. Used without
        ``await``, its attributes raise `aflow.exceptions.NotAwaitedError` saying so.

        Args:
            parameters: Parameter values by name.
            context: Extra values for `aflow.context`.
            max_concurrency: Bound on task bodies running at once (default: the flow's).
            concurrency: Per-tag limits, ``{"db": 5}``: at most 5 bodies of tasks tagged "db"
                run at once (merged over the flow's ``concurrency``). A task with several limited
                tags holds a slot of each.
            clock: The clock for retry delays (tests pass `aflow.testing.FakeClock`).
            flow_run_name: A name for this run (default: the run id).
            history: Record the run's states in a run store: an open `aflow.history.RunStore`,
                or the path of a SQLite file (opened and closed for this run); default: the
                flow's ``history``. Cached results are kept there too, so a cache survives a
                restart.
            executor: Where task bodies run (`aflow.executors`); by default here, async bodies
                on this loop and sync ones in worker threads.
            progress: Show a live display of the run (tasks done, running and failed, per
                mapped task too) in a terminal or Jupyter; nothing is written elsewhere. True,
                or a rich ``Console`` to draw on. Needs rich (``pip install aflow-engine[cli]``).
            cancel_grace: Seconds a cancelled task body (the run cancelled, or a task's
                ``timeout`` reached) gets to end before the run gives up on it, marks it
                Cancelled (or TimedOut) with a message saying it ignored cancellation, and goes
                on (default 10). A body is cancelled once, never again until then.
            warn_blocking: Log a WARNING (logger ``aflow.blocking``) naming any ``async def`` task
                whose body blocks the event loop for this many seconds or more (``time.sleep``,
                blocking I/O), with how long it blocked (default 0.25); None turns the check off.
            history_log_level: Keep the task log records at or above this level in the run store
                (a name such as ``"DEBUG"`` or a number; default INFO); a task's own
                ``history_log_level`` wins.
            **parameter_values: More parameter values, by keyword.

        Raises:
            ParameterError: For unknown parameters or missing required ones.
            FlowValidationError: If the flow is invalid (a cycle...).
            ValueError: If ``cancel_grace`` or ``warn_blocking`` is not a non-negative number.
        """
        from .._engine._entry import run_flow  # the model's one way into the engine

        return await run_flow(
            self._as_flow(), {**(parameters or {}), **parameter_values}, progress, **self._run_args(locals())
        )

    def start(
        self,
        parameters: dict[str, Any] | None = None,
        *,
        context: dict[str, Any] | None = None,
        max_concurrency: int | None = None,
        concurrency: dict[str, int] | None = None,
        clock: Clock | None = None,
        flow_run_name: str | None = None,
        history: RunStore | str | os.PathLike[str] | None = None,
        executor: Executor | None = None,
        progress: bool | Console | ProgressDisplay = False,
        cancel_grace: float | None = None,
        warn_blocking: float | None = DEFAULT_WARN_BLOCKING,
        history_log_level: int | str | None = None,
        **parameter_values: Any,
    ) -> FlowRun:
        """Start a run in the background of the running event loop and return its handle.

        Takes the same arguments as `run`. ``await handle`` gives the final state;
        ``handle.cancel()`` stops the run: running bodies are cancelled, unfinished tasks end
        Cancelled, and the final state is Cancelled.

        Raises:
            RuntimeError: If no event loop is running.
        """
        from .._engine._entry import start_flow

        return start_flow(
            self._as_flow(), {**(parameters or {}), **parameter_values}, progress, **self._run_args(locals())
        )

    def _run_args(self, given: dict[str, Any]) -> dict[str, Any]:
        """The run arguments of a `run`/`start` call (its ``locals()``), for `RunSettings.build`."""
        self._check_not_building()
        return {name: given[name] for name in _RUN_ARGS}

    def _check_not_building(self) -> None:
        if building.get() is self:
            name = self._as_flow().name
            raise RuntimeError(f"Flow {name!r} cannot run inside its own `with` block; run it after the block")

    def _runner(
        self, parameters: dict[str, Any] | None, parameter_values: dict[str, Any], **run_args: Any
    ) -> FlowRunner:
        """A run of this flow, not started (for tests and tools that drive one themselves)."""
        from .._engine._entry import new_run

        self._check_not_building()
        return new_run(self._as_flow(), {**(parameters or {}), **parameter_values}, **run_args)

    async def serve(self, **kwargs: Any) -> list[State]:
        """Run the flow at each event of its schedule, in the current event loop.

        Args:
            **kwargs: Passed to ``aflow._schedules._serve.serve``: ``schedule`` (default: ``self.schedule``),
                ``overlap`` (``"skip"``, ``"queue"`` or ``"allow"``), ``parameters``, ``clock``,
                ``max_runs`` and ``on_run``.

        Returns:
            The final state of every run, once ``max_runs`` runs are done or the schedule ends.
        """
        from .._schedules._serve import serve

        return await serve(self._as_flow(), **kwargs)

    def run_sync(self, parameters: dict[str, Any] | None = None, **kwargs: Any) -> State:
        """Run the flow from plain sync code (a script) and return its final state.

        Takes the same arguments as `run`.

        Raises:
            RuntimeError: If called inside a running event loop: there, ``await flow.run()``.
        """
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "flow.run_sync() cannot be called from a running event loop (a notebook, an async app): "
                "use `await flow.run(...)` there instead"
            )
        import anyio

        async def main() -> State:
            return await self.run(parameters, **kwargs)

        return anyio.run(main)


# the run arguments `run` and `start` pass on: those `RunSettings.build` takes (one list to keep)
_RUN_ARGS = tuple(inspect.signature(RunSettings.build).parameters)[1:]  # all but ``flow``
