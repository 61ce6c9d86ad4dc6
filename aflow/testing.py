"""Helpers for testing flows and tasks: a fake clock so retries never really sleep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import final

import anyio
import anyio.lowlevel

from ._runtime._clock import Clock

__all__ = ("FakeClock",)


@final
class FakeClock(Clock):
    """A clock whose ``sleep`` returns at once and moves the fake time forward.

    Pass it to ``flow.run(clock=FakeClock())``: retry delays elapse instantly, and
    ``clock.sleeps`` records every delay the engine asked for.

    Args:
        start: The fake time at the start (default: 2024-01-01 UTC).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2024, 1, 1, tzinfo=UTC)
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        """Return the fake current time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Record the delay, advance the fake time and yield to the event loop once."""
        self.sleeps.append(seconds)
        self._now += timedelta(seconds=seconds)
        await anyio.lowlevel.checkpoint()
