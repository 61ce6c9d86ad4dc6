"""How ``aflow runs`` prints what a run store holds: runs, a run with its attempts, log records.

No click here: ``_history_commands`` holds the commands.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._text import abridge, counts, duration, log_line, table, task_label

if TYPE_CHECKING:
    from ...history import FlowRunRecord, TaskLogRecord, TaskStateRecord

__all__ = ("abridged_parameters", "format_log", "format_run", "format_run_details", "format_runs", "task_attempts")

_MAX_PARAMETERS = 200  # characters of the parameters shown whole; longer ones are abridged
_MAX_PARAMETER = 60  # characters per parameter value once abridged
_MAX_RETRIED = 20  # retried task runs listed attempt by attempt
_MAX_FAILURES = 10  # failure lines shown per task (a wide map can fail thousands of times)
_FAILED_NAMES = frozenset({"Failed", "TimedOut", "TriggerFailed"})


def abridged_parameters(parameters: dict[str, Any]) -> str:
    """The parameters as JSON, each value abridged when the whole would be long."""
    whole = json.dumps(parameters, sort_keys=True, default=repr)
    if len(whole) <= _MAX_PARAMETERS:
        return whole
    items = (f"{json.dumps(k)}: {abridge(v, _MAX_PARAMETER)}" for k, v in sorted(parameters.items()))
    return "{" + ", ".join(items) + "}"


def task_attempts(history: Iterable[TaskStateRecord]) -> dict[tuple[str, int | None], list[list[TaskStateRecord]]]:
    """Each task run's states split into attempts: a ``Running`` state starts the next one.

    Returns:
        ``{(slug, map_index): [attempt states...]}`` in the order the task runs first appear;
        the states before a first ``Running`` (a task skipped or decided by its trigger) make
        an attempt of their own.
    """
    out: dict[tuple[str, int | None], list[list[TaskStateRecord]]] = {}
    for record in history:
        attempts = out.setdefault((record.task_slug, record.map_index), [])
        if record.state == "Running" or not attempts:
            attempts.append([record])
        else:
            attempts[-1].append(record)
    return out


def _date_time(dt: datetime | None) -> str:
    return "-" if dt is None else dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _took(record: FlowRunRecord) -> str:
    if record.ended_at is None:
        return "-"
    return duration((record.ended_at - record.started_at).total_seconds())


def format_runs(records: list[FlowRunRecord]) -> list[str]:
    """A table of flow runs, newest first."""
    if not records:
        return ["No runs recorded."]
    rows = [(r.run_id, r.flow_name, r.state, _date_time(r.started_at), _took(r)) for r in records]
    return table(rows, ("RUN ID", "FLOW", "STATE", "STARTED", "DURATION"))


def format_run(
    record: FlowRunRecord,
    latest: dict[tuple[str, int | None], TaskStateRecord],
    attempts: dict[str, int] | None = None,
) -> list[str]:
    """A flow run's details and each task's last recorded state (mapped children summarised).

    Long parameters are abridged. With ``attempts`` (by task slug), the table has an ATTEMPTS
    column.
    """
    from .._run_tracker import TIMES

    lines = [
        f"Run {record.run_id} of flow {record.flow_name!r}",
        f"  state:      {record.state}" + (f": {record.message}" if record.message else ""),
        f"  started:    {_date_time(record.started_at)}",
        f"  ended:      {_date_time(record.ended_at)} ({_took(record)})",
        f"  parameters: {abridged_parameters(record.parameters)}",
    ]
    parents: dict[str, TaskStateRecord] = {}
    children: dict[str, list[TaskStateRecord]] = {}
    order: dict[str, None] = {}
    for (slug, index), rec in latest.items():
        order[slug] = None
        if index is None:
            parents[slug] = rec
        else:
            children.setdefault(slug, []).append(rec)
    names = {slug: (parents.get(slug) or children[slug][0]).task_name for slug in order}
    unique = Counter(names.values())
    rows: list[tuple[str, ...]] = []
    failures: list[str] = []
    for slug in order:
        kids = sorted(children.get(slug, []), key=lambda r: r.map_index or 0)
        parent = parents.get(slug)
        label = names[slug] if unique[names[slug]] == 1 else slug
        tried = () if attempts is None else (str(attempts.get(slug, 0)),)
        if kids:
            state = (parent.state + ": " if parent is not None else "") + counts(r.state for r in kids)
            rows.append((f"{label} {TIMES}{len(kids)}", state, _date_time(kids[-1].timestamp), *tried))
            bad = [r for r in kids if r.state in _FAILED_NAMES]
            failures += [f"  {label}[{r.map_index}]: {r.state}: {r.message}" for r in bad[:_MAX_FAILURES]]
            if len(bad) > _MAX_FAILURES:
                failures.append(f"  {label}: ... and {len(bad) - _MAX_FAILURES} more failed children")
        elif parent is not None:
            rows.append((label, parent.state, _date_time(parent.timestamp), *tried))
            if parent.state in _FAILED_NAMES:
                failures.append(f"  {label}: {parent.state}: {parent.message}")
    if rows:
        header = ("TASK", "STATE", "AT") if attempts is None else ("TASK", "STATE", "AT", "ATTEMPTS")
        lines += ["", *table(rows, header)]
    else:
        lines += ["", "No task states recorded."]
    if failures:
        lines += ["", "Failures:", *failures]
    return lines


def _clock_time(record: TaskStateRecord | TaskLogRecord) -> str:
    at = record.timestamp if hasattr(record, "timestamp") else record.time
    return at.astimezone().strftime("%H:%M:%S.%f")[:-3]


def _retried_lines(runs: dict[tuple[str, int | None], list[list[TaskStateRecord]]]) -> list[str]:
    retried = [(key, attempts) for key, attempts in runs.items() if len(attempts) > 1]
    if not retried:
        return []
    lines = ["", "Attempts of retried task runs:"]
    for (_, map_index), attempts in retried[:_MAX_RETRIED]:
        label = task_label(attempts[0][0].task_name, map_index)
        for number, states in enumerate(attempts, 1):
            end = states[-1]
            message = f": {end.message}" if end.message else ""
            lines.append(f"  {label}  attempt {number}  {_clock_time(states[0])}  {end.state}{message}")
    if len(retried) > _MAX_RETRIED:
        lines.append(f"  ... and {len(retried) - _MAX_RETRIED} more retried task runs")
    return lines


def format_run_details(record: FlowRunRecord, history: list[TaskStateRecord]) -> list[str]:
    """`format_run` with attempts per task, then each attempt of a retried task run.

    An attempt is listed with the state that ended it and that state's message.
    """
    runs = task_attempts(history)
    latest = {key: attempts[-1][-1] for key, attempts in runs.items()}
    attempts_by_slug: dict[str, int] = {}
    for (slug, _), attempts in runs.items():
        started = sum(1 for states in attempts if states[0].state == "Running")
        attempts_by_slug[slug] = attempts_by_slug.get(slug, 0) + started
    return format_run(record, latest, attempts_by_slug) + _retried_lines(runs)


def format_log(record: TaskLogRecord, *, colour: bool = False) -> str:
    """One stored log record as a line: time, level, task (map index, attempt), message."""
    when = record.time.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    source = task_label(record.task_name, record.map_index, record.attempt)
    return log_line(when, record.level, source, record.message, colour=colour)
