"""Small blocking jobs (reading or writing one result file) run in worker threads, in batches.

One ``anyio.to_thread.run_sync`` call costs tens of microseconds of hand-over between the loop
and a thread; a checkpointed 10,000-task flow would pay it per task. `run_batched` queues the
job and lets a few drain tasks hand the queue to worker threads many jobs at a time, so the
hand-over is paid per batch. Each job's result or exception goes back to its own caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

__all__ = ("run_batched",)

T = TypeVar("T")
_BATCH = 64  # jobs per thread call
_DRAINERS = 4  # thread calls in flight at once, per event loop

_Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


class _Queue:
    __slots__ = ("drainers", "jobs")

    def __init__(self) -> None:
        self.jobs: list[_Job] = []
        self.drainers: set[asyncio.Task[None]] = set()  # referenced here while they run


_queues: dict[asyncio.AbstractEventLoop, _Queue] = {}


def _run_jobs(jobs: list[_Job]) -> list[tuple[bool, Any]]:
    out: list[tuple[bool, Any]] = []
    for fn, args, _ in jobs:
        try:
            out.append((True, fn(*args)))
        except Exception as exc:  # handed to the job's caller
            out.append((False, exc))
    return out


async def _drain(loop: asyncio.AbstractEventLoop, queue: _Queue) -> None:
    me = asyncio.current_task()
    try:
        while queue.jobs:
            batch, queue.jobs = queue.jobs[:_BATCH], queue.jobs[_BATCH:]
            results = await anyio.to_thread.run_sync(_run_jobs, batch)
            for (_, _, future), (ok, value) in zip(batch, results, strict=True):
                if future.done():  # its caller was cancelled: the job ran anyway
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
    finally:
        queue.drainers.discard(me)
        if not queue.drainers and not queue.jobs:
            _queues.pop(loop, None)


async def run_batched(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a worker thread, possibly in one call with other queued jobs.

    Like ``anyio.to_thread.run_sync``, the job runs to its end even if the caller is
    cancelled, and the caller waits for that end before the cancellation goes on.
    """
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = _Queue()
    future: asyncio.Future[T] = loop.create_future()
    queue.jobs.append((fn, args, future))
    if len(queue.drainers) < _DRAINERS:
        queue.drainers.add(loop.create_task(_drain(loop, queue)))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with anyio.CancelScope(shield=True):
            await asyncio.wait([future])  # the job is not interrupted: wait for it, then go on
        if not future.cancelled():
            future.exception()  # retrieved: the cancellation is what the caller gets
        raise
