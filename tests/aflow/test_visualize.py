"""`Flow.visualize`: DOT and Mermaid text, coloured by a run's states, maps as one node."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

from aflow import Flow, Parameter, task, unmapped
from aflow._surface._visualize import STATE_COLORS, FlowGraph, state_color
from aflow.states import Failed, Mapped, State, Success

X = "\N{MULTIPLICATION SIGN}"


def mapped_flow() -> Flow:
    @task
    async def nums(n):
        return list(range(n))

    @task
    async def inc(x, bad):
        if x == bad:
            raise ValueError(f"bad {x}")
        return x + 1

    @task
    async def total(xs):
        return sum(xs)

    with Flow("mapping") as flow:
        n = Parameter("n", default=5)
        total(inc.map(nums(n), bad=unmapped(3)))
    return flow


def node_line(dot: str, label_start: str) -> str:
    """The node whose label's first line is ``label_start``."""
    heads = (f'[label="{label_start}"', f'[label="{label_start}\\n')
    lines = [line for line in dot.splitlines() if "->" not in line and any(h in line for h in heads)]
    assert len(lines) == 1, dot
    return lines[0]


def node_id(dot: str, label_start: str) -> str:
    return node_line(dot, label_start).split()[0]


def test_dot_of_a_flow_without_a_run() -> None:
    flow = mapped_flow()
    dot = flow.visualize()
    assert isinstance(dot, FlowGraph)
    assert isinstance(dot, str)
    assert dot.startswith('digraph "mapping" {\n')
    assert dot.rstrip().endswith("}")
    assert "shape=parallelogram" in node_line(dot, "n")
    assert "peripheries=2" in node_line(dot, "inc (mapped)")
    assert "fillcolor" not in dot
    nums, inc, total = node_id(dot, "nums"), node_id(dot, "inc (mapped)"), node_id(dot, "total")
    assert f'{nums} -> {inc} [label="x", style=dashed];' in dot  # the mapped edge
    assert f'{inc} -> {total} [label="xs"];' in dot


async def test_dot_of_a_run_with_a_map_and_a_failed_task() -> None:
    flow = mapped_flow()
    state = await flow.run()
    assert state.is_failed()
    dot = flow.visualize(state)

    inc = node_line(dot, f"inc {X}5")  # one node for the map, with its number of children
    assert f'label="inc {X}5\\n4 Success, 1 Failed"' in inc
    assert f'fillcolor="{STATE_COLORS["Failed"]}"' in inc  # its worst child's colour
    assert 'tooltip="Mapped 5 children."' in inc

    total = node_line(dot, "total")
    assert 'label="total\\nTriggerFailed"' in total
    assert f'fillcolor="{STATE_COLORS["TriggerFailed"]}"' in total
    assert 'style="rounded,filled"' in total
    assert 'fontcolor="white"' in total

    nums = node_line(dot, "nums")
    assert 'label="nums\\nSuccess"' in nums
    assert f'fillcolor="{STATE_COLORS["Success"]}"' in nums
    assert dot.count("->") == 3
    assert len(re.findall(r"^\s+t\d+ \[", dot, re.M)) == 4  # n, nums, inc, total (plain values are no nodes)


async def test_a_map_without_failures_has_the_mapped_colour() -> None:
    @task
    async def double(x):
        return 2 * x

    with Flow("ok") as flow:
        double.map([1, 2, 3])
    state = await flow.run()
    line = node_line(flow.visualize(state), f"double {X}3")
    assert f'label="double {X}3\\n3 Success"' in line
    assert f'fillcolor="{STATE_COLORS["Mapped"]}"' in line


async def test_mermaid_text() -> None:
    flow = mapped_flow()
    plain = flow.visualize(format="mermaid")
    assert isinstance(plain, FlowGraph)
    assert plain.language == "mermaid"
    assert plain.startswith("flowchart TD\n")
    assert '[/"n"/]' in plain
    assert '[["inc (mapped)"]]' in plain
    assert re.search(r't\d+ -\.->\|"x"\| t\d+', plain)  # mapped edges are dotted
    assert re.search(r't\d+ -->\|"xs"\| t\d+', plain)
    assert "style " not in plain

    state = await flow.run()
    coloured = flow.visualize(state, format="mermaid")
    match = re.search(rf'(t\d+)\[\["inc {X}5<br/>4 Success, 1 Failed"\]\]', coloured)
    assert match, coloured
    assert f"style {match.group(1)} fill:{STATE_COLORS['Failed']},color:#fff" in coloured
    assert '("total<br/>TriggerFailed")' in coloured
    assert coloured._repr_markdown_() == f"```mermaid\n{coloured}```\n"


def test_labels_are_escaped() -> None:
    @task(name='say "hi" <now>')
    async def odd():
        return 1

    with Flow("quotes") as flow:
        odd()
    assert 'label="say \\"hi\\" <now>"' in flow.visualize()
    assert '("say #quot;hi#quot; &lt;now&gt;")' in flow.visualize(format="mermaid")


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="format must be 'dot' or 'mermaid'"):
        mapped_flow().visualize(format="svg")  # type: ignore[arg-type]


def test_text_files(tmp_path: Path) -> None:
    flow = mapped_flow()
    dot = flow.visualize(filename=tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text() == dot
    mermaid = flow.visualize(format="mermaid", filename=tmp_path / "g.mmd")
    assert (tmp_path / "g.mmd").read_text() == mermaid
    flow.visualize(filename=tmp_path / "g2.mmd")  # the file's suffix decides what is written
    assert (tmp_path / "g2.mmd").read_text() == mermaid
    with pytest.raises(ValueError, match="cannot tell what to write"):
        flow.visualize(filename=tmp_path / "g.unknown")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot program is not installed")
def test_images_with_graphviz(tmp_path: Path) -> None:
    pytest.importorskip("graphviz")
    flow = mapped_flow()
    flow.visualize(filename=tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")
    flow.visualize(filename=tmp_path / "g.svg")
    assert "<svg" in (tmp_path / "g.svg").read_text()
    svg = flow.visualize()._repr_svg_()
    assert svg is not None
    assert "<svg" in svg
    assert "inc (mapped)" in svg
    assert flow.visualize(format="mermaid")._repr_svg_() is None


def test_images_without_the_dot_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("graphviz")
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on it
    flow = mapped_flow()
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        flow.visualize(filename=tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()
    assert flow.visualize()._repr_svg_() is None  # Jupyter then shows the text


def test_images_without_the_graphviz_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz raises ImportError
    flow = mapped_flow()
    with pytest.raises(ImportError, match=r"pip install 'aflow-engine\[viz\]'"):
        flow.visualize(filename=tmp_path / "g.svg")
    assert flow.visualize()._repr_svg_() is None


def test_state_colours() -> None:
    assert state_color(Success()) == STATE_COLORS["Success"]
    assert state_color(Failed()) == STATE_COLORS["Failed"]
    assert state_color(Mapped()) == STATE_COLORS["Mapped"]

    class Custom(Failed):
        color = "#123456"

    class Inherits(Custom):
        pass

    class Unknown(State):
        pass

    assert state_color(Custom()) == "#123456"
    assert state_color(Inherits()) == "#123456"
    assert state_color(Unknown()) == State.color


def test_ipython_pretty_prints_the_text() -> None:
    printed: list[str] = []

    class Printer:
        def text(self, value: str) -> None:
            printed.append(value)

    graph = mapped_flow().visualize()
    graph._repr_pretty_(Printer(), False)
    assert printed == [str(graph)]
    assert graph._repr_markdown_() is None
