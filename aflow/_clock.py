"""The clock the engine reads for retry delays (tests inject `aflow.testing.FakeClock`)."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio

__all__ = ("Clock", "SystemClock")


class Clock:
    """Wall time and sleeping, as the engine sees them. Subclass to control time in tests."""

    def now(self) -> datetime:
        """Return the current time (timezone-aware, UTC)."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` without blocking the event loop."""
        await anyio.sleep(seconds)


class SystemClock(Clock):
    """The real clock."""


SYSTEM_CLOCK = SystemClock()
