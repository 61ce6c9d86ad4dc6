"""`Schedule`: clocks merged in time order, then filtered and adjusted."""

from __future__ import annotations

import heapq
from collections.abc import Generator, Iterable, Iterator
from datetime import datetime
from typing import Literal, TypeVar, final, overload

from ._time import utc
from .adjustments import Adjustment
from .clocks import ClockEvent, ScheduleClock
from .filters import Filter

__all__ = ("MAX_CANDIDATES", "Schedule")

_F = TypeVar("_F")

MAX_CANDIDATES = 10_000
"""`Schedule.next` gives up after this many clock events, as Prefect 1 does."""


@final
class Schedule:
    """When a flow should run: the events of several clocks, filtered and adjusted.

    The clocks' events merge in time order; an event that two clocks both produce (same instant,
    parameter defaults and labels) counts once. An event is kept when every one of ``filters``,
    at least one of ``or_filters`` (if any) and none of ``not_filters`` accept its start time;
    then each of ``adjustments`` in turn may move it.

    Datetimes are timezone-aware throughout; naive ones given to any method or clock are taken
    to be UTC.

    Args:
        clocks: The clocks (at least one), see `IntervalClock`, `CronClock`, `DatesClock`.
        filters: Filters that must all accept an event.
        or_filters: Filters of which at least one must accept an event.
        not_filters: Filters none of which may accept an event.
        adjustments: Functions applied in order to the start time of each kept event.

    Raises:
        ValueError: If there is no clock.
        TypeError: If a clock is not a `ScheduleClock` or a filter is not callable.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        clocks: Iterable[ScheduleClock],
        filters: Iterable[Filter] | None = None,
        or_filters: Iterable[Filter] | None = None,
        not_filters: Iterable[Filter] | None = None,
        adjustments: Iterable[Adjustment] | None = None,
    ) -> None:
        if isinstance(clocks, ScheduleClock):
            raise TypeError("clocks must be a list of clocks: wrap the clock in a list")
        self.clocks = list(clocks)
        if not self.clocks:
            raise ValueError("A Schedule needs at least one clock")
        for c in self.clocks:
            if not isinstance(c, ScheduleClock):
                raise TypeError(f"Schedule clocks must be ScheduleClock instances, got {c!r}")
        self.filters = _callables(filters, "filters")
        self.or_filters = _callables(or_filters, "or_filters")
        self.not_filters = _callables(not_filters, "not_filters")
        self.adjustments = _callables(adjustments, "adjustments")

    def __repr__(self) -> str:
        return f"Schedule({self.clocks!r})"

    @property
    def start_date(self) -> datetime | None:
        """The earliest ``start_date`` of the clocks, or None if one of them has none."""
        dates = [c.start_date for c in self.clocks]
        return None if any(d is None for d in dates) else min((d for d in dates if d is not None), key=utc)

    @property
    def end_date(self) -> datetime | None:
        """The latest ``end_date`` of the clocks, or None if one of them is endless."""
        dates = [c.end_date for c in self.clocks]
        return None if any(d is None for d in dates) else max((d for d in dates if d is not None), key=utc)

    @overload
    def next(self, n: int, after: datetime | None = None, return_events: Literal[False] = False) -> list[datetime]: ...
    @overload
    def next(self, n: int, after: datetime | None = None, *, return_events: Literal[True]) -> list[ClockEvent]: ...
    @overload
    def next(self, n: int, after: datetime | None, return_events: Literal[True]) -> list[ClockEvent]: ...

    def next(
        self, n: int, after: datetime | None = None, return_events: bool = False
    ) -> list[ClockEvent] | list[datetime]:
        """The next ``n`` start times (or events) strictly after ``after``.

        Stops early when the clocks end, or after examining 10,000 clock events (so filters that
        reject almost everything cannot loop forever); it may then return fewer than ``n``.

        Args:
            n: How many to return (0 or more).
            after: Only events later than this (default: now; naive: UTC).
            return_events: Return `ClockEvent`s (with parameter defaults and labels) instead of
                start times.

        Returns:
            Up to ``n`` start times or events, in clock order.

        Raises:
            ValueError: If ``n`` is negative.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        events: list[ClockEvent] = []
        if n == 0:
            return events
        for count, (event, kept) in enumerate(self._candidates(after), start=1):
            if kept:
                events.append(self._adjust(event))
            if len(events) >= n or count >= MAX_CANDIDATES:
                break
        return events if return_events else [e.start_time for e in events]

    def events(self, after: datetime | None = None) -> Generator[ClockEvent, None, None]:
        """Yield the schedule's events (filtered and adjusted) one by one, strictly after ``after``.

        Unlike `next` it does not stop after a fixed count, only when the clocks end or 10,000
        clock events in a row are filtered out.

        Args:
            after: Only events later than this (default: now; naive: UTC).

        Returns:
            An iterator of events, endless unless every clock ends.
        """
        rejected = 0
        for event, kept in self._candidates(after):
            if kept:
                rejected = 0
                yield self._adjust(event)
            else:
                rejected += 1
                if rejected >= MAX_CANDIDATES:
                    return

    def _candidates(self, after: datetime | None) -> Iterator[tuple[ClockEvent, bool]]:
        """Every clock event in time order without duplicates, and whether the filters keep it."""
        merged = heapq.merge(*(c.events(after) for c in self.clocks), key=lambda e: utc(e.start_time))
        at: datetime | None = None
        seen: list[ClockEvent] = []  # the events at instant ``at`` so far
        for event in merged:
            instant = utc(event.start_time)
            if instant != at:
                at, seen = instant, []
            if event in seen:
                continue
            seen.append(event)
            yield event, self._keep(event.start_time)

    def _keep(self, dt: datetime) -> bool:
        return (
            all(f(dt) for f in self.filters)
            and (not self.or_filters or any(f(dt) for f in self.or_filters))
            and not any(f(dt) for f in self.not_filters)
        )

    def _adjust(self, event: ClockEvent) -> ClockEvent:
        if not self.adjustments:
            return event
        dt = event.start_time
        for adjust in self.adjustments:
            dt = adjust(dt)
        return event.replace(dt)


def _callables(fns: Iterable[_F] | None, what: str) -> list[_F]:
    out = list(fns or ())
    for f in out:
        if not callable(f):
            raise TypeError(f"{what} must be callables, got {f!r}")
    return out
