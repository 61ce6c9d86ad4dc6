"""Calls that a cancellation must not cut in half: starting something remote, cleaning it up.

``anyio.CancelScope(shield=True)`` holds off anyio's cancellations only; a plain asyncio
``Task.cancel()`` (a cancelled flow run, an engine timeout) still interrupts what it shields,
and a request cut off mid-flight may have created a Job or an upload whose id never arrives.
`to_the_end` runs the call as an asyncio task of its own instead, which no cancellation of the
caller reaches: the caller waits for it and then hands the cancellation on. When the call
started something and the caller was cancelled meanwhile, ``undo`` gets its result, so what was
started is cleaned up.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

__all__ = ("to_the_end",)

T = TypeVar("T")

_background: set[asyncio.Future[Any]] = set()  # undo calls left running by a closed caller


def _keep(job: asyncio.Future[Any]) -> None:
    _background.add(job)

    def done(j: asyncio.Future[Any]) -> None:
        _background.discard(j)
        if not j.cancelled():
            j.exception()  # retrieved: nobody waits for it any more

    job.add_done_callback(done)


def _undo_later(job: asyncio.Future[T], undo: Callable[[T], Awaitable[Any]] | None) -> None:
    """The caller is gone: once ``job`` ends with a result, run ``undo`` on it in the background."""

    def then(j: asyncio.Future[T]) -> None:
        if j.cancelled() or j.exception() is not None or undo is None:
            return
        _keep(asyncio.ensure_future(undo(j.result())))

    _keep(job)
    job.add_done_callback(then)


async def to_the_end(
    call: Awaitable[T], undo: Callable[[T], Awaitable[Any]] | None = None, *, limit: float = 30.0
) -> T:
    """Await ``call`` to its end, whatever cancellation reaches the caller meanwhile.

    A cancellation of the caller (asyncio's or anyio's) while ``call`` runs is held until it has
    ended, for at most ``limit`` more seconds (then ``call`` is cancelled: an answer that never
    comes cannot be undone): then, if ``call`` returned, ``undo(result)`` runs (to its end as
    well, under the same limit), and the cancellation is raised (an anyio scope's only when
    there was something to undo; otherwise, as with a shielded scope, at the caller's next
    checkpoint). If the caller's coroutine is
    closed meanwhile (the run gave up on the task), ``call`` and ``undo`` go on in the background.

    Args:
        call: The call, e.g. a request that creates something.
        undo: Undoes what ``call`` started, given its result; None when there is nothing to undo.
        limit: Seconds a cancelled caller waits for ``call`` (and for ``undo``).

    Returns:
        The result of ``call``.
    """
    job = asyncio.ensure_future(call)
    loop = asyncio.get_running_loop()
    held: BaseException | None = None  # an asyncio cancellation of the caller, raised at the end
    cancelled = False  # the caller was cancelled (by asyncio, or by an anyio scope around it)
    deadline = 0.0
    try:
        while not job.done():
            now = loop.time()
            outer = anyio.current_effective_deadline()  # -inf once an enclosing anyio scope is cancelled
            if not cancelled and outer <= now:
                cancelled, deadline = True, now + limit
            if cancelled:
                if deadline <= now:  # no answer in time: what it started cannot be known
                    job.cancel()
                    break
                timeout: float | None = deadline - now
            else:
                timeout = None if outer == math.inf else outer - now
            try:
                with anyio.CancelScope(shield=True):
                    await asyncio.wait((job,), timeout=timeout)
            except asyncio.CancelledError as exc:
                held = held or exc
                if not cancelled:
                    cancelled, deadline = True, loop.time() + limit
    except BaseException:  # closed (GeneratorExit): no more awaiting here
        _undo_later(job, undo)
        raise
    if not cancelled:
        return job.result()
    if not job.done():
        _undo_later(job, undo)
    elif not job.cancelled() and job.exception() is None and undo is not None:
        await to_the_end(undo(job.result()), limit=limit)
    if held is not None:
        raise held
    if undo is not None:  # what was started is undone: the result must not be used
        await anyio.lowlevel.checkpoint()  # raises the cancellation of the anyio scope
    return job.result()  # the caller's next checkpoint raises the anyio scope's cancellation
