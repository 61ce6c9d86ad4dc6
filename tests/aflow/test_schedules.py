from __future__ import annotations

import inspect
import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

import aflow.schedules
from aflow.schedules import (
    ClockEvent,
    CronClock,
    DatesClock,
    IntervalClock,
    Schedule,
    ScheduleClock,
    adjustments,
    filters,
)

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def instants(dts: list[datetime]) -> list[datetime]:
    return [d.astimezone(UTC) for d in dts]


def on_day(dts: list[datetime], day: date) -> list[datetime]:
    return [d for d in dts if d.date() == day]


# -- public module --------------------------------------------------------------------------------


def test_public_module_follows_the_conventions() -> None:
    assert list(aflow.schedules.__all__) == sorted(aflow.schedules.__all__)
    for name in aflow.schedules.__all__:
        obj = getattr(aflow.schedules, name)
        assert obj.__doc__, name
        if isinstance(obj, type):
            assert obj.__module__ == "aflow.schedules"
    for module in (filters, adjustments):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                assert obj.__doc__, name
                assert "Args:" in obj.__doc__, name


def test_the_submodules_import_on_their_own_as_in_prefect_1() -> None:
    import importlib

    from aflow.schedules.adjustments import next_weekday
    from aflow.schedules.clocks import CronClock as SubCronClock
    from aflow.schedules.filters import is_weekday

    # the same objects as the package gives: `from aflow.schedules import ...` is unchanged
    assert is_weekday is filters.is_weekday
    assert next_weekday is adjustments.next_weekday
    assert SubCronClock is CronClock
    for name in ("clocks", "filters", "adjustments"):
        module = importlib.import_module(f"aflow.schedules.{name}")
        assert module is getattr(aflow.schedules, name)
        assert module.__doc__
        assert list(module.__all__) == sorted(module.__all__)
        for public in module.__all__:
            assert hasattr(module, public), f"aflow.schedules.{name}.{public}"
    # and they work: 2024-01-06 is a Saturday, moved to Monday
    assert is_weekday(T0)
    assert next_weekday(utc(2024, 1, 6, 9)) == utc(2024, 1, 8, 9)


# -- ClockEvent -----------------------------------------------------------------------------------


def test_clock_event_compares_by_instant_across_time_zones() -> None:
    berlin = ClockEvent(datetime(2024, 6, 1, 12, tzinfo=BERLIN))
    utc_event = ClockEvent(utc(2024, 6, 1, 10))
    assert berlin == utc_event
    assert berlin == utc(2024, 6, 1, 10)
    assert ClockEvent(utc(2024, 6, 1, 9)) < berlin
    assert berlin < utc(2024, 6, 1, 11)
    assert berlin >= utc_event


def test_clock_event_equality_includes_parameters_and_labels() -> None:
    a = ClockEvent(T0, {"x": 1}, ["a"])
    assert a == ClockEvent(T0, {"x": 1}, ["a"])
    assert a != ClockEvent(T0, {"x": 2}, ["a"])
    assert a != ClockEvent(T0, {"x": 1}, ["b"])


def test_clock_event_naive_start_time_is_utc_and_repr_shows_it() -> None:
    event = ClockEvent(datetime(2024, 1, 1, 5), {"x": 1}, ["b", "a"])
    assert event.start_time == utc(2024, 1, 1, 5)
    assert event.start_time.tzinfo is UTC
    assert event.labels == frozenset({"a", "b"})
    assert repr(event) == "ClockEvent(2024-01-01T05:00:00+00:00, parameter_defaults={'x': 1}, labels=['a', 'b'])"


def test_clock_event_rejects_a_string_as_labels() -> None:
    with pytest.raises(TypeError, match="labels"):
        ClockEvent(T0, labels="ab")


# -- IntervalClock --------------------------------------------------------------------------------


def test_interval_clock_counts_from_start_date_strictly_after() -> None:
    clock = IntervalClock(timedelta(minutes=10), start_date=utc(2024, 1, 1, 0, 5))
    s = Schedule([clock])
    assert s.next(3, after=utc(2024, 1, 1, 1, 5)) == [
        utc(2024, 1, 1, 1, 15),
        utc(2024, 1, 1, 1, 25),
        utc(2024, 1, 1, 1, 35),
    ]
    # before the start, the first event is the start itself
    assert s.next(2, after=utc(2023, 1, 1)) == [utc(2024, 1, 1, 0, 5), utc(2024, 1, 1, 0, 15)]


