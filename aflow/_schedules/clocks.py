"""Implementation of `aflow.schedules.clocks` (documented there)."""

from __future__ import annotations

import abc
import functools
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ._time import add_wall, aware, utc

__all__ = ("ClockEvent", "CronClock", "DatesClock", "IntervalClock", "ScheduleClock")

_INTERVAL_ORIGIN = datetime(2019, 1, 1, tzinfo=UTC)


@final
@functools.total_ordering
class ClockEvent:
    """One event of a clock: when a flow run should start, and with what.

    Events order by the instant of ``start_time`` (two events at the same instant in different
    time zones are simultaneous). They are equal when instant, ``parameter_defaults`` and
    ``labels`` all are; an event also compares with a plain datetime by instant.

    Args:
        start_time: When the run should start (naive: taken to be UTC).
        parameter_defaults: Parameter values for that run (explicit ones win over them).
        labels: Labels of the run.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("labels", "parameter_defaults", "start_time")

    start_time: datetime
    parameter_defaults: dict[str, Any]
    labels: frozenset[str]

    def __init__(
        self,
        start_time: datetime,
        parameter_defaults: Mapping[str, Any] | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        self.start_time = aware(start_time, "start_time")
        self.parameter_defaults = dict(parameter_defaults or {})
        self.labels = _labels(labels)

    def replace(self, start_time: datetime) -> ClockEvent:
        """A copy of the event that starts at ``start_time`` instead.

        Args:
            start_time: The new start time.

        Returns:
            The new event (``parameter_defaults`` and ``labels`` are kept).
        """
        return ClockEvent(start_time, self.parameter_defaults, self.labels)

    def __repr__(self) -> str:
        extra = ""
        if self.parameter_defaults:
            extra += f", parameter_defaults={self.parameter_defaults!r}"
        if self.labels:
            extra += f", labels={sorted(self.labels)!r}"
        return f"ClockEvent({self.start_time.isoformat()}{extra})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, datetime):
            return utc(self.start_time) == utc(aware(other, "other"))
        if not isinstance(other, ClockEvent):
            return NotImplemented
        return (
            utc(self.start_time) == utc(other.start_time)
            and self.parameter_defaults == other.parameter_defaults
            and self.labels == other.labels
        )

    def __lt__(self, other: object) -> bool:
        if isinstance(other, datetime):
            return utc(self.start_time) < utc(aware(other, "other"))
        if not isinstance(other, ClockEvent):
            return NotImplemented
        return utc(self.start_time) < utc(other.start_time)

    __hash__ = None  # type: ignore[assignment]  # parameter_defaults is a mutable dict


def _labels(labels: Iterable[str] | None) -> frozenset[str]:
    if labels is None:
        return frozenset()
    if isinstance(labels, str):
        raise TypeError(f"labels must be an iterable of strings, not the string {labels!r}")
    out = frozenset(labels)
    bad = [x for x in out if not isinstance(x, str)]
    if bad:
        raise TypeError(f"labels must be strings, got {bad!r}")
    return out


class ScheduleClock(abc.ABC):
    """Base of the clocks: an (often endless) source of `ClockEvent`s.

    Subclass it and implement `events` for a clock of your own.

    Args:
        start_date: No event before this time (naive datetimes are taken to be UTC).
        end_date: No event after this time (naive: UTC).
        parameter_defaults: Parameter values for the runs of this clock's events.
        labels: Labels of those runs.

    Raises:
        ValueError: If ``end_date`` is before ``start_date``.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        self.start_date = None if start_date is None else aware(start_date, "start_date")
        self.end_date = None if end_date is None else aware(end_date, "end_date")
        if self.start_date is not None and self.end_date is not None and utc(self.end_date) < utc(self.start_date):
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        self.parameter_defaults: dict[str, Any] = dict(parameter_defaults or {})
        self.labels = _labels(labels)

    @abc.abstractmethod
    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Yield the clock's events in time order, strictly after ``after``.

        Args:
            after: Only events later than this (default: now; naive: UTC).

        Returns:
            An iterator of events, endless unless the clock has an end.
        """

    def _event(self, start_time: datetime) -> ClockEvent:
        return ClockEvent(start_time, self.parameter_defaults, self.labels)

    def _bounds(self, after: datetime | None) -> tuple[datetime, datetime | None]:
        """The UTC instant events must be later than, and the UTC end (inclusive) if any."""
        low = utc(datetime.now(UTC) if after is None else aware(after, "after"))
        if self.start_date is not None:
            low = max(low, utc(self.start_date) - timedelta(microseconds=1))
        return low, None if self.end_date is None else utc(self.end_date)


@final
class IntervalClock(ScheduleClock):
    """Events every ``interval``, counted from ``start_date``.

    Without a ``start_date`` the count starts at 2019-01-01 00:00 UTC (so a 1-hour clock fires on
    the hour). An interval of whole days keeps the wall-clock time of ``start_date`` in its time
    zone across DST changes (daily at 09:00 stays 09:00; a time that does not exist on a spring
    change moves past the gap); shorter or uneven intervals are exact elapsed time. Events carry
    ``start_date``'s time zone.

    Args:
        interval: Time between events: a `timedelta` or a number of seconds, more than zero.
        start_date: The first event, and the origin of the count (naive: UTC).
        end_date: No event after this time (naive: UTC).
        parameter_defaults: Parameter values for the runs of this clock's events.
        labels: Labels of those runs.

    Raises:
        ValueError: If ``interval`` is not positive.
        TypeError: If ``interval`` is neither a timedelta nor a number.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        interval: timedelta | float,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (timedelta, int, float)):
            raise TypeError(f"interval must be a timedelta or a number of seconds, got {interval!r}")
        if not isinstance(interval, timedelta):
            interval = timedelta(seconds=interval)
        if interval <= timedelta(0):
            raise ValueError(f"IntervalClock needs a positive interval, got {interval!r}")
        super().__init__(start_date, end_date, parameter_defaults, labels)
        self.interval = interval

    def __repr__(self) -> str:
        return f"IntervalClock({self.interval!r}, start_date={self.start_date!r})"

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Yield the clock's events in time order, strictly after ``after``.

        Args:
            after: Only events later than this (default: now; naive: UTC).

        Returns:
            An endless iterator of events, unless the clock has an ``end_date``.
        """
        origin = self.start_date or _INTERVAL_ORIGIN
        low, end = self._bounds(after)
        # jump close to ``low``; one step back covers DST shifts of wall-clock (whole-day) steps
        k = max(0, (low - utc(origin)) // self.interval - 1)
        while True:
            when = add_wall(origin, self.interval * k)
            k += 1
            at = utc(when)
            if at <= low:
                continue
            if end is not None and at > end:
                return
            yield self._event(when)


def _zone(tz: str | tzinfo) -> tzinfo:
    if isinstance(tz, tzinfo):
        return tz
    if not isinstance(tz, str):
        raise TypeError(f"tz must be a time zone name or a tzinfo, got {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"Unknown time zone {tz!r}") from exc


@final
class CronClock(ScheduleClock):
    """Events on a cron schedule, in a time zone, computed with `cronsim`_.

    Cron fields are read as wall-clock time in ``tz``, with Debian cron's DST rules: a job at a
    fixed time such as ``30 2 * * *`` in Europe/Berlin runs once on the autumn change (at the
    first 02:30) and, on the spring change when 02:30 does not exist, at 03:00. Jobs with ``*``
    in the minute or hour field run in every real minute or hour. Day of month and day of week
    combine with OR, unless either starts with ``*`` (as in Debian cron).

    .. _cronsim: https://github.com/cuu508/cronsim

    Args:
        cron: A cron expression of 5 fields (minute hour day-of-month month day-of-week) or 6 (with
            seconds first); ``L``, ``W``, ``#`` and names like ``MON`` work.
        start_date: No event before this time (naive: UTC).
        end_date: No event after this time (naive: UTC).
        parameter_defaults: Parameter values for the runs of this clock's events.
        labels: Labels of those runs.
        tz: The time zone: a name such as ``"Europe/Berlin"`` or a `tzinfo` (default:
            ``start_date``'s zone, else UTC). Events carry it.

    Raises:
        ValueError: If the cron string is invalid (naming the bad field) or the zone is unknown.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        cron: str,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
        labels: Iterable[str] | None = None,
        tz: str | tzinfo | None = None,
    ) -> None:
        super().__init__(start_date, end_date, parameter_defaults, labels)
        if tz is None:
            tz = (self.start_date.tzinfo if self.start_date is not None else None) or UTC
        self.tz = _zone(tz)
        if not isinstance(cron, str):
            raise TypeError(f"cron must be a string, got {cron!r}")
        try:
            CronSim(cron, datetime.now(self.tz))
        except CronSimError as exc:
            raise ValueError(f"Invalid cron string {cron!r}: {exc}") from exc
        self.cron = cron

    def __repr__(self) -> str:
        return f"CronClock({self.cron!r}, tz={self.tz!s})"

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Yield the clock's events in time order, strictly after ``after``.

        Args:
            after: Only events later than this (default: now; naive: UTC).

        Returns:
            An endless iterator of events, unless the clock has an ``end_date``.
        """
        low, end = self._bounds(after)
        # cronsim works in wall time: an ``after`` inside the second pass of a repeated (autumn)
        # hour may yield a wall time already passed, so keep checking instants
        for when in CronSim(self.cron, low.astimezone(self.tz)):
            at = utc(when)
            if at <= low:
                continue
            if end is not None and at > end:
                return
            yield self._event(when)


@final
class DatesClock(ScheduleClock):
    """Events at a fixed list of dates.

    Args:
        dates: The event times (naive: UTC); duplicates fire once.
        parameter_defaults: Parameter values for the runs of this clock's events.
        labels: Labels of those runs.

    Raises:
        ValueError: If ``dates`` is empty.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        dates: Iterable[datetime],
        parameter_defaults: Mapping[str, Any] | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        unique: dict[datetime, datetime] = {}
        for d in dates:
            d = aware(d, "each date")
            unique.setdefault(utc(d), d)
        if not unique:
            raise ValueError("DatesClock needs at least one date")
        self.dates = [unique[k] for k in sorted(unique)]
        super().__init__(self.dates[0], self.dates[-1], parameter_defaults, labels)

    def __repr__(self) -> str:
        return f"DatesClock({len(self.dates)} dates, {self.dates[0].isoformat()}..{self.dates[-1].isoformat()})"

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Yield the clock's events in time order, strictly after ``after``.

        Args:
            after: Only events later than this (default: now; naive: UTC).

        Returns:
            An iterator of the remaining dates' events.
        """
        low, _ = self._bounds(after)
        for d in self.dates:
            if utc(d) > low:
                yield self._event(d)
