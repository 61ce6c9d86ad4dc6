"""Clocks: the sources of a schedule's events (`IntervalClock`, `CronClock`, `DatesClock`)."""

from __future__ import annotations

from .._schedules.clocks import ClockEvent as ClockEvent
from .._schedules.clocks import CronClock as CronClock
from .._schedules.clocks import DatesClock as DatesClock
from .._schedules.clocks import IntervalClock as IntervalClock
from .._schedules.clocks import ScheduleClock as ScheduleClock

__all__ = (
    "ClockEvent",
    "CronClock",
    "DatesClock",
    "IntervalClock",
    "ScheduleClock",
)