def test_interval_clock_without_start_counts_from_2019() -> None:
    s = Schedule([IntervalClock(timedelta(hours=1))])
    assert s.next(2, after=utc(2024, 5, 5, 7, 30)) == [utc(2024, 5, 5, 8), utc(2024, 5, 5, 9)]


def test_interval_clock_accepts_seconds_and_stops_at_end_date() -> None:
    clock = IntervalClock(1800, start_date=T0, end_date=utc(2024, 1, 1, 1, 30))
    assert clock.interval == timedelta(minutes=30)
    assert Schedule([clock]).next(10, after=T0 - timedelta(seconds=1)) == [
        T0,
        utc(2024, 1, 1, 0, 30),
        utc(2024, 1, 1, 1),
        utc(2024, 1, 1, 1, 30),
    ]


def test_interval_clock_events_carry_defaults_and_labels() -> None:
    clock = IntervalClock(timedelta(days=1), start_date=T0, parameter_defaults={"x": 1}, labels=["prod"])
    (event,) = clock_events(clock, 1, after=T0)
    assert event.start_time == utc(2024, 1, 2)
    assert event.parameter_defaults == {"x": 1}
    assert event.labels == frozenset({"prod"})


def clock_events(clock: ScheduleClock, n: int, after: datetime) -> list[ClockEvent]:
    out = []
    for e in clock.events(after):
        out.append(e)
        if len(out) == n:
            break
    return out


def test_interval_clock_naive_dates_are_utc() -> None:
    clock = IntervalClock(timedelta(hours=1), start_date=datetime(2024, 1, 1))
    assert clock.start_date == T0
    assert Schedule([clock]).next(1, after=datetime(2024, 1, 1, 0, 30)) == [utc(2024, 1, 1, 1)]


@pytest.mark.parametrize("interval", [timedelta(0), timedelta(seconds=-1), 0, -5.0])
def test_interval_clock_rejects_non_positive_intervals(interval: timedelta | float) -> None:
    with pytest.raises(ValueError, match="positive interval"):
        IntervalClock(interval)


@pytest.mark.parametrize("interval", ["1h", None, True])
def test_interval_clock_rejects_non_intervals(interval: object) -> None:
    with pytest.raises(TypeError, match="interval must be"):
        IntervalClock(interval)  # type: ignore[arg-type]


def test_clock_rejects_end_before_start() -> None:
    with pytest.raises(ValueError, match="before start_date"):
        IntervalClock(60, start_date=utc(2024, 2, 1), end_date=T0)


def test_daily_interval_keeps_wall_time_across_dst() -> None:
    clock = IntervalClock(timedelta(days=1), start_date=datetime(2024, 10, 25, 9, tzinfo=BERLIN))
    times = Schedule([clock]).next(4, after=datetime(2024, 10, 24, tzinfo=BERLIN))
    assert [t.hour for t in times] == [9, 9, 9, 9]
    assert [t.day for t in times] == [25, 26, 27, 28]
    # the autumn day is 25 hours long
    assert times[2].astimezone(UTC) - times[1].astimezone(UTC) == timedelta(hours=25)
    assert all(t.tzinfo is BERLIN for t in times)


def test_daily_interval_on_a_spring_gap_moves_past_it() -> None:
    clock = IntervalClock(timedelta(days=1), start_date=datetime(2024, 3, 30, 2, 30, tzinfo=BERLIN))
    times = Schedule([clock]).next(3, after=datetime(2024, 3, 29, tzinfo=BERLIN))
    assert [(t.day, t.hour, t.minute) for t in times] == [(30, 2, 30), (31, 3, 30), (1, 2, 30)]


def test_hourly_interval_is_elapsed_time_across_dst() -> None:
    clock = IntervalClock(timedelta(hours=1), start_date=datetime(2024, 10, 27, 0, tzinfo=BERLIN))
    times = Schedule([clock]).next(5, after=datetime(2024, 10, 26, 23, tzinfo=BERLIN))
    steps = {b - a for a, b in zip(instants(times), instants(times)[1:], strict=False)}
    assert steps == {timedelta(hours=1)}
    # wall clock: 00:00, 01:00, 02:00 (summer), 02:00 (winter), 03:00
    assert [t.hour for t in times] == [0, 1, 2, 2, 3]


# -- CronClock ------------------------------------------------------------------------------------


