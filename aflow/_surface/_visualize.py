"""`Flow.visualize`: the flow's graph as Graphviz DOT or Mermaid text, optionally coloured by a run.

Text needs nothing installed. Images (``filename="flow.png"``) are drawn by Graphviz: the
``graphviz`` Python package (``pip install aflow-engine[viz]``) and its ``dot`` program
(``apt-get install graphviz``). In Jupyter the returned text displays as a picture: DOT as SVG
when Graphviz is there, Mermaid as a fenced ``mermaid`` block that JupyterLab draws.

A mapped task is one node, labelled with its number of children (``inc \u00d71000``) once a run
tells it, with their states summarised (``998 Success, 2 Failed``) and its worst child's colour.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .._model._builtin_tasks import Constant, Parameter
from ..states import Failed, Mapped, State
from ._run_tracker import TIMES

if TYPE_CHECKING:
    from .._model._flow import Flow
    from .._model._task import Task

__all__ = ("STATE_COLORS", "FlowGraph", "state_color", "visualize")

GraphFormat = Literal["dot", "mermaid"]

# fill colours by state class name; the nearest class in a state's MRO wins
STATE_COLORS: dict[str, str] = {
    "Pending": "#d9d9d9",
    "Scheduled": "#d9d9d9",
    "Retrying": "#ffb74d",
    "Running": "#64b5f6",
    "Success": "#4caf50",
    "Cached": "#26a69a",
    "Mapped": "#81c784",
    "Skipped": "#b0bec5",
    "Failed": "#e53935",
    "TimedOut": "#ef6c00",
    "TriggerFailed": "#c62828",
    "Looped": "#ba68c8",
    "Cancelled": "#9e9e9e",
}
_DARK = {"Failed", "TimedOut", "TriggerFailed", "Success", "Cached"}  # white text on these fills

_IMAGE_SUFFIXES = frozenset({"png", "svg", "pdf", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff", "ps", "eps"})
_IMAGE_HELP = "pip install 'aflow-engine[viz]'"
_DOT_HELP = "apt-get install graphviz (macOS: brew install graphviz)"


def state_color(state: State) -> str:
    """The fill colour of ``state``: a ``color`` its class sets, else the palette's."""
    for cls in type(state).__mro__:
        if cls is State:
            break
        if "color" in vars(cls):
            return str(vars(cls)["color"])
        if cls.__name__ in STATE_COLORS:
            return STATE_COLORS[cls.__name__]
    return State.color


def _color_name(state: State) -> str:
    for cls in type(state).__mro__:
        if cls.__name__ in STATE_COLORS:
            return cls.__name__
    return ""


class FlowGraph(str):
    """The text of a flow's graph (DOT or Mermaid), shown as a picture in Jupyter.

    It is a ``str``: print it, write it, compare it. ``language`` says which one it is in.
    """

    language: GraphFormat
    dot: str  # the DOT text of the same graph, for images

    def __new__(cls, text: str, language: GraphFormat, dot: str) -> FlowGraph:
        self = super().__new__(cls, text)
        self.language = language
        self.dot = dot
        return self

    def _repr_svg_(self) -> str | None:
        if self.language != "dot" or not _can_render():
            return None
        return render(self.dot, "svg").decode()

    def _repr_markdown_(self) -> str | None:
        if self.language != "mermaid":
            return None
        return f"```mermaid\n{self}```\n"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


# -- the graph, independent of the language ---------------------------------------------------


class _NodeInfo:
    __slots__ = ("color", "dark", "kind", "label", "tooltip")

    def __init__(self, label: str, kind: str, color: str | None, dark: bool, tooltip: str | None) -> None:
        self.label = label  # lines joined with "\n"
        self.kind = kind  # "task", "map", "parameter" or "constant"
        self.color = color
        self.dark = dark
        self.tooltip = tooltip


def _summary(states: list[State]) -> str:
    counts = Counter(type(s).__name__ for s in states)
    return ", ".join(f"{n} {name}" for name, n in counts.most_common())


def _node(task: Task, state: State | None, is_mapped: bool) -> _NodeInfo:
    name = task.name
    kind = "parameter" if isinstance(task, Parameter) else "constant" if isinstance(task, Constant) else "task"
    if is_mapped:
        kind = "map"
    if state is None:
        label = f"{name} (mapped)" if is_mapped else name
        return _NodeInfo(label, kind, None, False, None)
    shown = state
    if is_mapped and isinstance(state, Mapped):
        children = list(state.map_states)
        label = f"{name} {TIMES}{len(children)}"
        if children:
            label += "\n" + _summary(children)
        worst = next((s for s in children if isinstance(s, Failed)), None)
        if worst is not None:
            shown = worst
        tooltip = state.message
    else:
        label = f"{name}\n{type(state).__name__}"
        tooltip = state.message
    return _NodeInfo(label, kind, state_color(shown), _color_name(shown) in _DARK, tooltip)


def _graph(
    flow: Flow, flow_state: State | None
) -> tuple[list[tuple[Task, _NodeInfo]], list[tuple[int, int, str, bool]]]:
    states: dict[Any, State] = {}
    if flow_state is not None and isinstance(flow_state.result, dict):
        states = flow_state.result
    tasks = flow.sorted_tasks()
    index = {t: i for i, t in enumerate(tasks)}
    mapped = {e.downstream_task for e in flow.graph.edges if e.mapped}
    nodes = [(t, _node(t, states.get(t), t in mapped)) for t in tasks]
    edges: list[tuple[int, int, str, bool]] = []
    for t in tasks:
        for e in flow.graph.edges_into(t):
            label = e.key or ""
            if e.flattened:
                label = f"{label} (flattened)".strip()
            edges.append((index[e.upstream_task], index[t], label, e.mapped))
    return nodes, edges


