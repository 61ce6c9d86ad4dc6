"""Running a task's body in this process: async bodies on the loop, sync ones in worker threads."""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .._model._defaults import resolve_defaults

if TYPE_CHECKING:
    from .._model._task import Task

__all__ = ("invoke",)

_CancelledError = asyncio.CancelledError


async def _in_thread(fn: Any) -> Any:
    """Run ``fn`` in a worker thread; if cancelled, wait for the thread to end, then re-raise.

    A thread cannot be interrupted, and anyio only shields its own cancel scopes: a plain
    ``Task.cancel()`` (a cancelled flow run) would otherwise return while the body still runs.
    """
    inner = asyncio.ensure_future(anyio.to_thread.run_sync(fn))
    try:
        return await asyncio.shield(inner)
    except _CancelledError:
        with anyio.CancelScope(shield=True):
            while not inner.done():
                try:
                    await asyncio.wait([inner])
                except _CancelledError:
                    pass
        if not inner.cancelled():
            inner.exception()  # retrieved: the cancellation wins
        raise


async def invoke(task: Task, inputs: dict[str, Any]) -> Any:
    """Run the body of ``task`` in this process (sync bodies in a worker thread)."""
    if task.run_is_async:
        return await task.run(**inputs)
    inputs = dict(inputs)
    await resolve_defaults(task, task.run, (), inputs)  # lazy defaults are awaited on the loop
    result = await _in_thread(functools.partial(task.run, **inputs))
    if inspect.isawaitable(result):  # a sync wrapper around a coroutine function
        result = await result
    return result