def test_cron_clock_basic_and_utc_default() -> None:
    clock = CronClock("15 */6 * * *")
    assert clock.tz is UTC
    assert Schedule([clock]).next(3, after=T0) == [
        utc(2024, 1, 1, 0, 15),
        utc(2024, 1, 1, 6, 15),
        utc(2024, 1, 1, 12, 15),
    ]


def test_cron_in_berlin_fires_once_on_the_autumn_change() -> None:
    s = Schedule([CronClock("30 2 * * *", tz="Europe/Berlin")])
    times = s.next(5, after=datetime(2024, 10, 25, tzinfo=BERLIN))
    assert [t.date() for t in times] == [date(2024, 10, d) for d in (25, 26, 27, 28, 29)]
    (change,) = on_day(times, date(2024, 10, 27))
    assert (change.hour, change.minute) == (2, 30)
    assert change.utcoffset() == timedelta(hours=2)  # the first 02:30, still summer time
    assert instants([change]) == [utc(2024, 10, 27, 0, 30)]


def test_cron_in_berlin_on_the_spring_change_runs_once_after_the_gap() -> None:
    s = Schedule([CronClock("30 2 * * *", tz="Europe/Berlin")])
    times = s.next(4, after=datetime(2024, 3, 29, tzinfo=BERLIN))
    assert [t.date() for t in times] == [date(2024, 3, 29), date(2024, 3, 30), date(2024, 3, 31), date(2024, 4, 1)]
    (change,) = on_day(times, date(2024, 3, 31))
    assert (change.hour, change.minute) == (3, 0)  # 02:30 does not exist; Debian cron runs it at 03:00
    assert instants([change]) == [utc(2024, 3, 31, 1)]
    assert instants(times) == sorted(instants(times))


def test_cron_after_inside_the_repeated_hour_does_not_fire_again() -> None:
    s = Schedule([CronClock("30 2 * * *", tz="Europe/Berlin")])
    # 01:10 UTC is 02:10 in the second (winter) pass: the day's 02:30 has already run
    assert s.next(1, after=utc(2024, 10, 27, 1, 10)) == [datetime(2024, 10, 28, 2, 30, tzinfo=BERLIN)]


def test_hourly_cron_in_berlin_covers_every_real_hour_of_the_autumn_day() -> None:
    s = Schedule([CronClock("0 * * * *", tz="Europe/Berlin")])
    times = s.next(25, after=datetime(2024, 10, 26, 23, 30, tzinfo=BERLIN))
    assert len(set(instants(times))) == 25
    assert instants(times) == sorted(instants(times))
    assert all(t.date() == date(2024, 10, 27) for t in times)
    assert [t.hour for t in times].count(2) == 2


def test_cron_time_zone_defaults_to_the_start_dates() -> None:
    start = datetime(2024, 1, 1, tzinfo=BERLIN)
    clock = CronClock("0 9 * * *", start_date=start)
    assert clock.tz is BERLIN
    assert Schedule([clock]).next(1, after=utc(2023, 1, 1)) == [datetime(2024, 1, 1, 9, tzinfo=BERLIN)]


def test_cron_accepts_a_tzinfo_and_respects_start_and_end() -> None:
    plus2 = timezone(timedelta(hours=2))
    clock = CronClock("0 12 * * *", start_date=utc(2024, 1, 3), end_date=utc(2024, 1, 5, 10), tz=plus2)
    assert Schedule([clock]).next(5, after=T0) == [
        datetime(2024, 1, 3, 12, tzinfo=plus2),
        datetime(2024, 1, 4, 12, tzinfo=plus2),
        datetime(2024, 1, 5, 12, tzinfo=plus2),
    ]


def test_cron_start_date_on_an_event_is_included() -> None:
    clock = CronClock("0 12 * * *", start_date=utc(2024, 1, 3, 12))
    assert Schedule([clock]).next(1, after=T0) == [utc(2024, 1, 3, 12)]


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("61 * * * *", "Bad minute"),
        ("0 25 * * *", "Bad hour"),
        ("0 0 * 13 *", "Bad month"),
        ("* * *", "Wrong number of fields"),
        ("0 0 30 2 *", "Bad day-of-month"),
        ("every day", "Wrong number of fields"),
    ],
)
def test_cron_clock_rejects_invalid_cron_strings(cron: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"Invalid cron string '{cron}': {problem}")):
        CronClock(cron)


def test_cron_clock_rejects_unknown_zones_and_non_strings() -> None:
    with pytest.raises(ValueError, match="Unknown time zone 'Mars/Olympus'"):
        CronClock("* * * * *", tz="Mars/Olympus")
    with pytest.raises(TypeError, match="cron must be a string"):
        CronClock(5)  # type: ignore[arg-type]


