"""The clock the engine reads for retry delays (tests inject `aflow.testing.FakeClock`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import anyio

__all__ = ("Clock", "SystemClock")


class Clock:
    """Wall time and sleeping, as the engine sees them. Subclass to control time in tests."""

    def now(self) -> datetime:
        """Return the current time (timezone-aware, UTC)."""
        return datetime.now(UTC)

    def timestamp(self) -> float:
        """Return the current time as seconds since the epoch (what run stores record)."""
        return self.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` without blocking the event loop."""
        await anyio.sleep(seconds)


class SystemClock(Clock):
    """The real clock."""

    def timestamp(self) -> float:
        """Return ``time.time()``."""
        return time.time()


SYSTEM_CLOCK = SystemClock()
