"""The history database's schema and statements (one place for every line of SQL).

The schema is versioned with ``PRAGMA user_version``: 0 is an empty file, `SCHEMA_VERSION` the
current layout. Flow-run and cache timestamps are ISO-8601 text in UTC (see `_records.to_iso`),
so they sort as text; JSON columns hold text.

Task states arrive by the thousand per second, so they are written packed: each row of
``task_state_batches`` holds one write's states of one flow run, pickled (see ``_batches``):
either a list of ``(run_id, task_slug, task_name, map_index, state, message, timestamp)`` tuples
(states recorded through `RunStore.task_state`), or ``(2, rows)`` with rows of
``(task_slug, task_name, map_index, state, message, timestamp, started)`` from a flow run's
recorder, where a ``started`` time stands for the ``Running`` state of the attempt the row ends.
Timestamps are seconds since the epoch. One INSERT per batch keeps the store's cost per state
to an append in memory and a share of one ``pickle.dumps``. The query API unpacks them; the
batch id and the position in the batch give the recording order.

Task log records are packed the same way: each row of ``task_log_batches`` holds one write's
records of one flow run, a pickled list of ``(run_id, timestamp, level number, task_slug,
task_name, map_index, attempt, message)`` tuples (one row per record would cost SQLite several
µs each). A record's ``seq`` is its batch id shifted left 32 bits plus its position in the
batch. ``flow_graphs`` keeps each run's task graph (pickled columns), recorded when the run
starts.
"""

from __future__ import annotations

__all__ = (
    "CACHE_CLEAR_ALL",
    "CACHE_CLEAR_KEY",
    "CACHE_GET",
    "CACHE_PRUNE",
    "CACHE_PUT",
    "CREATE_LOG_TABLES",
    "CREATE_SCHEMA",
    "FLOW_GRAPH",
    "FLOW_RUN_COLUMNS",
    "FLOW_RUN_FINISHED",
    "FLOW_RUN_STARTED",
    "GET_GRAPH",
    "GET_RUN",
    "LIST_RUNS",
    "LIST_RUNS_BY_FLOW",
    "PRUNE_BATCHES",
    "PRUNE_DONE",
    "PRUNE_GRAPHS",
    "PRUNE_KEEP",
    "PRUNE_LOGS",
    "PRUNE_PICK",
    "PRUNE_PICK_FLOW",
    "PRUNE_RUNS",
    "RUN_IDS_BY_PREFIX",
    "SCHEMA_VERSION",
    "TASK_HISTORY",
    "TASK_LOGS",
    "TASK_LOG_BATCH",
    "TASK_STATE_BATCH",
)

SCHEMA_VERSION = 1

CREATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS flow_runs (
    run_id     TEXT PRIMARY KEY,
    flow_name  TEXT NOT NULL,
    parameters TEXT NOT NULL,  -- JSON object
    started_at TEXT NOT NULL,
    ended_at   TEXT,
    state      TEXT NOT NULL,
    message    TEXT
);
CREATE INDEX IF NOT EXISTS flow_runs_by_start ON flow_runs (started_at);
CREATE INDEX IF NOT EXISTS flow_runs_by_flow ON flow_runs (flow_name, started_at);

CREATE TABLE IF NOT EXISTS task_state_batches (
    id      INTEGER PRIMARY KEY,  -- recording order of the batches
    run_id  TEXT NOT NULL,
    count   INTEGER NOT NULL,     -- states in the batch
    states  BLOB NOT NULL         -- pickled states: see the module docstring
);
CREATE INDEX IF NOT EXISTS task_state_batches_by_run ON task_state_batches (run_id, id);

