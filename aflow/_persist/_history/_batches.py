"""How task states wait in memory and are packed into ``task_state_batches`` rows.

Two shapes of pending state:

- rows recorded through `RunStore.task_state` / `RunStore.record`, each carrying its run id
  (``TaskRow``), packed per run in the first format: a pickled list of those tuples;
- a flow run's `Recorder`, which the engine appends to directly (no call into the store per
  state) and which the writer drains on its own schedule. Its rows (``RunRow``) carry no run id and
  may carry the start time of the attempt they end, standing for the ``Running`` state of that
  attempt: a task that starts and ends between two writes costs one row, not two. A task still
  running when the writer drains is written as its own ``Running`` row at once, so a reader of
  the file sees what is in progress. These batches are pickled as ``(2, rows)``.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, TypeVar

import anyio

from ._records import TaskStateRecord

__all__ = (
    "BATCH_SHIFT",
    "RUNNING_MESSAGE",
    "LogRow",
    "Recorder",
    "RunRow",
    "TaskRow",
    "decode",
    "pack_by_run",
    "pack_run_rows",
    "unpack_batches",
)

RUNNING_MESSAGE = "Starting task run."

# recorded through the store's methods: run_id, slug, name, map_index, state name, message, timestamp
TaskRow = tuple[str, str, str, int | None, str, str | None, float]
# recorded by a Recorder: slug, name, map_index, state name, message, timestamp, attempt start or None
RunRow = tuple[str | None, str, int | None, str, str | None, float, float | None]  # slug: set in a flow
# a task log record (packed by ``_logs``): run_id, time (seconds since the epoch), level number, slug, name,
# map_index, attempt, message
LogRow = tuple[str, float, int, str, str, int | None, int, str]

_STARTED = itemgetter(6)
_T = TypeVar("_T")
DECODE_IN_THREAD = 256 * 1024  # pickled bytes above which a query unpickles in a worker thread
_RUN_ROWS = 2  # the format tag of a Recorder's batches
BATCH_SHIFT = 32  # seq = batch id << 32 | position in the batch: recording order


class Recorder:
    """One flow run's pending task states, appended to by the engine without calling the store.

    Attributes:
        run_id: The flow run's id.
        rows: Finished transitions, in recording order.
        logs: Task log records waiting for the writer (see `LogRow`), appended to by
            the task loggers, also from worker threads: take them with ``_logs.take``.
        log_level: Task log records below this level are not kept (a task's own ``log_level``
            overrides it).
        running: Attempts in progress whose ``Running`` row is not written yet: the start time
            (seconds since the epoch) by task-run context (anything with ``task.slug``,
            ``task.name`` and ``map_index``). Ending an attempt pops its entry and puts the start
            time in the final row; `drain` turns the others into ``Running`` rows.
    """

    __slots__ = ("log_level", "logs", "rows", "run_id", "running", "timestamp")

    def __init__(self, run_id: str, log_level: int = 20) -> None:
        self.run_id = run_id
        self.rows: list[RunRow] = []
        self.running: dict[Any, float] = {}
        self.logs: list[LogRow] = []  # task log records; tasks in worker threads append too
        self.log_level = log_level  # the run's level for keeping task log records (default INFO)
        self.timestamp: Callable[[], float] = time.time  # the run's clock, for log records

    def __len__(self) -> int:
        return len(self.rows) + len(self.running)

    def drain(self) -> list[RunRow]:
        """Take every pending row: the finished ones, then a ``Running`` row per attempt in progress."""
        rows = self.rows.copy()
        self.rows.clear()
        if self.running:
            rows.extend(self.running_rows())
        return rows

    def running_rows(self) -> list[RunRow]:
        """Take the attempts in progress as ``Running`` rows, in the order they started."""
        rows: list[RunRow] = [
            (ctx.task.slug, ctx.task.name, ctx.map_index, "Running", RUNNING_MESSAGE, started, None)
            for ctx, started in self.running.items()
        ]
        self.running.clear()
        return rows


def pack_by_run(rows: Sequence[tuple[Any, ...]]) -> list[tuple[str, int, bytes]]:
    """One ``(run_id, count, pickled rows)`` batch per flow run, in recording order (rows start with their run id)."""
    if rows[0][0] == rows[-1][0] and all(row[0] == rows[0][0] for row in rows):  # the usual case
        return [(rows[0][0], len(rows), pickle.dumps(rows, 5))]
    by_run: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_run.setdefault(row[0], []).append(row)
    return [(run_id, len(group), pickle.dumps(group, 5)) for run_id, group in by_run.items()]


def pack_run_rows(run_id: str, rows: list[RunRow]) -> tuple[str, int, bytes]:
    """One batch row of a Recorder's rows (its count is the number of states they stand for)."""
    count = 2 * len(rows) - list(map(_STARTED, rows)).count(None)  # C loops: rows can be many
    return run_id, count, pickle.dumps((_RUN_ROWS, rows), 5)


def unpack_batches(run_id: str, batches: Iterable[tuple[int, bytes]]) -> list[TaskStateRecord]:
    """The task states of ``(batch id, packed states)`` rows of one run, in recording order."""
    out: list[TaskStateRecord] = []
    for batch_id, packed in batches:
        seq = batch_id << BATCH_SHIFT
        data = pickle.loads(packed)
        if isinstance(data, tuple) and data and data[0] == _RUN_ROWS:
            for slug, name, map_index, state, message, at, started in data[1]:
                if started is not None:
                    out.append(_record(seq, run_id, slug, name, map_index, "Running", RUNNING_MESSAGE, started))
                    seq += 1
                out.append(_record(seq, run_id, slug, name, map_index, state, message, at))
                seq += 1
        else:
            for _, slug, name, map_index, state, message, at in data:
                out.append(_record(seq, run_id, slug, name, map_index, state, message, at))
                seq += 1
    return out


def _record(
    seq: int, run_id: str, slug: str, name: str, map_index: int | None, state: str, message: str | None, at: float
) -> TaskStateRecord:
    return TaskStateRecord(
        seq=seq,
        run_id=run_id,
        task_slug=slug,
        task_name=name,
        map_index=map_index,
        state=state,
        message=message,
        timestamp=datetime.fromtimestamp(at, UTC),
    )


async def decode(unpack: Callable[..., _T], batches: list[tuple[int, bytes]], *args: Any) -> _T:
    """Return ``unpack(*args)`` for a query's pickled ``batches``, in a worker thread when they are big.

    A run with many states or log records is unpickled off the event loop, so a reader never stalls it.
    """
    if sum(len(packed) for _, packed in batches) > DECODE_IN_THREAD:
        return await anyio.to_thread.run_sync(unpack, *args)
    return unpack(*args)
