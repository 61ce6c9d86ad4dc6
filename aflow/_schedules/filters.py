"""Implementation of `aflow.schedules.filters` (documented there)."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import datetime, time

from ._time import aware, utc

__all__ = (
    "Filter",
    "at_time",
    "between_dates",
    "between_times",
    "is_month_end",
    "is_month_start",
    "is_weekday",
    "is_weekend",
    "on_date",
    "on_datetime",
)

Filter = Callable[[datetime], bool]
"""A schedule filter: keeps the events whose start time it returns True for."""


def is_weekday(dt: datetime) -> bool:
    """True from Monday to Friday.

    Args:
        dt: The event's start time.
    """
    return dt.weekday() < 5


def is_weekend(dt: datetime) -> bool:
    """True on Saturday and Sunday.

    Args:
        dt: The event's start time.
    """
    return dt.weekday() > 4


def is_month_start(dt: datetime) -> bool:
    """True on the first day of a month.

    Args:
        dt: The event's start time.
    """
    return dt.day == 1


def is_month_end(dt: datetime) -> bool:
    """True on the last day of a month.

    Args:
        dt: The event's start time.
    """
    return dt.day == calendar.monthrange(dt.year, dt.month)[1]


def _check_date(month: int, day: int) -> None:
    if not isinstance(month, int) or not 1 <= month <= 12:
        raise ValueError(f"month must be 1..12, got {month!r}")
    # 2024 is a leap year, so 29 February is allowed
    if not isinstance(day, int) or not 1 <= day <= calendar.monthrange(2024, month)[1]:
        raise ValueError(f"day {day!r} does not exist in month {month}")


def _wall(t: time) -> time:
    if not isinstance(t, time):
        raise TypeError(f"expected a datetime.time, got {t!r}")
    return t.replace(tzinfo=None)


def at_time(t: time) -> Filter:
    """A filter that keeps events at exactly wall-clock time ``t``.

    Args:
        t: The time of day (its tzinfo, if any, is ignored: the event's own zone counts).

    Returns:
        The filter.
    """
    t = _wall(t)

    def _at_time(dt: datetime) -> bool:
        return dt.time() == t

    return _at_time


def between_times(start: time, end: time) -> Filter:
    """A filter that keeps events between two wall-clock times of day, both included.

    If ``start`` is later than ``end`` the range wraps past midnight (``time(22)`` to
    ``time(6)`` keeps the night).

    Args:
        start: The first time of day kept.
        end: The last time of day kept.

    Returns:
        The filter.
    """
    start, end = _wall(start), _wall(end)

    def _between_times(dt: datetime) -> bool:
        t = dt.time()
        if start <= end:
            return start <= t <= end
        return t >= start or t <= end

    return _between_times


def between_dates(start_month: int, start_day: int, end_month: int, end_day: int) -> Filter:
    """A filter that keeps events between two days of the year, both included, in any year.

    If the start is later in the year than the end the range wraps past New Year
    (``between_dates(12, 1, 1, 31)`` keeps December and January).

    Args:
        start_month: Month of the first day kept (1-12).
        start_day: Day of month of the first day kept.
        end_month: Month of the last day kept.
        end_day: Day of month of the last day kept.

    Returns:
        The filter.

    Raises:
        ValueError: For a month or day that does not exist.
    """
    _check_date(start_month, start_day)
    _check_date(end_month, end_day)
    first, last = (start_month, start_day), (end_month, end_day)

    def _between_dates(dt: datetime) -> bool:
        d = (dt.month, dt.day)
        if first <= last:
            return first <= d <= last
        return d >= first or d <= last

    return _between_dates


def on_date(month: int, day: int) -> Filter:
    """A filter that keeps events on one day of the year, in any year.

    Args:
        month: The month (1-12).
        day: The day of the month.

    Returns:
        The filter.

    Raises:
        ValueError: For a month or day that does not exist.
    """
    _check_date(month, day)

    def _on_date(dt: datetime) -> bool:
        return dt.month == month and dt.day == day

    return _on_date


def on_datetime(when: datetime) -> Filter:
    """A filter that keeps only the event at the instant ``when``.

    Args:
        when: The instant (naive: UTC); any zone matches the same instant.

    Returns:
        The filter.
    """
    target = utc(aware(when, "when"))

    def _on_datetime(dt: datetime) -> bool:
        return utc(dt) == target

    return _on_datetime
