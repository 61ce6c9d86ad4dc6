"""What ``aflow run`` prints besides its summary table: live log lines, the flow's result, JSON.

Task log lines go to stderr as they are logged, through a handler on the root logger (a plain
script's warnings would otherwise reach Python's last-resort handler, unformatted); the summary
and the result (or the ``--json`` document) go to stdout.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._model._flow import Flow
    from .._model._task import Task
    from ..states import State
    from ._run_tracker import RunTracker

__all__ = (
    "LEVELS",
    "RunLogHandler",
    "abridge",
    "log_line",
    "result_lines",
    "run_document",
    "setup_run_logging",
    "task_label",
)

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MAX_VALUE = 200  # characters of a value shown in a summary (results, parameters)
_COLOURS = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "red"}


def task_label(name: str, map_index: int | None, attempt: int | None = None) -> str:
    """``name``, ``name[3]``, with `` (attempt 2)`` after a first attempt."""
    label = name if map_index is None else f"{name}[{map_index}]"
    return label if attempt is None or attempt <= 1 else f"{label} (attempt {attempt})"


def log_line(when: str, level: str, source: str, message: str, *, colour: bool = False) -> str:
    """One log line: ``when LEVEL source: message``; a message's further lines are indented."""
    shown = f"{level:<8}"
    if colour and level in _COLOURS:
        import click

        shown = click.style(shown, fg=_COLOURS[level], bold=level != "WARNING")
    return f"{when} {shown}{source}: " + message.replace("\n", "\n    ")


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


def abridge(value: Any, limit: int = _MAX_VALUE) -> str:
    """``value`` as JSON when it is, else its repr, cut to ``limit`` characters.

    A cut value ends with its size: a collection's items, and the characters of the whole.
    """
    try:
        text = json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} items, " if isinstance(value, (list, tuple, dict, set)) else ""
    return f"{text[: limit - 1]}\N{HORIZONTAL ELLIPSIS} ({size}{len(text)} characters)"


def _result_tasks(flow: Flow) -> list[Task]:
    from .._model._builtin_tasks import Constant

    reference = flow.reference_tasks()
    return [t for t in flow.sorted_tasks() if t in reference and not isinstance(t, Constant)]


def _value(state: State) -> Any:
    from ..states import Mapped

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
    from .._model._builtin_tasks import Constant
    from ..states import Mapped

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
