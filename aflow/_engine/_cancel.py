"""Cancelling task bodies with a bound: one cancellation, a grace period, then giving up.

A body that swallows `asyncio.CancelledError` must not hold a run for ever, nor make the engine
spin re-delivering cancellations (an anyio cancel scope re-delivers at every await). The engine
cancels a body once; if it has not ended ``grace`` seconds later, it gives up on it: the body's
coroutine is closed (`GeneratorExit` at its await, so its ``finally`` blocks run) and its task
is woken once more so that it ends, and the run goes on without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import anyio

from .._runtime._settings import DEFAULT_CANCEL_GRACE, check_grace

if TYPE_CHECKING:
    from .._runtime._clock import Clock

__all__ = ("DEFAULT_CANCEL_GRACE", "check_grace", "give_up", "ignored_message", "stop_all", "stop_within")


def _retrieve(t: asyncio.Future[Any]) -> None:
    if not t.cancelled():
        t.exception()  # retrieved: a given-up body's end is of no interest


def give_up(t: asyncio.Task[Any]) -> None:
    """Stop waiting for ``t``: close its coroutine and wake it, so that it ends without a result.

    Closing raises `GeneratorExit` where the coroutine waits (``except Exception`` and
    ``except CancelledError`` do not catch it; ``finally`` blocks run). A coroutine that awaits
    again while closing cannot be stopped: it gets one more cancellation and is left alone.
    """
    if t.done():
        return
    t.add_done_callback(_retrieve)
    try:
        t.get_coro().close()
    except RuntimeError:  # "coroutine ignored GeneratorExit": it awaits again
        pass
    t.cancel()  # wakes it: a closed coroutine ends its task at once


async def stop_all(tasks: Collection[asyncio.Task[Any]], grace: float, clock: Clock) -> set[asyncio.Task[Any]]:
    """Cancel each of ``tasks`` once and wait up to ``grace`` seconds (on ``clock``) for them all to end.

    Returns:
        The tasks that ignored the cancellation and were given up on (empty when all ended).
    """
    for t in tasks:
        t.cancel()
    try:
        with anyio.CancelScope(shield=True):  # an anyio scope cancelling the caller waits too
            stuck: set[Any] = await clock.wait(tasks, grace)
    except BaseException:  # cancelled (or closed) while waiting: no more patience
        for t in tasks:
            give_up(t)
        raise
    for t in tasks:
        if t.done():
            _retrieve(t)
    for t in stuck:
        give_up(t)
    return stuck


async def stop_within(t: asyncio.Task[Any], grace: float, clock: Clock) -> bool:
    """Cancel ``t`` once and wait up to ``grace`` seconds (on ``clock``) for it to end.

    Returns:
        True if it ended; False if it ignored the cancellation and was given up on.
    """
    return not await stop_all((t,), grace, clock)


def ignored_message(name: str, is_async: bool, grace: float, what: str) -> str:
    """The message of a task given up on: it names the task and says that it ignored cancellation."""
    how = (
        "it ignored cancellation (it caught CancelledError without re-raising it)"
        if is_async
        else "it ignored cancellation (its body runs in a worker thread, which cannot be interrupted)"
    )
    return f"Task {name!r} was still running {grace:g}s after {what}: {how}; the run gave up on it"
