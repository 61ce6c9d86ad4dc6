"""The frozen records `aflow.history.RunStore` returns, and the timestamp codec they share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

__all__ = (
    "AmbiguousRunId",
    "CacheEntry",
    "FlowRunRecord",
    "RunNotFound",
    "TaskLogRecord",
    "TaskStateRecord",
    "dump_json",
    "from_iso",
    "to_iso",
)


def to_iso(dt: datetime) -> str:
    """Encode ``dt`` as ISO-8601 text in UTC (naive datetimes are taken to be UTC already).

    Every stored timestamp has the same shape (``...T..:..:..ffffff+00:00``), so text order is
    time order.
    """
    tz = dt.tzinfo
    if tz is not UTC:  # the engine's clock gives UTC: that case skips the checks
        if tz is None:
            dt = dt.replace(tzinfo=UTC)
        elif dt.utcoffset():
            dt = dt.astimezone(UTC)
    return dt.isoformat(timespec="microseconds")


def epoch(at: datetime | float) -> float:
    """Seconds since the epoch of a time given as a datetime (naive meaning UTC) or as seconds."""
    if isinstance(at, datetime):
        return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        return float(at)
    raise TypeError(f"a recorded time must be a datetime or seconds since the epoch, not {at!r}")


def from_iso(text: str) -> datetime:
    """Decode a timestamp written by `to_iso` into a timezone-aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)


def _json_default(obj: object) -> str:
    if isinstance(obj, date | time):
        return obj.isoformat()
    return repr(obj)


def dump_json(value: Any) -> str:
    """Serialize ``value`` as JSON (dates and times as ISO text, other unencodable values as ``repr``)."""
    return json.dumps(value, default=_json_default)


@dataclass(frozen=True, slots=True)
class FlowRunRecord:
    """One flow run, as recorded.

    Attributes:
        run_id: The flow run id (``aflow.context.flow_run_id``).
        flow_name: The flow's name.
        parameters: The run's parameters, decoded from JSON (dates are ISO text, other values JSON cannot encode
            their ``repr``).
        started_at: When the run started (UTC).
        ended_at: When it finished (UTC), or None while it is running or if it never finished.
        state: The class name of the run's state: ``"Running"`` until it finishes, then the
            final state's (``"Success"``, ``"Failed"``...).
        message: The final state's message, if any.
    """

    run_id: str
    flow_name: str
    parameters: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None
    state: str
    message: str | None


@dataclass(frozen=True, slots=True)
class TaskStateRecord:
    """One state a task run entered.

    Attributes:
        seq: The record's position in the store (higher is later); orders a run's history.
        run_id: The flow run the task ran in.
        task_slug: The task's slug, unique in its flow.
        task_name: The task's name.
        map_index: The child's index for a mapped task's child, else None.
        state: The state's class name (``"Running"``, ``"Success"``, ``"Retrying"``...).
        message: The state's message, if any.
        timestamp: When the task entered the state (UTC).
    """

    seq: int
    run_id: str
    task_slug: str
    task_name: str
    map_index: int | None
    state: str
    message: str | None
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cached task output.

    Attributes:
        cache_key: The key the entry was stored under.
        inputs_hash: A hash of the task's inputs, for input-based validators, or None.
        parameters: The flow parameters at caching time, for parameter-based validators, or None.
        value: The cached value, serialized by the caller.
        expires_at: When the entry expires (UTC), or None if it never does.
        created_at: When the entry was stored (UTC).
    """

    cache_key: str
    inputs_hash: str | None
    parameters: dict[str, Any] | None
    value: bytes
    expires_at: datetime | None
    created_at: datetime

    def is_expired(self, now: datetime | None = None) -> bool:
        """Whether the entry has expired at ``now`` (default: the current time).

        Args:
            now: The time to check against; timezone-aware, or naive meaning UTC.
        """
        if self.expires_at is None:
            return False
        if now is None:
            now = datetime.now(UTC)
        elif now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return self.expires_at <= now


@dataclass(frozen=True, slots=True)
class TaskLogRecord:
    """One log record of a task run, as kept in the run store.

    Attributes:
        seq: The record's position in the store, increasing with each record written: a cursor
            for reading what came after it (``task_logs(run_id, after_seq=seq)``).
        run_id: The flow run the task ran in.
        time: When the record was logged (UTC).
        level: The level's name: ``"DEBUG"``, ``"INFO"``, ``"WARNING"``, ``"ERROR"`` or ``"CRITICAL"``.
        task_slug: The task's slug, unique in its flow.
        task_name: The task's name.
        map_index: The child's index for a mapped task's child, else None.
        attempt: The attempt that logged it, 1-based (``aflow.context.task_run_count``).
        message: The formatted message (with the traceback when one was logged), secrets redacted.
    """

    seq: int
    run_id: str
    time: datetime
    level: str
    task_slug: str
    task_name: str
    map_index: int | None
    attempt: int
    message: str


class RunNotFound(LookupError):
    """No flow run in the store has the given id (or an id starting with the given prefix)."""


class AmbiguousRunId(LookupError):
    """Several flow runs in the store have ids starting with the given prefix.

    Attributes:
        prefix: The prefix looked up.
        candidates: The matching run ids (the first 20, in id order).
    """

    def __init__(self, prefix: str, candidates: list[str]) -> None:
        shown = ", ".join(candidates)
        super().__init__(f"run id prefix {prefix!r} matches several runs: {shown}; give more of the id")
        self.prefix = prefix
        self.candidates = candidates