# -- DOT --------------------------------------------------------------------------------------


def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_DOT_SHAPES = {
    "task": "shape=box",
    "map": "shape=box, peripheries=2",
    "parameter": "shape=parallelogram",
    "constant": "shape=note",
}


def to_dot(flow: Flow, flow_state: State | None = None) -> str:
    """The flow's graph in Graphviz DOT."""
    nodes, edges = _graph(flow, flow_state)
    lines = [
        f"digraph {_dot_str(flow.name)} {{",
        "    rankdir=TB;",
        '    node [fontname="Helvetica", fontsize=11];',
        '    edge [fontname="Helvetica", fontsize=9];',
    ]
    for i, (_, info) in enumerate(nodes):
        attrs = [f"label={_dot_str(info.label)}", _DOT_SHAPES[info.kind]]
        style = ["rounded"] if info.kind in ("task", "map") else []
        if info.color is not None:
            style.append("filled")
            attrs.append(f'fillcolor="{info.color}"')
            if info.dark:
                attrs.append('fontcolor="white"')
        if style:
            attrs.append(f'style="{",".join(style)}"')
        if info.tooltip:
            attrs.append(f"tooltip={_dot_str(info.tooltip)}")
        lines.append(f"    t{i} [{', '.join(attrs)}];")
    for up, down, label, is_mapped in edges:
        attrs = []
        if label:
            attrs.append(f"label={_dot_str(label)}")
        if is_mapped:
            attrs.append("style=dashed")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"    t{up} -> t{down}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- Mermaid ----------------------------------------------------------------------------------


def _mermaid_str(text: str) -> str:
    escaped = text.replace("&", "&amp;").replace('"', "#quot;").replace("<", "&lt;").replace(">", "&gt;")
    return '"' + escaped.replace("\n", "<br/>") + '"'


_MERMAID_SHAPES = {"task": ("(", ")"), "map": ("[[", "]]"), "parameter": ("[/", "/]"), "constant": ("[", "]")}


def to_mermaid(flow: Flow, flow_state: State | None = None) -> str:
    """The flow's graph as a Mermaid flowchart."""
    nodes, edges = _graph(flow, flow_state)
    lines = ["flowchart TD"]
    styles: list[str] = []
    for i, (_, info) in enumerate(nodes):
        left, right = _MERMAID_SHAPES[info.kind]
        lines.append(f"    t{i}{left}{_mermaid_str(info.label)}{right}")
        if info.color is not None:
            styles.append(f"    style t{i} fill:{info.color},color:{'#fff' if info.dark else '#000'}")
    for up, down, label, is_mapped in edges:
        arrow = "-.->" if is_mapped else "-->"
        text = f"|{_mermaid_str(label)}|" if label else ""
        lines.append(f"    t{up} {arrow}{text} t{down}")
    return "\n".join(lines + styles) + "\n"


# -- images -----------------------------------------------------------------------------------


def _can_render() -> bool:
    try:
        import graphviz  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def render(dot: str, image_format: str) -> bytes:
    """Draw DOT text as an image (``"png"``, ``"svg"``, ``"pdf"``...) with Graphviz.

    Raises:
        ImportError: The graphviz package is not installed.
        RuntimeError: Graphviz's ``dot`` program is not installed.
    """
    try:
        import graphviz  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:
        raise ImportError(f"Drawing a flow as an image needs the graphviz package: {_IMAGE_HELP}") from exc
    try:
        data: bytes = graphviz.Source(dot).pipe(format=image_format)
    except graphviz.ExecutableNotFound as exc:
        raise RuntimeError(f"Drawing a flow as an image needs Graphviz's `dot` program: {_DOT_HELP}") from exc
    return data


def visualize(
    flow: Flow,
    flow_state: State | None = None,
    *,
    format: GraphFormat = "dot",
    filename: str | os.PathLike[str] | None = None,
) -> FlowGraph:
    """The flow's graph as text, written to ``filename`` when given (see `Flow.visualize`)."""
    if format not in ("dot", "mermaid"):
        raise ValueError(f"format must be 'dot' or 'mermaid', not {format!r}")
    dot = to_dot(flow, flow_state)
    graph = FlowGraph(dot if format == "dot" else to_mermaid(flow, flow_state), format, dot)
    if filename is not None:
        path = Path(filename)
        suffix = path.suffix.lower().lstrip(".")
        if suffix in ("dot", "gv"):
            path.write_text(dot, encoding="utf-8")
        elif suffix in ("mmd", "mermaid"):
            path.write_text(graph if format == "mermaid" else to_mermaid(flow, flow_state), encoding="utf-8")
        elif suffix in _IMAGE_SUFFIXES:
            path.write_bytes(render(dot, suffix))
        else:
            raise ValueError(
                f"cannot tell what to write to {os.fspath(filename)!r}: "
                "name a .dot/.gv or .mmd file for text, or a .png/.svg/.pdf... file for an image"
            )
    return graph
