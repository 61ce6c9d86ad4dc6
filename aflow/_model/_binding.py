"""Wiring one task call into a flow: upstream, downstream and keyword arguments to edges and constants."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..exceptions import FlowValidationError
from ._builtin_tasks import as_task, contains_task
from ._edge import SCALARS, flatten, is_mappable, mapped, unmapped
from ._task import Task

if TYPE_CHECKING:
    from ._flow import Flow

__all__ = ("wire",)


def wire(
    flow: Flow,
    task: Task,
    upstream_tasks: Iterable[Any] | None,
    downstream_tasks: Iterable[Any] | None,
    keyword_tasks: dict[str, Any] | None,
    mapped: bool,
) -> None:
    """Add ``task`` to ``flow`` with the edges and constants of one call (see `Flow.set_dependencies`)."""
    graph = flow.graph
    if task not in graph.tasks:
        graph.add_task(task)
    for up in upstream_tasks or ():
        is_mapped, flattened, value = _unwrap(up, mapped)
        if is_mapped:
            _check_mappable(task, None, value)
        flow.add_edge(value, task, mapped=is_mapped, flattened=flattened)
    for down in downstream_tasks or ():
        flow.add_edge(task, down if isinstance(down, Task) else as_task(down, flow))
    for key, arg in (keyword_tasks or {}).items():
        if not mapped:  # the common cases, without unwrapping
            if isinstance(arg, Task):
                graph.add_edge(arg, task, key)  # a plain data edge: what Flow.add_edge does too
                continue
            if type(arg) in SCALARS:
                graph.add_constant(task, key, arg)
                continue
        is_mapped, flattened, value = _unwrap(arg, mapped)
        if is_mapped:
            _check_mappable(task, key, value)
        if is_mapped or flattened or contains_task(value):
            flow.add_edge(value, task, key=key, mapped=is_mapped, flattened=flattened)
        else:
            graph.add_constant(task, key, value)


def _check_mappable(task: Task, key: str | None, value: Any) -> None:
    """Refuse, while the flow is built, to map over a literal value that is not a sequence.

    The engine maps over sized values other than strings, bytes and dicts; a task's result is
    only known when it runs.

    Raises:
        FlowValidationError: Naming the task, the argument and what to pass instead.
    """
    if isinstance(value, Task) or is_mappable(value):
        return
    what = f"argument {key!r}" if key is not None else "an upstream task"
    shown = reprlib.repr(value)
    raise FlowValidationError(
        f"Cannot map {task.name!r} over {what}: it is the {type(value).__name__} {shown}, not a sequence; "
        f"map over a list (e.g. [{shown}]), or wrap the argument in unmapped() to pass it whole to every child"
    )


def _unwrap(value: Any, mapped_default: bool) -> tuple[bool, bool, Any]:
    """Strip `unmapped`/`mapped`/`flatten` annotations: (is_mapped, flattened, value)."""
    is_mapped, flattened = mapped_default, False
    while True:
        if isinstance(value, unmapped):
            is_mapped = False
        elif isinstance(value, mapped):
            is_mapped = True
        elif isinstance(value, flatten):
            flattened = True
        else:
            return is_mapped, flattened, value
        value = value.value
