"""Implementation of `aflow.schedules.adjustments` (documented there)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from ._time import add_wall

__all__ = ("Adjustment", "add", "next_weekday")

Adjustment = Callable[[datetime], datetime]
"""A schedule adjustment: returns the start time an event should really have."""


def add(interval: timedelta) -> Adjustment:
    """An adjustment that moves events by ``interval`` (may be negative).

    Whole days (``timedelta(days=1)``, which is also ``timedelta(hours=24)``) move in wall-clock
    time of the event's zone, so 09:00 stays 09:00 across a DST change; other amounts are exact
    elapsed time.

    Args:
        interval: How far to move.

    Returns:
        The adjustment.

    Raises:
        TypeError: If ``interval`` is not a timedelta.
    """
    if not isinstance(interval, timedelta):
        raise TypeError(f"interval must be a timedelta, got {interval!r}")

    def _add(dt: datetime) -> datetime:
        return add_wall(dt, interval)

    return _add


def next_weekday(dt: datetime) -> datetime:
    """Move an event on a Saturday or Sunday to the next Monday, at the same wall-clock time.

    Events on weekdays are left as they are.

    Args:
        dt: The event's start time.

    Returns:
        The adjusted start time.
    """
    while dt.weekday() > 4:
        dt = add_wall(dt, timedelta(days=1))
    return dt
