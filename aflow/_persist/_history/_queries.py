"""`RunStore`'s reading side: runs and task states read back, pruning, and the result cache.

`RunQueries` is a mixin of `RunStore` (in ``_store``, with the write path: recording and the
writer task). Every method here is async and runs SQLite in aiosqlite's thread; the queries of
runs and task states first flush what the store has recorded, so they see it. Task logs and
graphs are read by `LogQueries` (``_logs``).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from . import _schema as sql
from ._batches import Recorder, decode, unpack_batches
from ._records import CacheEntry, FlowRunRecord, TaskStateRecord, dump_json, from_iso, to_iso

if TYPE_CHECKING:
    import aiosqlite

__all__ = ("RunQueries",)

_R = TypeVar("_R")


def _flow_run(row: tuple[Any, ...]) -> FlowRunRecord:
    run_id, flow_name, parameters, started_at, ended_at, state, message = row
    return FlowRunRecord(
        run_id=run_id,
        flow_name=flow_name,
        parameters=json.loads(parameters),
        started_at=from_iso(started_at),
        ended_at=None if ended_at is None else from_iso(ended_at),
        state=state,
        message=message,
    )


def _cache_entry(row: tuple[Any, ...]) -> CacheEntry:
    cache_key, inputs_hash, parameters, value, expires_at, created_at = row
    return CacheEntry(
        cache_key=cache_key,
        inputs_hash=inputs_hash,
        parameters=None if parameters is None else json.loads(parameters),
        value=bytes(value),
        expires_at=None if expires_at is None else from_iso(expires_at),
        created_at=from_iso(created_at),
    )


class RunQueries:
    """`RunStore`'s queries of runs and task states, pruning and result cache (a mixin)."""

    if TYPE_CHECKING:
        _accepting: bool
        _conn: aiosqlite.Connection | None
        _lock: asyncio.Lock
        _recorders: list[Recorder]

        @property
        def pending(self) -> int: ...

        async def flush(self) -> None: ...

    # -- cache ---------------------------------------------------------------------------------

    async def cache_put(
        self,
        cache_key: str,
        inputs_hash: str | None,
        parameters: Mapping[str, Any] | None,
        value: bytes,
        expires_at: datetime | None,
        *,
        now: datetime | None = None,
    ) -> None:
        """Store a cached value; older entries under the same key are kept until they expire.

        Args:
            cache_key: The key to store it under.
            inputs_hash: A hash of the task's inputs, or None.
            parameters: The flow parameters (stored as JSON), or None.
            value: The serialized value.
            expires_at: When the entry expires, or None for never.
            now: The current time (the flow run's clock); entries of the key expired by then are
                deleted. Defaults to the system clock.
        """
        params = None if parameters is None else dump_json(dict(parameters))
        expires = None if expires_at is None else to_iso(expires_at)
        stamp = to_iso(now if now is not None else datetime.now(UTC))
        row = (cache_key, inputs_hash, params, value, expires, stamp)
        async with self._lock:
            conn = self._connection()
            await conn.execute(sql.CACHE_PRUNE, (cache_key, stamp))  # entries expired by now go
            await conn.execute(sql.CACHE_PUT, row)

    async def cache_get(self, cache_key: str) -> list[CacheEntry]:
        """Return the entries stored under ``cache_key``, newest first.

        Expired entries are included (see `CacheEntry.is_expired`): cache validators decide.

        Args:
            cache_key: The key to look up.
        """
        return await self._query(_cache_entry, sql.CACHE_GET, (cache_key,), flush=False)

    async def cache_clear(self, cache_key: str | None = None) -> None:
        """Delete the entries under ``cache_key``, or every entry if it is None.

        Args:
            cache_key: The key to clear, or None for the whole cache.
        """
        async with self._lock:
            if cache_key is None:
                await self._connection().execute(sql.CACHE_CLEAR_ALL)
            else:
                await self._connection().execute(sql.CACHE_CLEAR_KEY, (cache_key,))

    # -- queries -------------------------------------------------------------------------------

    async def list_runs(
        self, flow_name: str | None = None, limit: int = 50, *, state: str | None = None, offset: int = 0
    ) -> list[FlowRunRecord]:
        """Return the latest flow runs, newest (by start time) first.

        Args:
            flow_name: Only runs of this flow; None for every flow.
            limit: At most this many runs.
            state: Only runs in this state (``"Running"``, ``"Success"``, ``"Failed"``...).
            offset: Leave out this many of the newest runs first (for pages of ``limit`` runs).
        """
        if state is not None or offset:
            return await self._list_runs(flow_name, limit, state, offset)
        if flow_name is None:
            return await self._query(_flow_run, sql.LIST_RUNS, (limit,))
        return await self._query(_flow_run, sql.LIST_RUNS_BY_FLOW, (flow_name, limit))

    async def get_run(self, run_id: str) -> FlowRunRecord | None:
        """Return the flow run ``run_id``, or None if it was never recorded.

        Args:
            run_id: The flow run's id.
        """
        runs = await self._query(_flow_run, sql.GET_RUN, (run_id,))
        return runs[0] if runs else None

    async def task_history(self, run_id: str) -> list[TaskStateRecord]:
        """Return every task state recorded for flow run ``run_id``, in recorded order.

        An engine run records a task attempt's ``Running`` state with the state that ends it
        (with its own timestamp), unless the attempt was still running when the store wrote:
        then ``Running`` is written at once, so a reader sees what is in progress.

        Args:
            run_id: The flow run's id.
        """
        await self.flush()
        async with self._lock:
            rows = await self._connection().execute_fetchall(sql.TASK_HISTORY, (run_id,))
        batches = [(int(r[0]), bytes(r[1])) for r in rows]
        return await decode(unpack_batches, batches, run_id, batches)

    async def latest_task_states(self, run_id: str) -> dict[tuple[str, int | None], TaskStateRecord]:
        """Return the last state of each task run of flow run ``run_id``.

        Args:
            run_id: The flow run's id.

        Returns:
            The last record per ``(task_slug, map_index)``, in the order they were recorded.
        """
        latest: dict[tuple[str, int | None], TaskStateRecord] = {}
        for record in await self.task_history(run_id):
            key = (record.task_slug, record.map_index)
            latest.pop(key, None)  # re-inserted: the dict keeps the order of each last record
            latest[key] = record
        return latest

    async def prune_runs(self, before: datetime, *, flow_name: str | None = None) -> int:
        """Delete the flow runs that started before ``before``, with their task states.

        Runs this store is recording now are kept. Cache entries are not touched (an entry
        expires by itself, see `cache_put`).

        Args:
            before: Runs that started earlier go (timezone-aware, or naive meaning UTC).
            flow_name: Only runs of this flow; None for every flow.

        Returns:
            How many flow runs were deleted.
        """
        await self.flush()  # nothing of a deleted run may arrive after the delete
        active = [r.run_id for r in self._recorders]
        async with self._lock:
            conn = self._connection()
            await conn.execute("BEGIN IMMEDIATE")
            try:
                if flow_name is None:
                    await conn.execute(sql.PRUNE_PICK, (to_iso(before),))
                else:
                    await conn.execute(sql.PRUNE_PICK_FLOW, (to_iso(before), flow_name))
                if active:
                    await conn.executemany(sql.PRUNE_KEEP, [(run_id,) for run_id in active])
                await conn.execute(sql.PRUNE_BATCHES)
                await conn.execute(sql.PRUNE_LOGS)
                await conn.execute(sql.PRUNE_GRAPHS)
                cursor = await conn.execute(sql.PRUNE_RUNS)
                deleted = cursor.rowcount
                await conn.execute(sql.PRUNE_DONE)
                await conn.execute("COMMIT")
            except BaseException:
                with anyio.CancelScope(shield=True):
                    try:
                        await conn.execute("ROLLBACK")
                        await conn.execute("DROP TABLE IF EXISTS temp.prune_ids")
                    except sqlite3.Error:
                        pass
                raise
        return int(deleted)

    # -- internals -----------------------------------------------------------------------------

    def _connection(self) -> aiosqlite.Connection:
        if self._conn is None or not self._accepting:
            raise RuntimeError(f"{self!r} is not open")
        return self._conn

    async def _query(
        self, make: Callable[[Any], _R], query: str, params: tuple[Any, ...], *, flush: bool = True
    ) -> list[_R]:
        conn = self._connection()
        if flush and self.pending:
            await self.flush()
        async with self._lock:
            rows: Iterable[Any] = await conn.execute_fetchall(query, params)
        return [make(row) for row in rows]

    async def _list_runs(
        self, flow_name: str | None, limit: int, state: str | None, offset: int
    ) -> list[FlowRunRecord]:
        where: list[str] = []
        params: list[Any] = []
        if flow_name is not None:
            where.append("flow_name = ?")
            params.append(flow_name)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        query = f"SELECT {sql.FLOW_RUN_COLUMNS} FROM flow_runs"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?"
        return await self._query(_flow_run, query, (*params, limit, max(offset, 0)))
