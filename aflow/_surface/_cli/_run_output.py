"""What ``aflow run`` prints: the summary table, live log lines, the flow's result, JSON.

Task log lines go to stderr as they are logged, through a handler on the root logger (a plain
script's warnings would otherwise reach Python's last-resort handler, unformatted); the summary
and the result (or the ``--json`` document) go to stdout. No click here.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._text import abridge, counts, duration, log_line, table, task_label

if TYPE_CHECKING:
    from ..._model._flow import Flow
    from ..._model._task import Task
    from ...states import State
    from .._run_tracker import RunTracker

__all__ = (
    "LEVELS",
    "RunLogHandler",
    "format_summary",
    "result_lines",
    "run_document",
    "setup_run_logging",
)

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MAX_FAILURES = 10  # failure lines shown per task (a wide map can fail thousands of times)


# -- the summary table ----------------------------------------------------------------------


def format_summary(flow: Flow, state: State, tracker: RunTracker | None = None) -> list[str]:
    """Lines describing a finished run: each task's final state and duration, then failures.

    A retried task's state says how many attempts it took (``Success after 3 attempts``).
    """
    from ..._model._builtin_tasks import Constant
    from ...states import Mapped
    from .._run_tracker import TIMES

    elapsed = f" in {duration(tracker.elapsed)}" if tracker is not None else ""
    lines = [f"Flow {flow.name!r}: {type(state).__name__}{elapsed}" + (f": {state.message}" if state.message else "")]
    results: dict[Any, State] = state.result if isinstance(state.result, dict) else {}
    rows: list[tuple[str, ...]] = []
    failures: list[str] = []
    tasks = [t for t in flow.sorted_tasks() if not isinstance(t, Constant)]
    names = Counter(t.name for t in tasks)
    for task in tasks:
        s = results.get(task)
        stats = tracker.stats.get(task) if tracker is not None else None
        took = duration(stats.duration if stats is not None else None)
        label = task.name if names[task.name] == 1 else (task.slug or task.name)
        if s is None:
            rows.append((label, "-", took))
            continue
        attempts = stats.attempts if stats is not None else 0
        if isinstance(s, Mapped):
            children = list(s.map_states)
            retried = f"; {attempts} attempts" if attempts > len(children) else ""
            rows.append(
                (
                    f"{label} {TIMES}{len(children)}",
                    f"Mapped: {counts(type(c).__name__ for c in children)}{retried}",
                    took,
                )
            )
            failed = [(i, c) for i, c in enumerate(children) if c.is_failed()]
            for i, c in failed[:_MAX_FAILURES]:
                failures.append(f"  {label}[{i}]: {type(c).__name__}: {c.message}")
            if len(failed) > _MAX_FAILURES:
                failures.append(f"  {label}: ... and {len(failed) - _MAX_FAILURES} more failed children")
        else:
            retried = f" after {attempts} attempts" if attempts > 1 else ""
            rows.append((label, type(s).__name__ + retried, took))
            if s.is_failed():
                failures.append(f"  {label}: {type(s).__name__}: {s.message}")
    if rows:
        lines += ["", *table(rows, ("TASK", "STATE", "DURATION"))]
    if failures:
        lines += ["", "Failures:", *failures]
    return lines


# -- live log lines ---------------------------------------------------------------------------


class RunLogHandler(logging.Handler):
    """Writes records to ``sys.stderr``, a task's records named by the task and map index.

    The stream is looked up at each record, so a live progress display that redirects stderr
    prints them above itself.
    """

    def __init__(self, colour: bool = False) -> None:
        super().__init__()
        self.colour = colour

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` as one `log_line`."""
        try:
            task = getattr(record, "task_name", None)
            if task is not None:
                source = task_label(task, getattr(record, "map_index", None), getattr(record, "task_run_count", None))
            else:
                source = record.name
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{self.formatException(record.exc_info)}"
            when = time.strftime("%H:%M:%S", time.localtime(record.created))
            sys.stderr.write(log_line(when, record.levelname, source, message, colour=self.colour) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)

    def formatException(self, exc_info: Any) -> str:
        """A traceback, as logging formats it."""
        return logging.Formatter().formatException(exc_info)


def setup_run_logging(level: int) -> RunLogHandler | None:
    """Show the task loggers' records at ``level`` and up, and everything's warnings, on stderr.

    A program that set up logging itself (handlers on the root logger) keeps its handlers; only
    the task loggers' level is set then.

    Returns:
        The handler added, or None when the root logger had handlers already.
    """
    logging.getLogger("aflow.task").setLevel(level)
    logging.captureWarnings(True)  # warnings.warn goes through the same handler
    root = logging.getLogger()
    if root.handlers:
        return None
    handler = RunLogHandler(colour=sys.stderr.isatty())
    root.addHandler(handler)
    return handler


# -- the flow's result ------------------------------------------------------------------------


def _result_tasks(flow: Flow) -> list[Task]:
    from ..._model._builtin_tasks import Constant

    reference = flow.reference_tasks()
    return [t for t in flow.sorted_tasks() if t in reference and not isinstance(t, Constant)]


def _value(state: State) -> Any:
    from ...states import Mapped

    if isinstance(state, Mapped):
        return [child.result for child in state.map_states]
    return state.result


def result_lines(flow: Flow, state: State) -> list[str]:
    """``Result:`` and a line per reference task that succeeded: ``name = value`` (abridged)."""
    results: dict[Any, State] = state.result if isinstance(state.result, dict) else {}
    lines = []
    for task in _result_tasks(flow):
        s = results.get(task)
        if s is not None and s.is_successful():
            lines.append(f"  {task.name} = {abridge(_value(s))}")
    return ["", "Result:", *lines] if lines else []


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def run_document(flow: Flow, state: State, tracker: RunTracker | None, run_id: str | None) -> str:
    """The ``--json`` document of a finished run: state, tasks (with attempts), result."""
    from ..._model._builtin_tasks import Constant
    from ...states import Mapped

    results: dict[Any, State] = state.result if isinstance(state.result, dict) else {}
    tasks = []
    for task in flow.sorted_tasks():
        if isinstance(task, Constant):
            continue
        s = results.get(task)
        stats = tracker.stats.get(task) if tracker is not None else None
        entry: dict[str, Any] = {
            "name": task.name,
            "slug": task.slug,
            "state": type(s).__name__ if s is not None else None,
            "message": s.message if s is not None else None,
            "attempts": stats.attempts if stats is not None else None,
            "duration": stats.duration if stats is not None else None,
        }
        if isinstance(s, Mapped):
            entry["children"] = _count(type(c).__name__ for c in s.map_states)
        tasks.append(entry)
    result = {
        task.name: _jsonable(_value(s))
        for task in _result_tasks(flow)
        if (s := results.get(task)) is not None and s.is_successful()
    }
    document = {
        "flow": flow.name,
        "run_id": run_id,
        "state": type(state).__name__,
        "message": state.message,
        "successful": state.is_successful(),
        "duration": tracker.elapsed if tracker is not None else None,
        "tasks": tasks,
        "result": result,
    }
    return json.dumps(document, indent=2, default=repr)


def _count(names: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in names:
        out[name] = out.get(name, 0) + 1
    return out
