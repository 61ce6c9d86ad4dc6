"""What the ``aflow`` command does, without click: load a flow, parse parameters, summarise runs.

`aflow._surface._cli` holds the click commands and turns `BadInput` into a one-line error (exit code 2).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._model._flow import Flow
    from ..history import FlowRunRecord, TaskStateRecord
    from ..states import State
    from ._run_tracker import RunTracker

__all__ = (
    "BadInput",
    "format_run",
    "format_runs",
    "format_summary",
    "load_flow",
    "parse_params",
)

_MAX_FAILURES = 10  # failure lines shown per task (a wide map can fail thousands of times)


class BadInput(Exception):
    """The user's input is wrong (a file, a flow, a parameter): reported in one line."""


# -- targets ----------------------------------------------------------------------------------


def _split_target(target: str) -> tuple[str, str | None]:
    """``file.py:name`` or ``package.module:name`` (the name is optional)."""
    source, sep, name = target.rpartition(":")
    if not sep or not name or "/" in name or "\\" in name or name.endswith(".py"):
        return target, None
    return source, name


def _is_path(source: str) -> bool:
    return source.endswith(".py") or "/" in source or os.sep in source or os.path.exists(source)


def _load_file(source: str) -> Any:
    path = Path(source)
    if not path.is_file():
        raise BadInput(f"no such file: {source}")
    path = path.resolve()
    name = f"aflow_flow_file_{abs(hash(str(path))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BadInput(f"cannot load {source} as Python (does it end in .py?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # for pickling, dataclasses and the like
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the file's own imports of its neighbours work
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise BadInput(f"error while loading {source}{_line_in(exc, path)}: {type(exc).__name__}: {exc}") from exc
    return module


def _line_in(exc: BaseException, path: Path) -> str:
    """``", line N"``: the line of ``path`` that was running when ``exc`` was raised (or a syntax error's)."""
    if isinstance(exc, SyntaxError) and exc.lineno is not None and exc.filename == str(path):
        return f", line {exc.lineno}"
    line = None
    tb = exc.__traceback__
    while tb is not None:  # the innermost frame in the file: a line in a function it calls wins
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f", line {line}" if line is not None else ""


def _load_module(source: str) -> Any:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as exc:
        if exc.name and (source == exc.name or source.startswith(exc.name + ".")):
            raise BadInput(f"no such file or module: {source}") from exc
        raise BadInput(f"error while importing {source}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise BadInput(f"error while importing {source}: {type(exc).__name__}: {exc}") from exc


def load_flow(target: str) -> Flow:
    """Load the flow ``target`` names: ``path/to/file.py:name`` or ``package.module:name``.

    ``name`` is a module attribute holding a `Flow`, or a flow's ``name``; without it, the
    module must define exactly one flow.

    Raises:
        BadInput: No such file or module, it fails to import, or it has no such flow.
    """
    from .._model._flow import Flow

    source, name = _split_target(target)
    module = _load_file(source) if _is_path(source) else _load_module(source)
    flows = {id(v): v for v in vars(module).values() if isinstance(v, Flow)}
    found = sorted(k for k, v in vars(module).items() if isinstance(v, Flow) and not k.startswith("_"))
    if name is None:
        if len(flows) == 1:
            return next(iter(flows.values()))
        if not flows:
            raise BadInput(f"{source} defines no flow")
        raise BadInput(f"{source} defines several flows ({', '.join(found)}): pick one with {source}:NAME")
    obj = getattr(module, name, None)
    if isinstance(obj, Flow):
        return obj
    by_name = [f for f in flows.values() if f.name == name]
    if len(by_name) == 1:
        return by_name[0]
    known = f" (flows there: {', '.join(found)})" if found else " (it defines no flow)"
    raise BadInput(f"no flow {name!r} in {source}{known}")


# -- parameters -------------------------------------------------------------------------------


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` items; a value that is valid JSON is decoded, any other is a string.

    Raises:
        BadInput: An item has no ``=`` or an empty key, or a key repeats.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"bad parameter {item!r}: expected KEY=VALUE")
        if key in params:
            raise BadInput(f"parameter {key!r} given twice")
        try:
            params[key] = json.loads(text)
        except ValueError:
            params[key] = text
    return params


# -- run summary ------------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f}\N{MICRO SIGN}s"
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 120:
        return f"{seconds:.2f}s"
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


def _counts(names: Iterable[str]) -> str:
    return ", ".join(f"{n} {name}" for name, n in Counter(names).most_common()) or "no children"


def _table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]


def format_summary(flow: Flow, state: State, tracker: RunTracker | None = None) -> list[str]:
    """Lines describing a finished run: each task's final state and duration, then failures.

    A retried task's state says how many attempts it took (``Success after 3 attempts``).
    """
    from .._model._builtin_tasks import Constant
    from ..states import Mapped
    from ._run_tracker import TIMES

    elapsed = f" in {_duration(tracker.elapsed)}" if tracker is not None else ""
    lines = [f"Flow {flow.name!r}: {type(state).__name__}{elapsed}" + (f": {state.message}" if state.message else "")]
    results: dict[Any, State] = state.result if isinstance(state.result, dict) else {}
    rows: list[tuple[str, ...]] = []
    failures: list[str] = []
    tasks = [t for t in flow.sorted_tasks() if not isinstance(t, Constant)]
    names = Counter(t.name for t in tasks)
    for task in tasks:
        s = results.get(task)
        stats = tracker.stats.get(task) if tracker is not None else None
        duration = _duration(stats.duration if stats is not None else None)
        label = task.name if names[task.name] == 1 else (task.slug or task.name)
        if s is None:
            rows.append((label, "-", duration))
            continue
        attempts = stats.attempts if stats is not None else 0
        if isinstance(s, Mapped):
            children = list(s.map_states)
            retried = f"; {attempts} attempts" if attempts > len(children) else ""
            rows.append(
                (
                    f"{label} {TIMES}{len(children)}",
                    f"Mapped: {_counts(type(c).__name__ for c in children)}{retried}",
                    duration,
                )
            )
            failed = [(i, c) for i, c in enumerate(children) if c.is_failed()]
            for i, c in failed[:_MAX_FAILURES]:
                failures.append(f"  {label}[{i}]: {type(c).__name__}: {c.message}")
            if len(failed) > _MAX_FAILURES:
                failures.append(f"  {label}: ... and {len(failed) - _MAX_FAILURES} more failed children")
        else:
            retried = f" after {attempts} attempts" if attempts > 1 else ""
            rows.append((label, type(s).__name__ + retried, duration))
            if s.is_failed():
                failures.append(f"  {label}: {type(s).__name__}: {s.message}")
    if rows:
        lines += ["", *_table(rows, ("TASK", "STATE", "DURATION"))]
    if failures:
        lines += ["", "Failures:", *failures]
    return lines


# -- run store --------------------------------------------------------------------------------


def _when(dt: datetime | None) -> str:
    return "-" if dt is None else dt.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _took(record: FlowRunRecord) -> str:
    if record.ended_at is None:
        return "-"
    return _duration((record.ended_at - record.started_at).total_seconds())


def format_runs(records: list[FlowRunRecord]) -> list[str]:
    """A table of flow runs, newest first."""
    if not records:
        return ["No runs recorded."]
    rows = [(r.run_id, r.flow_name, r.state, _when(r.started_at), _took(r)) for r in records]
    return _table(rows, ("RUN ID", "FLOW", "STATE", "STARTED", "DURATION"))


def format_run(
    record: FlowRunRecord,
    latest: dict[tuple[str, int | None], TaskStateRecord],
    attempts: dict[str, int] | None = None,
) -> list[str]:
    """A flow run's details and each task's last recorded state (mapped children summarised).

    Long parameters are abridged. With ``attempts`` (by task slug), the table has an ATTEMPTS
    column.
    """
    from ._cli_history import abridged_parameters
    from ._run_tracker import TIMES

    lines = [
        f"Run {record.run_id} of flow {record.flow_name!r}",
        f"  state:      {record.state}" + (f": {record.message}" if record.message else ""),
        f"  started:    {_when(record.started_at)}",
        f"  ended:      {_when(record.ended_at)} ({_took(record)})",
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
            state = (parent.state + ": " if parent is not None else "") + _counts(r.state for r in kids)
            rows.append((f"{label} {TIMES}{len(kids)}", state, _when(kids[-1].timestamp), *tried))
            bad = [r for r in kids if r.state in _FAILED_NAMES]
            failures += [f"  {label}[{r.map_index}]: {r.state}: {r.message}" for r in bad[:_MAX_FAILURES]]
            if len(bad) > _MAX_FAILURES:
                failures.append(f"  {label}: ... and {len(bad) - _MAX_FAILURES} more failed children")
        elif parent is not None:
            rows.append((label, parent.state, _when(parent.timestamp), *tried))
            if parent.state in _FAILED_NAMES:
                failures.append(f"  {label}: {parent.state}: {parent.message}")
    if rows:
        header = ("TASK", "STATE", "AT") if attempts is None else ("TASK", "STATE", "AT", "ATTEMPTS")
        lines += ["", *_table(rows, header)]
    else:
        lines += ["", "No task states recorded."]
    if failures:
        lines += ["", "Failures:", *failures]
    return lines


_FAILED_NAMES = frozenset({"Failed", "TimedOut", "TriggerFailed"})
