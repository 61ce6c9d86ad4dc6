"""`RunStore`: the run-history store on SQLite (through aiosqlite, in its own thread), and its write path.

This module holds the store's life cycle and everything that writes: recording and the writer
task. The reading side is in mixins: `RunQueries` (``_queries``: runs, task states, pruning,
the result cache) and `LogQueries` (``_logs``: task logs, graphs, run ids).

Recording is synchronous and cheap: a call appends one tuple to an in-memory batch, and a flow
run's engine appends to its own `Recorder` without calling the store at all. A background asyncio
task, the writer, commits batches in one transaction each (``executemany`` per table) when a
batch is full or ``flush_interval`` seconds after its first record, and drains the recorders of
runs in progress every ``flush_interval`` seconds; task states are packed into one pickled blob
per run and batch (see ``_batches``), so the event loop pays little more than the appends.

Every write goes through the writer task, so cancelling a caller of `RunStore.flush` never
interrupts a transaction. On close the writer flushes what is left and closes the connection
itself, so the data reaches the file even when the closing caller is cancelled.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio

from ..._runtime._logging import engine_logger
from ...exceptions import RunStoreError
from . import _file
from . import _schema as sql
from ._batches import LogRow, Recorder, RunRow, TaskRow, pack_by_run, pack_run_rows
from ._file import check_path, commit, connect_writer, describe_error, prepare, stopped
from ._logs import LogQueries, take
from ._queries import RunQueries
from ._records import dump_json, epoch, to_iso

if TYPE_CHECKING:
    from types import ModuleType

    import aiosqlite

    from ...states import State

__all__ = ("RunStore",)

logger = engine_logger("history")

_MISSING_AIOSQLITE = "aflow.history needs aiosqlite: pip install aflow-engine[history]"


def _require_aiosqlite() -> ModuleType:
    try:
        import aiosqlite
    except ImportError as exc:
        raise ImportError(_MISSING_AIOSQLITE, name="aiosqlite") from exc
    return aiosqlite


class RunStore(RunQueries, LogQueries):
    """A run-history and result-cache store in one SQLite file.

    Use it as an async context manager, or call `open` and `aclose`::

        async with RunStore("runs.db") as store:
            store.flow_run_started(run_id, "etl", {"day": "2024-01-01"}, started_at)
            ...
            runs = await store.list_runs("etl")

    The file is in WAL mode, so several stores (in one process or several) can share it: readers
    never wait for writers, and writers wait for each other (up to 30 s) instead of failing.
    The recording methods (`flow_run_started`, `task_state`, `flow_run_finished`) only append to
    a batch and never block; the other methods are async and run SQLite in aiosqlite's thread.
    Queries first flush what this store has recorded, so they see it.

    Args:
        path: The database file; created with the schema if it does not exist.
        batch_size: Write a batch as soon as it holds this many records.
        flush_interval: Otherwise write a batch at most this many seconds after its first record.

    Raises:
        ImportError: aiosqlite is not installed (``pip install aflow-engine[history]``).
        ValueError: ``batch_size`` is below 1 or ``flush_interval`` is negative.
    """

    def __init__(self, path: str | os.PathLike[str], *, batch_size: int = 10_000, flush_interval: float = 0.2) -> None:
        self._aiosqlite = _require_aiosqlite()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if flush_interval < 0:
            raise ValueError(f"flush_interval must not be negative, not {flush_interval}")
        self._path = os.fspath(path)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._accepting = False  # True between open() and aclose(): recording is allowed
        self._conn: aiosqlite.Connection | None = None
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one user of the connection at a time
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._close_error: Exception | None = None
        self._runs: list[tuple[str, tuple[Any, ...]]] = []  # flow run starts and ends, in order
        self._tasks: list[TaskRow] = []
        self._recorders: list[Recorder] = []  # flow runs in progress, drained by the writer
        self._drained: list[tuple[str, list[RunRow]]] = []  # rows of finished runs' recorders
        self._logs: list[LogRow] = []  # task log records not in a recorder

    def __repr__(self) -> str:
        status = "open" if self._accepting else "closed"
        return f"<RunStore {self._path!r} ({status})>"

    @property
    def path(self) -> str:
        """The database file's path."""
        return self._path

    @property
    def pending(self) -> int:
        """How many records wait in memory for the writer (not yet handed to SQLite)."""
        return (
            len(self._runs)
            + len(self._tasks)
            + sum(len(r) + len(r.logs) for r in self._recorders)
            + sum(len(rows) for _, rows in self._drained)
            + len(self._logs)
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Connect, switch the file to WAL mode, create or check the schema, start the writer.

        A file that is not a run store fails here, before anything is recorded.

        Raises:
            RuntimeError: The store is already open.
            aflow.exceptions.RunStoreError: The path cannot hold a run store (a directory, a missing
                directory, not a SQLite file, a damaged or truncated one, another program's
                database, a newer schema): the message names the file and the problem.
        """
        if self._conn is not None:
            raise RuntimeError(f"{self!r} is already open")
        path = self._path
        await anyio.to_thread.run_sync(check_path, path)
        conn = self._aiosqlite.connect(path, timeout=_file.BUSY_TIMEOUT, isolation_level=None)
        try:
            await conn
        except sqlite3.Error as exc:
            await stopped(conn)
            raise await anyio.to_thread.run_sync(describe_error, path, exc) from None
        try:
            await prepare(conn, path)
            writer_conn = await anyio.to_thread.run_sync(connect_writer, path)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise await anyio.to_thread.run_sync(describe_error, path, exc) from None
            raise
        self._conn = conn
        self._close_error = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._accepting = True
        self._writer = asyncio.get_running_loop().create_task(
            self._write_loop(conn, writer_conn), name=f"aflow.history {self._path}"
        )
        self._writer.add_done_callback(self._writer_done)

    async def aclose(self) -> None:
        """Write every pending record, then close the connection. Does nothing if not open.

        The final write happens even if the caller is being cancelled: it runs in the writer
        task, and this method waits for it in a shielded cancel scope.

        Raises:
            aflow.exceptions.RunStoreError: The final write failed, after waiting for the file's
                lock up to the busy timeout (30 s); the records it held are lost. Its cause is
                SQLite's error.
        """
        writer = self._writer
        if writer is None:
            return
        self._accepting = False
        self._wake.set()
        try:
            with anyio.CancelScope(shield=True):
                await asyncio.wait([writer])
        finally:
            self._writer = None
        error: BaseException | None = self._close_error
        self._close_error = None
        if error is None and not writer.cancelled():
            error = writer.exception()  # the writer failed outside a write (closing the file...)
        if error is not None:
            unwritten = f": {self.pending} records are not written" if self.pending else ""
            raise RunStoreError(
                f"Could not write the run history to {self._path!r} (SQLite: {error}){unwritten}"
            ) from error

    # -- recording (synchronous, never blocks) -------------------------------------------------

    def flow_run_started(
        self, run_id: str, flow_name: str, parameters: Mapping[str, Any], started_at: datetime
    ) -> None:
        """Record that a flow run started (its state is ``"Running"`` until it finishes).

        Recording the same ``run_id`` again restarts its record.

        Args:
            run_id: The flow run's id.
            flow_name: The flow's name.
            parameters: The run's parameters, stored as JSON (dates as ISO text, other values as their ``repr``).
            started_at: The start time (timezone-aware, or naive meaning UTC).

        Raises:
            RuntimeError: The store is not open.
        """
        if not self._accepting:
            raise RuntimeError(f"{self!r} is not open")
        rows = self._runs
        rows.append((sql.FLOW_RUN_STARTED, (run_id, flow_name, dump_json(dict(parameters)), to_iso(started_at))))
        if len(rows) == 1:
            self._wake.set()

    def task_state(
        self,
        run_id: str,
        task_slug: str,
        task_name: str,
        map_index: int | None,
        state: State,
        at: datetime | float,
    ) -> None:
        """Record that a task run entered ``state`` (its class name and message are stored).

        Args:
            run_id: The flow run's id.
            task_slug: The task's slug.
            task_name: The task's name.
            map_index: The child's index for a mapped task's child, else None.
            state: The new state.
            at: When the task entered it: seconds since the epoch, or a datetime
                (timezone-aware, or naive meaning UTC).

        Raises:
            RuntimeError: The store is not open.
        """
        if not self._accepting:
            raise RuntimeError(f"{self!r} is not open")
        if not isinstance(at, float):
            at = epoch(at)
        self.record(run_id, task_slug, task_name, map_index, type(state).__name__, state.message, at)

    def record(
        self,
        run_id: str,
        task_slug: str,
        task_name: str,
        map_index: int | None,
        state: str,
        message: str | None,
        at: float,
    ) -> None:
        """Record a task state by name: `task_state` without its checks (the store must be open).

        Args:
            run_id: The flow run's id.
            task_slug: The task's slug.
            task_name: The task's name.
            map_index: The child's index for a mapped task's child, else None.
            state: The state's class name.
            message: The state's message.
            at: Seconds since the epoch.
        """
        rows = self._tasks
        rows.append((run_id, task_slug, task_name, map_index, state, message, at))
        n = len(rows)
        if n == 1 or n >= self._batch_size:
            self._wake.set()

    def flow_run_finished(self, run_id: str, state: State, ended_at: datetime) -> None:
        """Record a flow run's final state (its class name and message are stored).

        Args:
            run_id: The flow run's id, as given to `flow_run_started`.
            state: The final state.
            ended_at: The end time (timezone-aware, or naive meaning UTC).

        Raises:
            RuntimeError: The store is not open.
        """
        if not self._accepting:
            raise RuntimeError(f"{self!r} is not open")
        rows = self._runs
        rows.append((sql.FLOW_RUN_FINISHED, (type(state).__name__, state.message, to_iso(ended_at), run_id)))
        if len(rows) == 1:
            self._wake.set()

    def recorder(self, run_id: str, *, log_level: int = 20) -> Recorder:
        """Start recording flow run ``run_id``'s task states through a `Recorder` (the engine's path).

        The caller appends to the recorder's lists; while it is active the writer drains it every
        ``flush_interval`` seconds. Call `release` when the run ends.

        Args:
            run_id: The flow run's id.
            log_level: Task log records below this level are not kept (default INFO).

        Raises:
            RuntimeError: The store is not open.
        """
        if not self._accepting:
            raise RuntimeError(f"{self!r} is not open")
        recorder = Recorder(run_id, log_level)
        self._recorders.append(recorder)
        self._wake.set()  # the writer switches to draining on a schedule
        return recorder

    def release(self, recorder: Recorder) -> None:
        """Stop draining ``recorder``; what it still holds is written with the next batch."""
        if recorder in self._recorders:
            self._recorders.remove(recorder)
        if len(recorder):
            self._drained.append((recorder.run_id, recorder.drain()))
        if recorder.logs:
            self._logs += take(recorder.logs)

    async def flush(self) -> None:
        """Commit every record made so far; returns once they are in the file.

        Cancelling the caller does not interrupt the write, which runs in the writer task.

        Raises:
            RuntimeError: The store is not open.
            sqlite3.Error: The write failed.
        """
        if not self._accepting:
            raise RuntimeError(f"{self!r} is not open")
        if not self.pending and not self._lock.locked():
            return
        done = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(done)
        self._wake.set()
        await done

    # -- the writer task ---------------------------------------------------------------------

    async def _write_loop(self, conn: aiosqlite.Connection, writer_conn: sqlite3.Connection) -> None:
        """The writer task: waits for a reason to write, writes through ``writer_conn``, and on close closes both."""
        wake = self._wake
        try:
            while True:
                if self._accepting and not self._recorders:  # else: drain the runs on a schedule, or close
                    await wake.wait()
                    wake.clear()
                if self._accepting and not self._flush_waiters and self.pending < self._batch_size:
                    with anyio.move_on_after(self._flush_interval):
                        while self._accepting and not self._flush_waiters and self.pending < self._batch_size:
                            await wake.wait()
                            wake.clear()
                waiters, self._flush_waiters = self._flush_waiters, []
                try:
                    await self._write_pending(writer_conn)
                except Exception as exc:
                    for w in waiters:
                        if not w.done():
                            w.set_exception(exc)
                    if not self._accepting:
                        self._close_error = exc
                        return
                    if not waiters:
                        logger.warning("could not write run history to %s", self._path, exc_info=exc)
                    if self.pending:
                        wake.set()  # retry after the next interval
                    continue
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
                if not (self._accepting or self._runs or self._tasks or self._drained or self._logs):
                    # closed, and everything is written: what was recorded while that write waited
                    # for the file's lock (a run's end, typically) made the loop go round once more
                    return
        finally:
            if self._conn is conn:  # closed, or cancelled from outside: the store is closed now
                self._accepting = False
                self._conn = None
            with anyio.CancelScope(shield=True):
                await conn.close()
                await anyio.to_thread.run_sync(writer_conn.close)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        # the writer stopped (closed, or cancelled from outside): nobody will answer these
        waiters, self._flush_waiters = self._flush_waiters, []
        for w in waiters:
            if not w.done():
                w.set_exception(RuntimeError(f"{self!r}: the history writer stopped"))

    async def _write_pending(self, writer_conn: sqlite3.Connection) -> None:
        async with self._lock:  # queries wait for the write (see flush)
            runs, tasks, drained, logs = self._runs, self._tasks, self._drained, self._logs
            for r in self._recorders:
                if len(r):
                    drained.append((r.run_id, r.drain()))
                if r.logs:
                    logs += take(r.logs)
            if not (runs or tasks or drained or logs):
                return
            self._runs, self._tasks, self._drained, self._logs = [], [], [], []
            try:
                # a run's start and end stay in order (a restarted run id is started again)
                writes = [(query, [params for _, params in group]) for query, group in groupby(runs, key=itemgetter(0))]
                if tasks:
                    writes.append((sql.TASK_STATE_BATCH, pack_by_run(tasks)))
                if drained:
                    writes.append((sql.TASK_STATE_BATCH, [pack_run_rows(*d) for d in drained]))
                if logs:
                    writes.append((sql.TASK_LOG_BATCH, pack_by_run(logs)))
                # a worker thread runs the whole transaction (the caller cannot interrupt it)
                await anyio.to_thread.run_sync(commit, writer_conn, writes)
            except sqlite3.OperationalError:
                # transient (the file is locked, the disk is full...): keep the batch for a retry
                self._runs[:0] = runs
                self._tasks[:0] = tasks
                self._drained[:0] = drained
                self._logs[:0] = logs
                raise
