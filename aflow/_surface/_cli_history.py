"""How ``aflow runs`` prints what a run store holds: a run with its attempts, log records.

No click here: `aflow._surface._cli_runs` holds the commands.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._cli_output import abridge, log_line, task_label

if TYPE_CHECKING:
    from ..history import FlowRunRecord, TaskLogRecord, TaskStateRecord

__all__ = ("abridged_parameters", "format_log", "format_run_details", "task_attempts")

_MAX_PARAMETERS = 200  # characters of the parameters shown whole; longer ones are abridged
_MAX_PARAMETER = 60  # characters per parameter value once abridged
_MAX_RETRIED = 20  # retried task runs listed attempt by attempt


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


def _when(record: TaskStateRecord | TaskLogRecord) -> str:
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
            lines.append(f"  {label}  attempt {number}  {_when(states[0])}  {end.state}{message}")
    if len(retried) > _MAX_RETRIED:
        lines.append(f"  ... and {len(retried) - _MAX_RETRIED} more retried task runs")
    return lines


def format_run_details(record: FlowRunRecord, history: list[TaskStateRecord]) -> list[str]:
    """`format_run` with attempts per task, then each attempt of a retried task run.

    An attempt is listed with the state that ended it and that state's message.
    """
    from ._cli_support import format_run

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
