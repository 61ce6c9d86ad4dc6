"""The executor interface (`Executor`, `BodyCall`) and the default `LocalExecutor`.

Public as `aflow.executors`; the engine imports them from here, so that the public module and
the engine's runner never import each other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import TYPE_CHECKING, Any, final

from ._invoke import invoke

if TYPE_CHECKING:
    from .._model._task import Task

__all__ = ("LOCAL_TAG", "BodyCall", "Executor", "LocalExecutor")

LOCAL_TAG = "local"
"""Tasks with this tag run their body in the caller's process under any executor."""


@final
class BodyCall:
    """One task body to run: what an executor receives.

    Attributes:
        task: The task (its ``run`` is the body).
        inputs: The keyword arguments of ``run``, lazy defaults already resolved.
        context: The run context values the body may read (``aflow.context.to_dict()`` without
            the logger): ship them and set them with ``aflow.context.temporary(**context)``.
    """

    __slots__ = ("context", "inputs", "task")

    def __init__(self, task: Task, inputs: dict[str, Any], context: dict[str, Any]) -> None:
        self.task = task
        self.inputs = inputs
        self.context = context

    async def run_locally(self) -> Any:
        """Run the body here, as the default executor does."""
        return await invoke(self.task, self.inputs)


class Executor(ABC):
    """Where task bodies run. Subclass it and implement `run`.

    A flow run calls `start` before its first task and `shutdown` after its last (also on
    failure and cancellation); ``async with executor:`` does the same around several runs.
    """

    async def start(self) -> None:
        """Acquire what the executor needs (a cluster, a client). Called once per run."""
        return  # nothing by default

    async def shutdown(self) -> None:
        """Release what `start` acquired."""
        return

    @abstractmethod
    async def run(self, call: BodyCall) -> Any:
        """Run ``call``'s body and return its value, or raise its exception.

        Cancelling the awaiting coroutine must stop (or abandon) the remote work.
        """

    async def __aenter__(self) -> Executor:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()


@final
class LocalExecutor(Executor):
    """The default: async bodies on the flow's event loop, sync bodies in worker threads."""

    async def run(self, call: BodyCall) -> Any:
        """Run the body in this process."""
        return await call.run_locally()
