"""Filters for a `Schedule`: predicates on an event's start time.

Each filter takes a timezone-aware datetime and returns a bool; the ``*_time`` and ``*_date``
filters read the datetime's wall clock in its own time zone (a `CronClock`'s ``tz``, an
`IntervalClock`'s ``start_date`` zone). Functions written ``is_*`` are filters themselves;
the others build one from their arguments::

    Schedule([clock], filters=[is_weekday, between_times(time(9), time(17))])

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from .._schedules.filters import Filter as Filter
from .._schedules.filters import at_time as at_time
from .._schedules.filters import between_dates as between_dates
from .._schedules.filters import between_times as between_times
from .._schedules.filters import is_month_end as is_month_end
from .._schedules.filters import is_month_start as is_month_start
from .._schedules.filters import is_weekday as is_weekday
from .._schedules.filters import is_weekend as is_weekend
from .._schedules.filters import on_date as on_date
from .._schedules.filters import on_datetime as on_datetime

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