# -- DatesClock -----------------------------------------------------------------------------------


def test_dates_clock_sorts_dedupes_and_skips_the_past() -> None:
    clock = DatesClock(
        [utc(2024, 3, 1), datetime(2024, 1, 1, 1, tzinfo=BERLIN), utc(2024, 2, 1), datetime(2024, 2, 1)],
        parameter_defaults={"x": 1},
    )
    assert clock.start_date == datetime(2024, 1, 1, 1, tzinfo=BERLIN)
    assert clock.end_date == utc(2024, 3, 1)
    events = Schedule([clock]).next(10, after=T0 - timedelta(hours=2), return_events=True)
    assert [e.start_time for e in events] == [T0, utc(2024, 2, 1), utc(2024, 3, 1)]
    assert all(e.parameter_defaults == {"x": 1} for e in events)
    assert Schedule([clock]).next(10, after=utc(2024, 2, 1)) == [utc(2024, 3, 1)]


def test_dates_clock_needs_dates() -> None:
    with pytest.raises(ValueError, match="at least one date"):
        DatesClock([])
    with pytest.raises(TypeError, match="must be a datetime"):
        DatesClock(["2024-01-01"])  # type: ignore[list-item]


# -- Schedule -------------------------------------------------------------------------------------


def test_schedule_merges_clocks_in_time_order_without_duplicates() -> None:
    s = Schedule(
        [
            IntervalClock(timedelta(hours=2), start_date=T0),
            IntervalClock(timedelta(hours=3), start_date=T0),
            IntervalClock(timedelta(hours=2), start_date=T0),  # the same events again
        ]
    )
    assert [t.hour for t in s.next(6, after=T0)] == [2, 3, 4, 6, 8, 9]


def test_schedule_keeps_simultaneous_events_with_different_defaults() -> None:
    s = Schedule(
        [
            IntervalClock(timedelta(hours=1), start_date=T0, parameter_defaults={"x": 1}),
            IntervalClock(timedelta(hours=2), start_date=T0, parameter_defaults={"x": 2}),
            IntervalClock(timedelta(hours=1), start_date=T0, parameter_defaults={"x": 1}),
        ]
    )
    events = s.next(4, after=T0 + timedelta(minutes=30), return_events=True)
    assert [(e.start_time.hour, e.parameter_defaults["x"]) for e in events] == [(1, 1), (2, 1), (2, 2), (3, 1)]


def test_schedule_merges_time_zones_by_instant() -> None:
    s = Schedule([CronClock("0 9 * * *", tz="Europe/Berlin"), CronClock("30 8 * * *")])
    times = s.next(2, after=T0)
    assert times == [datetime(2024, 1, 1, 9, tzinfo=BERLIN), utc(2024, 1, 1, 8, 30)]  # 08:00 UTC, then 08:30


def test_schedule_next_default_after_is_now() -> None:
    (t,) = Schedule([IntervalClock(timedelta(hours=1))]).next(1)
    now = datetime.now(UTC)
    assert now < t <= now + timedelta(hours=1)


def test_schedule_next_zero_and_negative() -> None:
    s = Schedule([IntervalClock(60)])
    assert s.next(0, after=T0) == []
    with pytest.raises(ValueError, match="non-negative"):
        s.next(-1, after=T0)


