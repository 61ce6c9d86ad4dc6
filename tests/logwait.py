"""A logging handler that collects task log records and lets a test wait for lines."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import anyio

__all__ = ("LineWaiter", "capture_task_logs")


class LineWaiter(logging.Handler):
    """Collects the task loggers' records and wakes waiters as they arrive."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._event = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._event.set()
        self._event = anyio.Event()

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    @property
    def info(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == logging.INFO]

    async def wait_for(self, count: int, limit: float = 20) -> list[str]:
        """Wait until ``count`` INFO messages arrived; return them."""
        with anyio.fail_after(limit):
            while len(self.info) < count:
                await self._event.wait()
        return self.info

    async def wait_for_text(self, text: str, count: int = 1, limit: float = 30) -> list[str]:
        """Wait until ``count`` messages contain ``text``; return them."""
        with anyio.fail_after(limit):
            while True:
                event = self._event
                found = [m for m in self.messages if text in m]
                if len(found) >= count:
                    return found
                await event.wait()


@contextmanager
def capture_task_logs() -> Iterator[LineWaiter]:
    """Attach a `LineWaiter` to the ``aflow.task`` loggers at DEBUG for the block."""
    handler = LineWaiter()
    logger = logging.getLogger("aflow.task")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
