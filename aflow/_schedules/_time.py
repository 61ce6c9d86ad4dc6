"""Timezone helpers shared by the schedule modules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

__all__ = ("add_wall", "aware", "normalize", "utc")


def aware(value: datetime, what: str) -> datetime:
    """Return ``value`` as a timezone-aware datetime (a naive one is taken to be UTC).

    Raises:
        TypeError: If ``value`` is not a datetime.
    """
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return value.replace(tzinfo=UTC)
    return value


def utc(value: datetime) -> datetime:
    """The same instant in UTC: the only safe way to compare datetimes that may sit in a DST fold."""
    return value.astimezone(UTC)


def normalize(value: datetime, zone: tzinfo | None) -> datetime:
    """Round-trip through UTC so a wall time that does not exist (a spring gap) becomes a real one."""
    return value.astimezone(UTC).astimezone(zone)


def add_wall(value: datetime, delta: timedelta) -> datetime:
    """Add ``delta``: whole days in wall-clock time of ``value``'s zone, anything else as elapsed time.

    09:00 plus one day stays 09:00 across a DST change; 09:00 plus 24 hours may not.
    """
    if delta % timedelta(days=1) == timedelta(0):
        # aware + timedelta is wall-clock arithmetic in Python; fold=0 picks the first of two
        # repeated wall times, and normalize() moves a time inside a spring gap past the gap
        return normalize((value + delta).replace(fold=0), value.tzinfo)
    return (utc(value) + delta).astimezone(value.tzinfo)
