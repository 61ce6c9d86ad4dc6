"""Schedules: when a flow runs, as in Prefect 1.

A `Schedule` merges the events of one or more clocks (`IntervalClock`, `CronClock`,
`DatesClock`) in time order, keeps those its `filters` accept and moves them with its
`adjustments`::

    from datetime import time, timedelta
    from aflow.schedules import CronClock, IntervalClock, Schedule, adjustments, filters

    schedule = Schedule(
        [CronClock("0 9 * * *", tz="Europe/Berlin"), IntervalClock(timedelta(hours=6))],
        filters=[filters.is_weekday],
        not_filters=[filters.between_times(time(0), time(5))],
        adjustments=[adjustments.add(timedelta(minutes=5))],
    )
    schedule.next(3)  # the next three start times

    flow = Flow("etl", schedule=schedule)
    await flow.serve(max_runs=3)  # run on the schedule, inside your event loop

All datetimes are timezone-aware; a naive datetime given anywhere is taken to be **UTC**.
Cron expressions are evaluated with `cronsim`, in `zoneinfo` time zones and with Debian cron's
DST behaviour.

The submodules `aflow.schedules.clocks`, `aflow.schedules.filters` and
`aflow.schedules.adjustments` import on their own too (``from aflow.schedules.filters import
is_weekday``), as in Prefect 1.
"""

from __future__ import annotations

from .._schedules.schedule import Schedule as Schedule
from . import adjustments as adjustments
from . import clocks as clocks
from . import filters as filters
from .clocks import ClockEvent as ClockEvent
from .clocks import CronClock as CronClock
from .clocks import DatesClock as DatesClock
from .clocks import IntervalClock as IntervalClock
from .clocks import ScheduleClock as ScheduleClock

__all__ = (
    "ClockEvent",
    "CronClock",
    "DatesClock",
    "IntervalClock",
    "Schedule",
    "ScheduleClock",
    "adjustments",
    "filters",
)

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
