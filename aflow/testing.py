"""Helpers for testing flows and tasks: a fake clock, so retries and timeouts never really wait."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, final

import anyio
import anyio.lowlevel

from ._runtime._clock import Clock

__all__ = ("FakeClock",)

_SETTLE = 8  # loop iterations `advance` yields, so that woken waiters (and what they wake) run


@final
class FakeClock(Clock):
    """A clock whose time moves only when a sleep or the test moves it.

    Pass it to ``flow.run(clock=FakeClock())`` or ``flow.start(clock=...)``: retry delays
    elapse instantly (``sleep`` advances the fake time at once), and ``clock.sleeps`` records
    every delay the engine asked for.

    Timeouts are fake deadlines. A task's ``timeout`` and the cancel grace are waits on the
    clock (`wait`): each sets a deadline in fake time that fires only when the fake time
    reaches it, through `advance`, `jump` or another task's ``sleep``. A test starts the run,
    then moves time::

        clock = FakeClock()
        handle = flow.start(clock=clock)
        await clock.jump()  # the body's timeout fires: it is cancelled
        state = await handle

    Args:
        start: The fake time at the start (default: 2024-01-01 UTC).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2024, 1, 1, tzinfo=UTC)
        self.sleeps: list[float] = []
        self._deadlines: list[tuple[datetime, asyncio.Future[None]]] = []
        self._watchers: list[asyncio.Future[None]] = []  # woken when a deadline is set

    def now(self) -> datetime:
        """Return the fake current time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Record the delay, advance the fake time (firing the deadlines it passes), yield once."""
        self.sleeps.append(seconds)
        self._move_to(self._now + timedelta(seconds=seconds))
        await anyio.lowlevel.checkpoint()

    async def wait(
        self,
        aws: Iterable[asyncio.Future[Any]],
        timeout: float | None,  # noqa: ASYNC109 (the clock is what implements timeouts)
    ) -> set[asyncio.Future[Any]]:
        """Wait until every one of ``aws`` is done, or the fake time passed ``timeout`` seconds.

        Args:
            aws: Futures or tasks (not cancelled when the time is up).
            timeout: Fake seconds to wait at most; None waits for them all.

        Returns:
            The ones still pending (empty when all ended in time).
        """
        futures = {asyncio.ensure_future(a) for a in aws}
        if timeout is None:
            await asyncio.wait(futures)
            return set()
        deadline = self._set_deadline(self._now + timedelta(seconds=timeout))
        try:
            pending: set[asyncio.Future[Any]] = {f for f in futures if not f.done()}
            while pending and not deadline.done():
                _, pending = await asyncio.wait({*pending, deadline}, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(deadline)
        finally:
            self._drop(deadline)
        return {f for f in futures if not f.done()}

    async def advance(self, seconds: float) -> None:
        """Move the fake time forward, fire every deadline now due and let woken waiters run.

        Args:
            seconds: Fake seconds to move by (not negative).
        """
        if seconds < 0:
            raise ValueError(f"cannot move a clock back, got {seconds!r} seconds")
        self._move_to(self._now + timedelta(seconds=seconds))
        await _settle()

    async def next_deadline(self) -> datetime:
        """Wait until some deadline is pending (a body runs under its timeout, say); return its time.

        Returns:
            The fake time of the earliest pending deadline.
        """
        while not self._deadlines:
            watcher = asyncio.get_running_loop().create_future()
            self._watchers.append(watcher)
            try:
                await watcher
            finally:
                if watcher in self._watchers:
                    self._watchers.remove(watcher)
        return min(due for due, _ in self._deadlines)

    async def jump(self) -> None:
        """Advance exactly to the earliest pending deadline (waiting for one if none is set yet)."""
        self._move_to(await self.next_deadline())
        await _settle()

    def _set_deadline(self, due: datetime) -> asyncio.Future[None]:
        deadline: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if due <= self._now:
            deadline.set_result(None)
            return deadline
        self._deadlines.append((due, deadline))
        watchers, self._watchers = self._watchers, []
        for w in watchers:
            if not w.done():
                w.set_result(None)
        return deadline

    def _drop(self, deadline: asyncio.Future[None]) -> None:
        self._deadlines = [(due, d) for due, d in self._deadlines if d is not deadline]

    def _move_to(self, when: datetime) -> None:
        self._now = max(self._now, when)
        keep = []
        for due, deadline in self._deadlines:
            if due <= self._now:
                if not deadline.done():
                    deadline.set_result(None)
            else:
                keep.append((due, deadline))
        self._deadlines = keep


async def _settle() -> None:
    for _ in range(_SETTLE):
        await asyncio.sleep(0)