def test_schedule_rejects_bad_clocks_and_filters() -> None:
    with pytest.raises(ValueError, match="at least one clock"):
        Schedule([])
    with pytest.raises(TypeError, match="wrap the clock in a list"):
        Schedule(IntervalClock(60))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ScheduleClock"):
        Schedule(["0 * * * *"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="filters must be callables"):
        Schedule([IntervalClock(60)], filters=["weekday"])  # type: ignore[list-item]


def test_schedule_start_and_end_dates() -> None:
    a = IntervalClock(60, start_date=utc(2024, 2, 1), end_date=utc(2024, 3, 1))
    b = DatesClock([utc(2024, 1, 15), utc(2024, 4, 1)])
    assert Schedule([a, b]).start_date == utc(2024, 1, 15)
    assert Schedule([a, b]).end_date == utc(2024, 4, 1)
    assert Schedule([a, IntervalClock(60)]).start_date is None
    assert Schedule([a, IntervalClock(60)]).end_date is None


def test_schedule_ends_when_every_clock_ends() -> None:
    s = Schedule([DatesClock([utc(2024, 1, 2)]), DatesClock([utc(2024, 1, 3)])])
    assert s.next(5, after=T0) == [utc(2024, 1, 2), utc(2024, 1, 3)]
    assert list(s.events(after=T0)) == [ClockEvent(utc(2024, 1, 2)), ClockEvent(utc(2024, 1, 3))]


def test_schedule_filters_or_filters_and_not_filters() -> None:
    daily = IntervalClock(timedelta(days=1), start_date=T0)
    # January 2024: Mon 1st; keep weekdays, except Wednesdays, unless it's the 10th
    s = Schedule(
        [daily],
        filters=[filters.is_weekday],
        or_filters=[lambda d: d.weekday() != 2, filters.on_date(1, 10)],
        not_filters=[filters.on_date(1, 5)],
    )
    days = [t.day for t in s.next(7, after=T0 - timedelta(seconds=1))]
    assert days == [1, 2, 4, 8, 9, 10, 11]


def test_schedule_gives_up_after_10000_candidates() -> None:
    seen: list[datetime] = []

    def never(dt: datetime) -> bool:
        seen.append(dt)
        return False

    s = Schedule([IntervalClock(60, start_date=T0)], filters=[never])
    assert s.next(1, after=T0) == []
    assert len(seen) == 10_000
    seen.clear()
    assert list(s.events(after=T0)) == []
    assert len(seen) == 10_000


def test_schedule_candidate_limit_counts_filtered_out_events_too() -> None:
    s = Schedule([IntervalClock(60, start_date=T0)], filters=[lambda d: d.minute == 0])
    # one kept event per 60 candidates: 10,000 candidates hold 166 kept ones
    assert len(s.next(1000, after=T0)) == 166


def test_schedule_events_continue_past_10000_when_some_are_kept() -> None:
    s = Schedule([IntervalClock(60, start_date=T0)], filters=[lambda d: d.minute == 0])
    events = s.events(after=T0)
    got = [next(events) for _ in range(200)]
    assert got[-1].start_time == T0 + timedelta(hours=200)


def test_schedule_adjustments_apply_in_order_after_filters() -> None:
    s = Schedule(
        [IntervalClock(timedelta(days=1), start_date=utc(2024, 1, 5, 9), parameter_defaults={"x": 1})],
        filters=[lambda d: d.day in (5, 6)],  # Friday, Saturday
        adjustments=[adjustments.next_weekday, adjustments.add(timedelta(minutes=30))],
    )
    events = s.next(2, after=T0, return_events=True)
    assert [e.start_time for e in events] == [utc(2024, 1, 5, 9, 30), utc(2024, 1, 8, 9, 30)]
    assert all(e.parameter_defaults == {"x": 1} for e in events)


# -- filters --------------------------------------------------------------------------------------


def test_weekday_weekend_filters() -> None:
    week = [T0 + timedelta(days=i) for i in range(7)]  # Mon..Sun
    assert [filters.is_weekday(d) for d in week] == [True] * 5 + [False] * 2
    assert [filters.is_weekend(d) for d in week] == [False] * 5 + [True] * 2


def test_weekday_filters_read_the_events_own_zone() -> None:
    # Friday 23:30 UTC is Saturday in Berlin
    fri = utc(2024, 1, 5, 23, 30)
    assert filters.is_weekday(fri)
    assert filters.is_weekend(fri.astimezone(BERLIN))


def test_month_start_and_end_filters() -> None:
    assert filters.is_month_start(utc(2024, 2, 1, 12))
    assert not filters.is_month_start(utc(2024, 2, 2))
    assert filters.is_month_end(utc(2024, 2, 29))  # leap year
    assert not filters.is_month_end(utc(2023, 2, 28, 0) - timedelta(days=1))
    assert filters.is_month_end(utc(2023, 2, 28))
    assert filters.is_month_end(utc(2024, 12, 31, 23, 59))


def test_at_time_filter() -> None:
    f = filters.at_time(time(9, 30))
    assert f(utc(2024, 1, 1, 9, 30))
    assert not f(utc(2024, 1, 1, 9, 31))
    assert f(datetime(2024, 1, 1, 9, 30, tzinfo=BERLIN))  # wall time of the event's zone
    assert filters.at_time(time(9, 30, tzinfo=UTC))(datetime(2024, 6, 1, 9, 30, tzinfo=BERLIN))


def test_between_times_filter_inclusive_and_wrapping() -> None:
    day = filters.between_times(time(9), time(17))
    assert day(utc(2024, 1, 1, 9))
    assert day(utc(2024, 1, 1, 17))
    assert day(utc(2024, 1, 1, 12))
    assert not day(utc(2024, 1, 1, 17, 0, 1))
    assert not day(utc(2024, 1, 1, 8, 59))
    night = filters.between_times(time(22), time(6))
    assert night(utc(2024, 1, 1, 23))
    assert night(utc(2024, 1, 1, 2))
    assert night(utc(2024, 1, 1, 6))
    assert not night(utc(2024, 1, 1, 12))


def test_between_dates_filter_inclusive_and_wrapping() -> None:
    spring = filters.between_dates(3, 1, 5, 31)
    assert spring(utc(2024, 3, 1))
    assert spring(utc(2021, 5, 31, 23))
    assert not spring(utc(2024, 6, 1))
    winter = filters.between_dates(12, 1, 1, 31)
    assert winter(utc(2024, 12, 25))
    assert winter(utc(2025, 1, 31))
    assert not winter(utc(2025, 2, 1))
    assert not winter(utc(2024, 11, 30))


def test_on_date_and_on_datetime_filters() -> None:
    xmas = filters.on_date(12, 25)
    assert xmas(utc(2030, 12, 25, 8))
    assert not xmas(utc(2030, 12, 24))
    leap = filters.on_date(2, 29)
    assert leap(utc(2024, 2, 29))
    exact = filters.on_datetime(datetime(2024, 1, 1, 12))  # naive: UTC
    assert exact(utc(2024, 1, 1, 12))
    assert exact(datetime(2024, 1, 1, 13, tzinfo=BERLIN))
    assert not exact(utc(2024, 1, 1, 12, 0, 1))


@pytest.mark.parametrize(("month", "day"), [(13, 1), (0, 1), (2, 30), (4, 31), (1, 0)])
def test_date_filters_reject_impossible_dates(month: int, day: int) -> None:
    with pytest.raises(ValueError, match=r"month|day"):
        filters.on_date(month, day)
    with pytest.raises(ValueError, match=r"month|day"):
        filters.between_dates(1, 1, month, day)


def test_time_filters_reject_non_times() -> None:
    with pytest.raises(TypeError, match=r"datetime\.time"):
        filters.at_time("09:00")  # type: ignore[arg-type]


# -- adjustments ----------------------------------------------------------------------------------


def test_add_adjustment_days_keep_wall_time_and_hours_are_elapsed() -> None:
    before_change = datetime(2024, 10, 26, 9, tzinfo=BERLIN)
    assert adjustments.add(timedelta(days=1))(before_change) == datetime(2024, 10, 27, 9, tzinfo=BERLIN)
    evening = datetime(2024, 10, 26, 21, tzinfo=BERLIN)
    moved = adjustments.add(timedelta(hours=12))(evening)  # the night is 13 hours long
    assert moved.tzinfo is BERLIN
    assert (moved.day, moved.hour) == (27, 8)
    assert adjustments.add(timedelta(minutes=-15))(utc(2024, 1, 1, 9)) == utc(2024, 1, 1, 8, 45)
    with pytest.raises(TypeError, match="timedelta"):
        adjustments.add(60)  # type: ignore[arg-type]


def test_next_weekday_adjustment() -> None:
    sat = utc(2024, 1, 6, 14, 15)
    assert adjustments.next_weekday(sat) == utc(2024, 1, 8, 14, 15)
    assert adjustments.next_weekday(utc(2024, 1, 7, 1)) == utc(2024, 1, 8, 1)
    wed = utc(2024, 1, 3, 10)
    assert adjustments.next_weekday(wed) == wed


# -- a custom clock -------------------------------------------------------------------------------


def test_a_custom_clock_subclass_works_in_a_schedule() -> None:
    class EveryMonday(ScheduleClock):
        def events(self, after: datetime | None = None):
            assert after is not None
            day = after.date() + timedelta(days=1)
            while True:
                if day.weekday() == 0:
                    yield self._event(datetime(day.year, day.month, day.day, tzinfo=UTC))
                day += timedelta(days=1)

    s = Schedule([EveryMonday(labels=["m"])], not_filters=[filters.on_date(1, 8)])
    events = s.next(2, after=T0, return_events=True)
    assert [e.start_time for e in events] == [utc(2024, 1, 15), utc(2024, 1, 22)]
    assert events[0].labels == frozenset({"m"})
