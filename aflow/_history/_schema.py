"""The history database's schema and statements (one place for every line of SQL).

The schema is versioned with ``PRAGMA user_version``: 0 is an empty file, `SCHEMA_VERSION` the
current layout. Timestamps are ISO-8601 text in UTC (see `_records.to_iso`), so they sort as
text; JSON columns hold text. ``task_states`` is the append-only log of every state a task run
entered, ordered by ``seq``; the ``task_runs`` view shows each task run's latest state.
"""

from __future__ import annotations

__all__ = (
    "CACHE_CLEAR_ALL",
    "CACHE_CLEAR_KEY",
    "CACHE_GET",
    "CACHE_PUT",
    "CREATE_SCHEMA",
    "FLOW_RUN_COLUMNS",
    "FLOW_RUN_FINISHED",
    "FLOW_RUN_STARTED",
    "GET_RUN",
    "LATEST_TASK_STATES",
    "LIST_RUNS",
    "LIST_RUNS_BY_FLOW",
    "SCHEMA_VERSION",
    "TASK_HISTORY",
    "TASK_STATE",
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

CREATE TABLE IF NOT EXISTS task_states (
    seq        INTEGER PRIMARY KEY,  -- recording order
    run_id     TEXT NOT NULL,
    task_slug  TEXT NOT NULL,
    task_name  TEXT NOT NULL,
    map_index  INTEGER,
    state      TEXT NOT NULL,
    message    TEXT,
    timestamp  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS task_states_by_run ON task_states (run_id);  -- entries end with seq (the rowid)

CREATE VIEW IF NOT EXISTS task_runs AS
    SELECT * FROM task_states
    WHERE seq IN (SELECT max(seq) FROM task_states GROUP BY run_id, task_slug, map_index);

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

# -- recording (executemany) ---------------------------------------------------------------

FLOW_RUN_STARTED = """
INSERT INTO flow_runs (run_id, flow_name, parameters, started_at, ended_at, state, message)
VALUES (?, ?, ?, ?, NULL, 'Running', NULL)
ON CONFLICT (run_id) DO UPDATE SET
    flow_name = excluded.flow_name, parameters = excluded.parameters,
    started_at = excluded.started_at, ended_at = NULL, state = 'Running', message = NULL
"""

TASK_STATE = """
INSERT INTO task_states (run_id, task_slug, task_name, map_index, state, message, timestamp)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""

FLOW_RUN_FINISHED = "UPDATE flow_runs SET state = ?, message = ?, ended_at = ? WHERE run_id = ?"

# -- queries -------------------------------------------------------------------------------

FLOW_RUN_COLUMNS = "run_id, flow_name, parameters, started_at, ended_at, state, message"
_TASK_STATE_COLUMNS = "seq, run_id, task_slug, task_name, map_index, state, message, timestamp"

LIST_RUNS = f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs ORDER BY started_at DESC, rowid DESC LIMIT ?"
LIST_RUNS_BY_FLOW = (
    f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs WHERE flow_name = ? ORDER BY started_at DESC, rowid DESC LIMIT ?"
)
GET_RUN = f"SELECT {FLOW_RUN_COLUMNS} FROM flow_runs WHERE run_id = ?"

TASK_HISTORY = f"SELECT {_TASK_STATE_COLUMNS} FROM task_states WHERE run_id = ? ORDER BY seq"
LATEST_TASK_STATES = f"""
SELECT {_TASK_STATE_COLUMNS} FROM task_states
WHERE seq IN (SELECT max(seq) FROM task_states WHERE run_id = ? GROUP BY task_slug, map_index)
ORDER BY seq
"""

# -- cache ---------------------------------------------------------------------------------

CACHE_PUT = """
INSERT INTO cache (cache_key, inputs_hash, parameters, value, expires_at, created_at)
VALUES (?, ?, ?, ?, ?, ?)
"""
CACHE_GET = """
SELECT cache_key, inputs_hash, parameters, value, expires_at, created_at FROM cache
WHERE cache_key = ? ORDER BY created_at DESC, id DESC
"""
CACHE_CLEAR_ALL = "DELETE FROM cache"
CACHE_CLEAR_KEY = "DELETE FROM cache WHERE cache_key = ?"
