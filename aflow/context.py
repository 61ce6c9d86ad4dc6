"""The run context: what a task can know about the run it is part of.

Values live in `contextvars`, so every task run sees its own (two concurrent tasks never see each
other's ``map_index``), and worker threads running sync tasks see their task's values too.
Read them with ``context.get("map_index")`` or as attributes (``context.map_index``)::

    from aflow import context

    @task
    async def where_am_i():
        return context.flow_run_id, context.task_name, context.get("map_index")

Keys of a flow run: ``flow_name``, ``flow_run_id``, ``flow_run_name``, ``parameters``, ``date``
(the run's start, UTC), ``today``, ``yesterday``, ``tomorrow`` (``YYYY-MM-DD``) and their
``*_nodash`` forms, plus whatever ``flow.run(context={...})`` adds. Keys of a task run:
``task_name``, ``task_slug``, ``task_full_name``, ``task_tags``, ``task_run_id``, ``map_index``,
``task_run_count``, ``task_loop_count`` and ``task_loop_result`` (set from a looping task's second
pass on: ``context.get("task_loop_result", start)``), ``task_run_name`` and ``logger``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from ._runtime._run_context import FlowRunContext, flow_run_var, task_run_var

__all__ = ("get", "temporary", "to_dict")

_overlay: ContextVar[Mapping[str, Any]] = ContextVar("aflow_context_overlay", default=MappingProxyType({}))
_MISSING = object()


def _flow_value(run: FlowRunContext, key: str) -> Any:
    if key in run.extra:
        return run.extra[key]
    if key in _FLOW_KEYS:
        return _FLOW_KEYS[key](run)
    return _MISSING


def _date_key(days: int, fmt: str) -> Any:
    return lambda run: (run.date + timedelta(days=days)).strftime(fmt)


_FLOW_KEYS: dict[str, Any] = {
    "flow_name": lambda run: run.flow_name,
    "flow_run_id": lambda run: run.flow_run_id,
    "flow_run_name": lambda run: run.flow_run_name,
    "parameters": lambda run: run.parameters,
    "date": lambda run: run.date,
    "today": _date_key(0, "%Y-%m-%d"),
    "yesterday": _date_key(-1, "%Y-%m-%d"),
    "tomorrow": _date_key(1, "%Y-%m-%d"),
    "today_nodash": _date_key(0, "%Y%m%d"),
    "yesterday_nodash": _date_key(-1, "%Y%m%d"),
    "tomorrow_nodash": _date_key(1, "%Y%m%d"),
}

_TASK_KEYS: dict[str, Any] = {
    "task_name": lambda t: t.task.name,
    "task_slug": lambda t: t.task.slug,
    "task_tags": lambda t: t.task.tags,
    "task_full_name": lambda t: t.full_name,
    "task_run_id": lambda t: t.task_run_id,
    "map_index": lambda t: t.map_index,
    "task_run_count": lambda t: t.run_count,
    # absent on a task's first pass, as in Prefect 1: context.get("task_loop_result", start) works
    "task_loop_count": lambda t: t.loop_count if t.loop_count is not None else _MISSING,
    "task_loop_result": lambda t: t.loop_result if t.loop_count is not None else _MISSING,
    "task_run_name": lambda t: t.task_run_name,
    "logger": lambda t: t.task.logger,
}


def get(key: str, default: Any = None) -> Any:
    """Return the context value ``key``, or ``default`` when it is not set.

    Args:
        key: A context key (see the module docs).
        default: What to return when the key is absent (outside a run, for instance).
    """
    overlay = _overlay.get()
    if key in overlay:
        return overlay[key]
    trun = task_run_var.get()
    if trun is not None and key in _TASK_KEYS:
        value = _TASK_KEYS[key](trun)
        return default if value is _MISSING else value
    frun = flow_run_var.get()
    if frun is not None:
        value = _flow_value(frun, key)
        if value is not _MISSING:
            return value
    return default


def to_dict() -> dict[str, Any]:
    """Return a snapshot of every context value currently set."""
    out: dict[str, Any] = {}
    frun = flow_run_var.get()
    if frun is not None:
        out.update((k, f(frun)) for k, f in _FLOW_KEYS.items())
        out.update(frun.extra)
    trun = task_run_var.get()
    if trun is not None:
        out.update((k, v) for k, f in _TASK_KEYS.items() if (v := f(trun)) is not _MISSING)
    out.update(_overlay.get())
    return out


def _lookup(key: str, default: Any) -> Any:
    """``to_dict().get(key, default)`` without building the whole snapshot (same precedence)."""
    overlay = _overlay.get()
    if key in overlay:
        return overlay[key]
    trun = task_run_var.get()
    if trun is not None and key in _TASK_KEYS:
        value = _TASK_KEYS[key](trun)
        if value is not _MISSING:
            return value
    frun = flow_run_var.get()
    if frun is not None:
        if key in frun.extra:
            return frun.extra[key]
        if key in _FLOW_KEYS:
            return _FLOW_KEYS[key](frun)
    return default


@contextmanager
def temporary(**values: Any) -> Iterator[None]:
    """Set context values inside a ``with`` block (useful to unit-test a task's ``run``).

    Args:
        **values: The keys to set; they hide run values of the same name.
    """
    token = _overlay.set({**_overlay.get(), **values})
    try:
        yield
    finally:
        _overlay.reset(token)


def __getattr__(name: str) -> Any:
    value = get(name, _MISSING)
    if value is _MISSING:
        raise AttributeError(f"aflow.context has no value {name!r} here (use context.get({name!r}, default))")
    return value
