"""The clock the engine reads and waits on: retry delays, task timeouts, the cancel grace.

Tests inject `aflow.testing.FakeClock`, which moves only when told to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import anyio

__all__ = ("Clock", "SystemClock")


class Clock:
    """Wall time, sleeping and bounded waits, as the engine sees them.

    Retry delays sleep on the run's clock; task timeouts and the cancel grace are `wait` calls
    on it. Subclass to control time in tests (`aflow.testing.FakeClock` overrides all three).
    """

    def now(self) -> datetime:
        """Return the current time (timezone-aware, UTC)."""
        return datetime.now(UTC)

    def timestamp(self) -> float:
        """Return the current time as seconds since the epoch (what run stores record)."""
        return self.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` without blocking the event loop."""
        await anyio.sleep(seconds)

    async def wait(
        self,
        aws: Iterable[asyncio.Future[Any]],
        timeout: float | None,  # noqa: ASYNC109 (the clock is what implements timeouts)
    ) -> set[asyncio.Future[Any]]:
        """Wait until every one of ``aws`` is done, or ``timeout`` seconds have passed.

        Args:
            aws: Futures or tasks (not cancelled when the time is up).
            timeout: Seconds to wait at most; None waits for them all.

        Returns:
            The ones still pending (empty when all ended in time).
        """
        _, pending = await asyncio.wait(aws, timeout=timeout)
        return pending


class SystemClock(Clock):
    """The real clock."""

    def timestamp(self) -> float:
        """Return ``time.time()``."""
        return time.time()


SYSTEM_CLOCK = SystemClock()
