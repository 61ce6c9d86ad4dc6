"""`FlowRun`: the handle of a flow run started in the background with `Flow.start`.

Also `RunCall`, what ``flow.run()`` returns: a coroutine that explains itself when it is used
without ``await``.
"""

from __future__ import annotations

import asyncio
import functools
import warnings
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, final

from ..exceptions import NotAwaitedError

if TYPE_CHECKING:
    from .._engine._scheduler import FlowRunner
    from ..states import State

__all__ = ("FlowRun", "RunCall", "explained_if_not_awaited")

P = ParamSpec("P")
T = TypeVar("T")

_HOW = "write `state = await flow.run(...)` in async code, or `state = flow.run_sync(...)` in a script"


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


@final
class RunCall(Coroutine[Any, Any, T]):
    """The coroutine of one ``flow.run(...)`` call, made only when it is first awaited or driven.

    Awaiting it (or giving it to ``asyncio.create_task``) runs the flow exactly as the coroutine
    would. Used as a state without ``await`` (``flow.run().is_successful()``), it raises
    `aflow.exceptions.NotAwaitedError` saying what to write instead; dropped without ever being
    awaited, it warns (a RuntimeWarning) that the flow did not run.
    """

    __slots__ = ("_args", "_coro", "_fn", "_kwargs", "_reported")

    def __init__(self, fn: Callable[..., Coroutine[Any, Any, T]], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._coro: Coroutine[Any, Any, T] | None = None
        self._reported = False

    def _start(self) -> Coroutine[Any, Any, T]:
        coro = self._coro
        if coro is None:
            coro = self._coro = self._fn(*self._args, **self._kwargs)
            self._args, self._kwargs = (), {}
        return coro

    def __await__(self) -> Generator[Any, None, T]:
        return self._start().__await__()

    def send(self, value: Any) -> Any:
        """Drive the run one step (as a task of the event loop does)."""
        return self._start().send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        """Raise an exception (a cancellation) inside the run."""
        if val is None and tb is None:
            return self._start().throw(typ)
        return self._start().throw(typ, val, tb)  # pragma: no cover - the deprecated form

    def close(self) -> None:
        """Close the run's coroutine; a run never started is dropped without a warning."""
        if self._coro is None:
            self._reported = True
        else:
            self._coro.close()

    @property
    def __name__(self) -> str:  # what asyncio shows in a Task's repr: coro=<Flow.run()>
        return getattr(self._fn, "__qualname__", "run")

    def _what(self) -> str:
        flow = self._args[0] if self._args else None
        name = getattr(flow, "name", None)
        return f"flow.run() of flow {name!r}" if name is not None else "flow.run()"

    if not TYPE_CHECKING:  # hidden from type checkers: `flow.run().is_successful()` stays a static error

        def __getattr__(self, name: str) -> Any:
            # only for names the class lacks: a state's (is_successful, result...), or introspection's
            if name.startswith(("_", "cr_", "gi_")):
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            self._reported = True
            raise NotAwaitedError(f"{self._what()} was not awaited, so there is no state to read {name!r} from: {_HOW}")

    def __repr__(self) -> str:
        return f"<{self._what()}: not a state until awaited; {_HOW}>"

    def __del__(self) -> None:
        if self._coro is None and not self._reported:
            warnings.warn(f"{self._what()} was never awaited, so the flow did not run: {_HOW}", RuntimeWarning, 2)


def explained_if_not_awaited(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Make an ``async def`` method return a `RunCall`: the same coroutine, with clear misuse errors.

    The declared type stays a plain coroutine, so type checkers still flag a call left unawaited.
    """

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]:
        return RunCall(fn, args, kwargs)

    return call
