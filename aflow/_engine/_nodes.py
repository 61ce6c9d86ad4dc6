"""The scheduler's run-time record of a task (`Node`) and how a node or a mapped child gathers its inputs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._model._edge import is_mappable
from ..states import Mapped, Skipped, State, Success

if TYPE_CHECKING:
    from .._model._edge import Edge
    from .._model._task import Task

__all__ = (
    "NO_LISTENERS",
    "MappedNode",
    "Node",
    "add_listener",
    "child_inputs",
    "flatten_value",
    "inputs_and_states",
    "new_node",
    "plan_children",
)


class Node:
    """The run-time record of one task of the flow."""

    __slots__ = ("consts", "edges_in", "finish_listeners", "state", "task", "waiting")

    is_mapped: bool = False
    #: The children a mapped task has, once known (None: not mapped yet, or not a mapped task).
    width: int | None = None
    #: Nodes waiting for a mapped task's width, not its end (depth-first mapping); a `MappedNode`'s own.
    resolve_listeners: Sequence[Node] = ()

    def __init__(self, task: Task, edges_in: Sequence[Edge], consts: dict[str, Any] | None) -> None:
        self.task = task
        self.edges_in = edges_in
        self.consts = consts
        self.state: State | None = None
        self.waiting = 0
        self.finish_listeners: Sequence[Node] = NO_LISTENERS


class MappedNode(Node):
    """The run-time record of a mapped task: a `Node` with its width and its children's."""

    __slots__ = (
        "child_listeners",
        "child_states",
        "child_waiting",
        "children_left",
        "df_getters",
        "resolve_listeners",
        "resolved",
        "width",
    )

    is_mapped = True

    def __init__(self, task: Task, edges_in: Sequence[Edge], consts: dict[str, Any] | None) -> None:
        super().__init__(task, edges_in, consts)
        self.resolve_listeners = NO_LISTENERS
        self.resolved = False
        self.width = None
        # set by _map_parent:
        self.child_states: list[State | None]
        self.children_left: int
        self.child_waiting: list[int]
        self.child_listeners: list[MappedNode]
        self.df_getters: list[Any]


def new_node(task: Task, edges_in: Sequence[Edge], consts: dict[str, Any] | None) -> Node:
    """A `MappedNode` for a task with a mapped edge in, else a `Node` (without the children's slots)."""
    if edges_in and any(e.mapped for e in edges_in):
        return MappedNode(task, edges_in, consts)
    return Node(task, edges_in, consts)


NO_LISTENERS: Sequence[Node] = ()  # no listeners (yet)


def add_listener(listeners: Sequence[Node], node: Node) -> Sequence[Node]:
    """``listeners`` with ``node`` added: a tuple of one (most nodes have one), then a list."""
    if type(listeners) is list:
        listeners.append(node)
        return listeners
    return [*listeners, node] if listeners else (node,)


def flatten_value(value: Any, name: str) -> list[Any]:
    """Un-nest ``value`` one level: list and tuple items are spliced in, others pass through."""
    if not isinstance(value, Iterable) or isinstance(value, (str, bytes, dict)):
        raise TypeError(f"flatten() over {name} needs a list, got {type(value).__name__}")
    out: list[Any] = []
    for item in value:
        if isinstance(item, (list, tuple)):
            out.extend(item)
        else:
            out.append(item)  # a scalar passes through (Prefect 1)
    return out


def flatten_children(children: list[State]) -> tuple[list[Any], list[State]]:
    """A flattened mapped upstream, child by child: each item's value and the state it came from.

    A successful child's list is spliced in; any other child (a scalar result, or a child that
    failed or was skipped) is one item, so only its own downstream child fails or skips.
    """
    values: list[Any] = []
    states: list[State] = []
    for child in children:
        result = child.result
        if isinstance(child, Success) and not isinstance(child, Skipped) and isinstance(result, (list, tuple)):
            values.extend(result)
            states.extend([child] * len(result))
        else:
            values.append(result)
            states.append(child)
    return values, states


def inputs_and_states(node: Node, nodes: Mapping[Task, Node]) -> tuple[dict[str, Any], dict[Edge, State] | None]:
    consts = node.consts
    if not node.edges_in:
        return (consts if consts is not None else {}), None
    inputs = dict(consts) if consts else {}
    upstream: dict[Edge, State] = {}
    for e in node.edges_in:
        state = nodes[e.upstream_task].state
        assert state is not None
        upstream[e] = state
        if e.key is not None:
            value = state.result
            if e.flattened and isinstance(state, Success):
                value = flatten_value(value, e.upstream_task.name)
            inputs[e.key] = value
    return inputs, upstream


def plan_children(node: MappedNode, nodes: Mapping[Task, Node]) -> int:
    """Fill ``node.df_getters`` (how child i gets each input) and return the width."""
    getters: list[tuple[str, Edge, Any]] = []
    widths: list[int] = []
    for e in node.edges_in:
        up = nodes[e.upstream_task]
        state = up.state
        if e.mapped and not e.flattened and up.width is not None:
            getters.append(("df", e, up))  # child i reads upstream child i
            widths.append(up.width)
        elif e.mapped and e.flattened and isinstance(state, Mapped):
            flat = flatten_children(state.map_states)  # judged child by child
            getters.append(("flat", e, flat))
            widths.append(len(flat[0]))
        elif e.mapped:
            assert state is not None
            value = state.result
            if e.flattened:
                value = flatten_value(value, up.task.name)
            if not is_mappable(value):
                raise TypeError(
                    f"argument {e.key or '(upstream)'!r} comes from {up.task.name!r} whose result "
                    f"{type(value).__name__} cannot be mapped over: map over a list "
                    "(or wrap the argument in unmapped())"
                )
            seq = list(value)
            getters.append(("seq", e, (seq, state)))
            widths.append(len(seq))
        else:
            assert state is not None
            getters.append(("whole", e, state))
    node.df_getters = getters
    return min(widths)


def child_inputs(node: MappedNode, i: int) -> tuple[dict[str, Any], dict[Edge, State]]:
    inputs = dict(node.consts) if node.consts else {}
    upstream: dict[Edge, State] = {}
    for kind, e, src in node.df_getters:
        if kind == "df":
            state = src.child_states[i]
            value = state.result
        elif kind == "seq":
            seq, state = src
            value = seq[i]
        elif kind == "flat":
            value = src[0][i]
            state = src[1][i]
        else:
            state = src
            value = state.result
        upstream[e] = state
        if e.key is not None:
            inputs[e.key] = value
    return inputs, upstream
