"""Adjustments for a `Schedule`: functions that move an event's start time once it passed the filters.

Each adjustment takes a timezone-aware datetime and returns another; they apply in order.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from .._schedules.adjustments import Adjustment as Adjustment
from .._schedules.adjustments import add as add
from .._schedules.adjustments import next_weekday as next_weekday

__all__ = (
    "Adjustment",
    "add",
    "next_weekday",
)
