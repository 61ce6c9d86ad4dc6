from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.logwait import LineWaiter, capture_task_logs


@pytest.fixture
def lines() -> Iterator[LineWaiter]:
    """The records of every task logger during the test (see tests/logwait.py)."""
    with capture_task_logs() as handler:
        yield handler
