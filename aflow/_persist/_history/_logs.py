"""Task log records and flow graphs in the run store: their row formats and `RunStore`'s queries.

A task log record waits in memory as a `LogRow` (defined in ``_batches``), in the flow run's
`Recorder` or, for records made through `RunStore.log`, in the store, until the writer packs it
into ``task_log_batches`` with the run's task states. A run's graph is recorded once, when the
run starts, as compact JSON in ``flow_graphs`` (pickled columns) and expanded to dicts when read.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar
from weakref import WeakKeyDictionary

from . import _schema as sql
from ._batches import BATCH_SHIFT, LogRow, decode
from ._records import AmbiguousRunId, RunNotFound, TaskLogRecord, epoch

if TYPE_CHECKING:
    from ..._model._flow import Flow

__all__ = ("LogQueries", "encode_graph", "take", "unpack_logs")

_R = TypeVar("_R")
_LEVEL_NAMES = {n: logging.getLevelName(n) for n in (10, 20, 30, 40, 50)}
_MAX_CANDIDATES = 20


def take(rows: list[LogRow]) -> list[LogRow]:
    """Take the rows of a list that worker threads may append to meanwhile (none is lost)."""
    taken = rows.copy()
    del rows[: len(taken)]  # what was appended since the copy stays
    return taken


def unpack_logs(
    batches: Iterable[tuple[int, bytes]], task_name: str | None, after_seq: int | None, limit: int | None
) -> list[TaskLogRecord]:
    """The records of ``(batch id, packed records)`` rows, filtered, in recording order."""
    out: list[TaskLogRecord] = []
    if limit is not None and limit <= 0:
        return out
    for batch_id, packed in batches:
        seq = batch_id << BATCH_SHIFT
        for run_id, at, level, slug, name, map_index, attempt, message in pickle.loads(packed):
            if (after_seq is None or seq > after_seq) and (task_name is None or name == task_name):
                out.append(
                    TaskLogRecord(
                        seq=seq,
                        run_id=run_id,
                        time=datetime.fromtimestamp(at, UTC),
                        level=_LEVEL_NAMES.get(level) or logging.getLevelName(level),
                        task_slug=slug,
                        task_name=name,
                        map_index=map_index,
                        attempt=attempt,
                        message=message,
                    )
                )
                if limit is not None and len(out) >= limit:
                    return out
            seq += 1
    return out


_SLUG = attrgetter("slug")
_NAME = attrgetter("name")
_SOURCE = attrgetter("upstream_task.slug")
_TARGET = attrgetter("downstream_task.slug")
_KEY = attrgetter("key")
_MAPPED = attrgetter("mapped")
_GRAPH_FORMAT = 1
_GRAPHS: WeakKeyDictionary[Flow, tuple[tuple[int, int], bytes]] = WeakKeyDictionary()  # by flow version


def encode_graph(flow: Flow) -> bytes:
    """The flow's tasks and edges as ``flow_graphs`` keeps them: pickled columns of plain values.

    Columns built by C loops, pickled in one call: about half a microsecond per task, paid by
    the first run of a flow (``bench/logs.py``); later runs of the unchanged flow reuse it.
    """
    key = (flow.graph.version, id(flow.graph))
    cached = _GRAPHS.get(flow)
    if cached is not None and cached[0] == key:
        return cached[1]
    tasks, edges = flow.graph.tasks, flow.graph.edges
    columns = (
        _GRAPH_FORMAT,
        list(map(_SLUG, tasks)),
        list(map(_NAME, tasks)),
        list(map(_SOURCE, edges)),
        list(map(_TARGET, edges)),
        list(map(_KEY, edges)),
        list(map(_MAPPED, edges)),
        list(map(_SLUG, flow.reference_tasks())),
        [parameter.slug for parameter in flow.parameters()],
    )
    packed = pickle.dumps(columns, 5)
    _GRAPHS[flow] = (key, packed)
    return packed


def decode_graph(packed: bytes) -> dict[str, list[dict[str, Any]]]:
    """The public form of a graph stored by `encode_graph`."""
    _, slugs, names, sources, targets, keys, mapped, reference, *rest = pickle.loads(packed)
    mapped_tasks = {target for target, is_mapped in zip(targets, mapped, strict=True) if is_mapped}
    reference = set(reference)
    parameters = set(rest[0]) if rest else set()  # graphs written before parameters were marked have none
    return {
        "nodes": [
            {
                "slug": slug,
                "name": name,
                "mapped": slug in mapped_tasks,
                "reference": slug in reference,
                "parameter": slug in parameters,
            }
            for slug, name in zip(slugs, names, strict=True)
        ],
        "edges": [
            {"source": source, "target": target, "key": key, "mapped": is_mapped}
            for source, target, key, is_mapped in zip(sources, targets, keys, mapped, strict=True)
        ],
    }


class LogQueries:
    """`RunStore`'s recording and queries of task logs, flow graphs and run ids (a mixin)."""

    if TYPE_CHECKING:
        _accepting: bool
        _batch_size: int
        _logs: list[LogRow]
        _runs: list[tuple[str, tuple[Any, ...]]]
        _wake: asyncio.Event

        async def _query(
            self, make: Callable[[Any], _R], query: str, params: tuple[Any, ...], *, flush: bool = True
        ) -> list[_R]: ...

    def log(
        self,
        run_id: str,
        task_slug: str,
        task_name: str,
        map_index: int | None,
        attempt: int,
        level: int,
        message: str,
        at: datetime | float,
    ) -> None:
        """Record a task log record (the engine records those of its task loggers by itself).

        Args:
            run_id: The flow run's id.
            task_slug: The task's slug.
            task_name: The task's name.
            map_index: The child's index for a mapped task's child, else None.
            attempt: The attempt that logged it, 1-based.
            level: The logging level number (``logging.INFO``...).
            message: The message, stored as given (redact secrets before).
            at: When it was logged: seconds since the epoch, or a datetime (timezone-aware, or
                naive meaning UTC).

        Raises:
            RuntimeError: The store is not open.
        """
        if not self._accepting:
            raise RuntimeError(f"{self!r} is not open")
        rows = self._logs
        rows.append((run_id, epoch(at), level, task_slug, task_name, map_index, attempt, message))
        n = len(rows)
        if n == 1 or n >= self._batch_size:
            self._wake.set()

    def record_graph(self, run_id: str, flow: Flow) -> None:
        """Record the task graph of flow run ``run_id`` (read back with `run_graph`).

        Args:
            run_id: The flow run's id.
            flow: The flow it runs.

        Raises:
            RuntimeError: The store is not open.
        """
        if not self._accepting:
            raise RuntimeError(f"{self!r} is not open")
        rows = self._runs
        rows.append((sql.FLOW_GRAPH, (run_id, encode_graph(flow))))
        if len(rows) == 1:
            self._wake.set()

    async def task_logs(
        self,
        run_id: str,
        task_name: str | None = None,
        *,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[TaskLogRecord]:
        """Return the task log records of flow run ``run_id``, in the order they were logged.

        Args:
            run_id: The flow run's id (the full id: see `resolve_run_id` for a prefix).
            task_name: Only the records of tasks with this name; None for every task.
            after_seq: Only records written after the one with this ``seq`` (to follow a run in
                progress: pass the last ``seq`` read).
            limit: At most this many records (the first ones); None for all.
        """
        first_batch = 0 if after_seq is None else after_seq >> BATCH_SHIFT
        batches = await self._query(lambda row: (int(row[0]), bytes(row[1])), sql.TASK_LOGS, (run_id, first_batch))
        return await decode(unpack_logs, batches, batches, task_name, after_seq, limit)

    async def run_graph(self, run_id: str) -> dict[str, list[dict[str, Any]]] | None:
        """Return the task graph of flow run ``run_id``, as recorded when it started.

        Returns:
            ``{"nodes": [...], "edges": [...]}``: a node per task (``slug``, ``name``,
            ``mapped``: it runs mapped, ``reference``: its state decides the flow's,
            ``parameter``: it is a `Parameter`, whose value is in the run's parameters), an edge
            per dependency (``source`` and ``target`` slugs, the argument ``key`` or None for a
            plain upstream, ``mapped``). None if the run is unknown or was recorded by an aflow
            that did not record graphs.
        """
        found = await self._query(lambda row: bytes(row[0]), sql.GET_GRAPH, (run_id,))
        return decode_graph(found[0]) if found else None

    async def resolve_run_id(self, prefix: str) -> str:
        """Return the id of the one flow run whose id starts with ``prefix``.

        Args:
            prefix: A run id, or its first characters.

        Raises:
            RunNotFound: No run's id starts with ``prefix``.
            AmbiguousRunId: Several do (its ``candidates`` lists them); a longer prefix will do.
        """
        if not prefix:
            raise RunNotFound("an empty run id matches no run: give a run id or its first characters")
        found = await self._query(lambda row: str(row[0]), sql.RUN_IDS_BY_PREFIX, (len(prefix), prefix))
        if prefix in found:
            return prefix
        if not found:
            raise RunNotFound(f"no run id starts with {prefix!r}: `aflow runs list` shows the runs")
        if len(found) > 1:
            raise AmbiguousRunId(prefix, found[:_MAX_CANDIDATES])
        return found[0]
