"""`apply_map`: map a whole subgraph-building function, such as one with `case` blocks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._builtin_tasks import Constant, Parameter, as_task
from ._edge import Edge, flatten, mapped, unmapped
from ._flow import Flow, current_flow
from ._task import Task

__all__ = ("apply_map",)


class _SubgraphFlow(Flow):
    """The temporary flow ``apply_map`` builds in: everything in it is mapped already."""

    def add_edge(
        self,
        upstream_task: Any,
        downstream_task: Task,
        key: str | None = None,
        mapped: bool = False,
        flattened: bool = False,
    ) -> Edge:
        """Add an edge, refusing mapped ones (see `Flow.add_edge`).

        Raises:
            ValueError: For a mapped edge (``.map``, ``mapped=True`` or a nested `apply_map`).
        """
        if mapped:
            raise ValueError(
                f"Cannot map {downstream_task.name!r} inside a function given to apply_map(): every task "
                "there is already mapped over apply_map's arguments; call the task normally instead of .map()"
            )
        return super().add_edge(upstream_task, downstream_task, key, mapped, flattened)


def _check_arguments(values: Sequence[Any]) -> None:
    """Refuse arguments ``apply_map`` cannot map over, naming what to pass instead."""
    for value in values:
        if isinstance(value, flatten):
            raise TypeError("apply_map() cannot flatten its arguments: flatten the input in a task first")
        if not isinstance(value, (Task, unmapped, mapped, Sequence)) or isinstance(value, (str, bytes)):
            raise TypeError(
                f"apply_map() cannot map over a {type(value).__name__}: pass a task or a sequence "
                "(or wrap the argument in unmapped())"
            )


def apply_map(func: Callable[..., Any], *args: Any, flow: Flow | None = None, **kwargs: Any) -> Any:
    """Map a function that adds tasks to a flow over one or more sequences, item by item.

    ``func`` is called once, with tasks standing for one item of each argument; the subgraph it
    builds (tasks, edges, `case` blocks, `merge`...) is copied into the flow with every edge
    mapped, so child ``i`` of each task feeds child ``i`` of its downstream tasks (depth-first).
    Each task of the subgraph with no upstream inside it is also mapped over every mapped
    argument, so all of them have one child per item. Arguments wrapped in `unmapped` are
    passed whole to every child. Tasks that existed before the call (used through a closure),
    parameters and constants are passed whole too.

    Example::

        def inc_if_even(x):
            with case(is_even(x), True):
                x2 = inc(x)
            return merge(x2, x)

        with Flow("f") as flow:
            apply_map(inc_if_even, [1, 2, 3])

    Args:
        func: The function building the subgraph; it may return anything (usually a task).
        *args: Sequences or tasks to map over (or `unmapped` values).
        flow: The flow to add to (default: the enclosing one). If given, ``func`` must accept a
            ``flow`` keyword argument (it receives the temporary subgraph flow).
        **kwargs: Keyword arguments to map over, likewise.

    Returns:
        What ``func`` returned.

    Raises:
        ValueError: Without a flow or a mapped argument, or if ``func`` maps a task itself.
        TypeError: If an argument is neither a task nor a sequence (nor wrapped in `unmapped`).
    """
    no_flow_given = flow is None
    target = flow if flow is not None else current_flow()
    if target is None:
        raise ValueError("apply_map() could not infer a flow: call it inside `with Flow(...):` or pass flow=")
    _check_arguments((*args, *kwargs.values()))
    before = set(target.graph.tasks)
    sub = _SubgraphFlow(f"apply_map({getattr(func, '__name__', 'func')})")
    arg_info: dict[Task, bool] = {}  # argument task -> mapped?

    def prepare(value: Any) -> Task:
        is_mapped = not isinstance(value, unmapped)
        arg = as_task(value, target)
        arg_info[arg] = arg_info.get(arg, False) or is_mapped
        target.add_task(arg)
        sub.add_task(arg)
        return arg

    args2 = [prepare(a) for a in args]
    kwargs2 = {k: prepare(v) for k, v in kwargs.items()}
    if not any(arg_info.values()):
        raise ValueError("apply_map() needs at least one mapped argument (one not wrapped in unmapped())")

    with sub:
        result = func(*args2, **kwargs2) if no_flow_given else func(*args2, flow=sub, **kwargs2)

    # inside: the subgraph's own tasks, mapped child by child; anything else is passed whole
    inside = {
        t: None
        for t in sub.graph.tasks
        if t not in arg_info and t not in before and not isinstance(t, (Parameter, Constant))
    }
    for t in sub.graph.tasks:
        target.add_task(t)
    for e in sub.graph.edges:
        up = e.upstream_task
        is_mapped = up in inside or arg_info.get(up, False)
        target.add_edge(up, e.downstream_task, key=e.key, mapped=is_mapped, flattened=e.flattened)
    for t, consts in sub.constants.items():
        target.set_dependencies(t, keyword_tasks=dict(consts))

    # every root of the subgraph depends on every argument, so each has one child per item
    for t in inside:
        ups = target.upstream_tasks(t)
        if ups.isdisjoint(inside):
            for arg, is_mapped in arg_info.items():
                if arg not in ups and (is_mapped or not isinstance(arg, Constant)):
                    target.add_edge(arg, t, mapped=is_mapped)
    return result