CREATE TABLE IF NOT EXISTS cache (
    id          INTEGER PRIMARY KEY,
    cache_key   TEXT NOT NULL,
    inputs_hash TEXT,
    parameters  TEXT,  -- JSON object or NULL
    value       BLOB NOT NULL,
    expires_at  TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_by_key ON cache (cache_key, created_at);
"""

# Added after version 1 without changing it (an older aflow still reads the file and ignores
# them): created, if missing, each time a store opens a file.
CREATE_LOG_TABLES = """
CREATE TABLE IF NOT EXISTS task_log_batches (
    id      INTEGER PRIMARY KEY,  -- writing order of the batches
    run_id  TEXT NOT NULL,
    count   INTEGER NOT NULL,     -- records in the batch
    records BLOB NOT NULL         -- pickled records: see the module docstring
);
CREATE INDEX IF NOT EXISTS task_log_batches_by_run ON task_log_batches (run_id, id);

CREATE TABLE IF NOT EXISTS flow_graphs (
    run_id TEXT PRIMARY KEY,
    graph  BLOB NOT NULL  -- pickled columns: see _logs.encode_graph
);
"""

# -- recording (executemany) ---------------------------------------------------------------

FLOW_RUN_STARTED = """
INSERT INTO flow_runs (run_id, flow_name, parameters, started_at, ended_at, state, message)
VALUES (?, ?, ?, ?, NULL, 'Running', NULL)
ON CONFLICT (run_id) DO UPDATE SET
    flow_name = excluded.flow_name, parameters = excluded.parameters,
    started_at = excluded.started_at, ended_at = NULL, state = 'Running', message = NULL
"""

TASK_LOG_BATCH = "INSERT INTO task_log_batches (run_id, count, records) VALUES (?, ?, ?)"

FLOW_GRAPH = "INSERT OR REPLACE INTO flow_graphs (run_id, graph) VALUES (?, ?)"

TASK_STATE_BATCH = "INSERT INTO task_state_batches (run_id, count, states) VALUES (?, ?, ?)"

FLOW_RUN_FINISHED = "UPDATE flow_runs SET state = ?, message = ?, ended_at = ? WHERE run_id = ?"

# -- queries -------------------------------------------------------------------------------

FLOW_RUN_COLUMNS = "run_id, flow_name, parameters, started_at, ended_at, state, message"

LIST_RUNS = f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs ORDER BY started_at DESC, rowid DESC LIMIT ?"
LIST_RUNS_BY_FLOW = (
    f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs WHERE flow_name = ? ORDER BY started_at DESC, rowid DESC LIMIT ?"
)
GET_RUN = f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs WHERE run_id = ?"

TASK_LOGS = "SELECT id, records FROM task_log_batches WHERE run_id = ? AND id >= ? ORDER BY id"
GET_GRAPH = "SELECT graph FROM flow_graphs WHERE run_id = ?"
RUN_IDS_BY_PREFIX = "SELECT run_id FROM flow_runs WHERE substr(run_id, 1, ?) = ? ORDER BY run_id LIMIT 21"

TASK_HISTORY = "SELECT id, states FROM task_state_batches WHERE run_id = ? ORDER BY id"

# -- pruning (a temporary table of the runs to delete, so both deletes agree) ------------------

PRUNE_PICK = "CREATE TEMP TABLE prune_ids AS SELECT run_id FROM flow_runs WHERE started_at < ?"
PRUNE_PICK_FLOW = "CREATE TEMP TABLE prune_ids AS SELECT run_id FROM flow_runs WHERE started_at < ? AND flow_name = ?"
PRUNE_KEEP = "DELETE FROM prune_ids WHERE run_id = ?"
PRUNE_BATCHES = "DELETE FROM task_state_batches WHERE run_id IN (SELECT run_id FROM prune_ids)"
PRUNE_LOGS = "DELETE FROM task_log_batches WHERE run_id IN (SELECT run_id FROM prune_ids)"
PRUNE_GRAPHS = "DELETE FROM flow_graphs WHERE run_id IN (SELECT run_id FROM prune_ids)"
PRUNE_RUNS = "DELETE FROM flow_runs WHERE run_id IN (SELECT run_id FROM prune_ids)"
PRUNE_DONE = "DROP TABLE temp.prune_ids"

# -- cache ---------------------------------------------------------------------------------

CACHE_PUT = """
INSERT INTO cache (cache_key, inputs_hash, parameters, value, expires_at, created_at)
VALUES (?, ?, ?, ?, ?, ?)
"""
CACHE_GET = """
SELECT cache_key, inputs_hash, parameters, value, expires_at, created_at FROM cache
WHERE cache_key = ? ORDER BY created_at DESC, id DESC
"""
CACHE_PRUNE = "DELETE FROM cache WHERE cache_key = ? AND expires_at IS NOT NULL AND expires_at <= ?"
CACHE_CLEAR_ALL = "DELETE FROM cache"
CACHE_CLEAR_KEY = "DELETE FROM cache WHERE cache_key = ?"
