"""Run history and result cache, stored in one SQLite file (needs ``pip install aflow-engine[history]``).

A `RunStore` records every flow run and every state its task runs enter, and keeps cached task
outputs. Recording never waits: the engine's calls append to an in-memory batch that a
background task commits in one transaction (when ``batch_size`` records wait, or
``flush_interval`` seconds after the first one). Queries and cache calls are async and run
SQLite in aiosqlite's thread, so nothing blocks the event loop::

    from aflow.history import RunStore

    async with RunStore("runs.db") as store:
        store.flow_run_started(run_id, "etl", {"day": "2024-01-01"}, started_at)
        store.task_state(run_id, "extract-1", "extract", None, Running(), at)
        for run in await store.list_runs("etl"):
            print(run.run_id, run.state, run.ended_at)
            print(await store.latest_task_states(run.run_id))

Task log records (`RunStore.task_logs`) and each run's task graph (`RunStore.run_graph`) are
kept too.

The file is in WAL mode, so stores in several processes can share it. Tables: ``flow_runs``,
``task_state_batches`` (task states packed per flush: see `RunStore.task_history` to read them),
``task_logs``, ``flow_graphs`` and ``cache``; timestamps are ISO-8601 text in UTC, parameters are JSON.

Importing this module does not need aiosqlite; creating a `RunStore` does.
"""

from __future__ import annotations

from ._persist._history._records import AmbiguousRunId as AmbiguousRunId
from ._persist._history._records import CacheEntry as CacheEntry
from ._persist._history._records import FlowRunRecord as FlowRunRecord
from ._persist._history._records import RunNotFound as RunNotFound
from ._persist._history._records import TaskLogRecord as TaskLogRecord
from ._persist._history._records import TaskStateRecord as TaskStateRecord
from ._persist._history._store import RunStore as RunStore

__all__ = (
    "AmbiguousRunId",
    "CacheEntry",
    "FlowRunRecord",
    "RunNotFound",
    "RunStore",
    "TaskLogRecord",
    "TaskStateRecord",
)

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
