"""Measure the architecture rules of docs/internals.md on the source tree.

Run ``python scripts/arch_metrics.py`` (``--json`` for machine-readable output). It reports:

- import cycles among ``aflow``'s modules, counting imports inside functions (imports under
  ``if TYPE_CHECKING:`` are not executed and are reported apart);
- imports of private ``aflow._*`` modules or names from ``aflow_tasks``;
- reads of another class's private attributes across modules in ``aflow/``: ``obj._name`` where
  ``obj`` is not ``self``/``cls`` and no class of the same module defines ``_name``;
- modules over 600 lines and functions over 80 lines, in ``aflow`` and ``aflow_tasks``.

``tests/test_architecture.py`` runs the same measures and holds the limits.
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


@dataclass
class Metrics:
    """What one measure of the tree found."""

    cycles: list[list[str]] = field(default_factory=list)
    type_only_cycles: list[list[str]] = field(default_factory=list)
    private_imports: list[str] = field(default_factory=list)
    private_reads: list[str] = field(default_factory=list)
    long_modules: list[str] = field(default_factory=list)
    long_functions: list[str] = field(default_factory=list)


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module at *path* (relative to the repository *root*)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources(root: Path, package: str) -> Iterator[Path]:
    """Every ``.py`` file of *package* under *root*, sorted."""
    yield from sorted((root / package).rglob("*.py"))


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    if hasattr(sub, "lineno"):
                        lines.add(sub.lineno)
    return lines


def _imports(path: Path, root: Path, tree: ast.Module, modules: set[str]) -> Iterator[tuple[str, bool]]:
    """(imported aflow module, type-checking only) for every import in *tree*."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    type_only = _type_checking_lines(tree)
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t if t in modules else base for t in targets]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target, node.lineno in type_only


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _owned_private_names(tree: ast.Module) -> set[str]:
    """Private attribute names some class or the module itself defines in *tree*."""
    owned: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in ast.walk(node):
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("_"):
                    owned.add(item.name)
                elif isinstance(item, ast.AnnAssign | ast.Assign):
                    for target in item.targets if isinstance(item, ast.Assign) else [item.target]:
                        if isinstance(target, ast.Name):
                            owned.add(target.id)
                elif isinstance(item, ast.Constant) and isinstance(item.value, str) and item.value.startswith("_"):
                    owned.add(item.value)  # __slots__ entries
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in {"self", "cls", "obj", "new"}
        ):
            owned.add(node.attr)
    return owned


def _private_reads(path: Path, root: Path, tree: ast.Module) -> Iterator[str]:
    owned = _owned_private_names(tree)
    # names bound by imports: a private name read through one of aflow's modules counts, one read
    # through a third-party or standard module (``sys._getframe``) does not
    outside: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            outside.update((a.asname or a.name).split(".")[0] for a in node.names if not a.name.startswith("aflow"))
        elif isinstance(node, ast.ImportFrom) and not node.level and not (node.module or "").startswith("aflow"):
            outside.update(a.asname or a.name for a in node.names)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        base = node.value
        if isinstance(base, ast.Name) and (base.id in {"self", "cls"} or base.id in outside):
            continue  # own attributes, or a name of a third-party or standard module
        if node.attr in owned:
            continue
        line = path.read_text().splitlines()[node.lineno - 1].strip()
        justified = "# private-read:" in line or "# private-read:" in _previous_line(path, node.lineno)
        yield f"{path.relative_to(root)}:{node.lineno} {ast.unparse(node)}{'' if justified else ' (no comment)'}"


def _previous_line(path: Path, lineno: int) -> str:
    lines = path.read_text().splitlines()
    return lines[lineno - 2] if lineno >= 2 else ""


def measure(root: Path = ROOT) -> Metrics:
    """Measure the tree of the repository at *root*."""
    metrics = Metrics()
    files = {module_name(p, root): p for p in sources(root, "aflow")}
    modules = set(files)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    full: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        for target, type_only in _imports(path, root, tree, modules):
            full[name].add(target)
            if not type_only:
                graph[name].add(target)
        metrics.private_reads.extend(_private_reads(path, root, tree))
    metrics.cycles = _cycles(graph)
    metrics.type_only_cycles = [c for c in _cycles(full) if c not in metrics.cycles]
    for path in sources(root, "aflow_tasks"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            if any(n.startswith("aflow.") and any(p.startswith("_") for p in n.split(".")[1:]) for n in names):
                metrics.private_imports.append(f"{path.relative_to(root)}:{node.lineno} {ast.unparse(node)}")
    for path in [*sources(root, "aflow"), *sources(root, "aflow_tasks")]:
        text = path.read_text()
        if (count := len(text.splitlines())) > MAX_MODULE_LINES:
            metrics.long_modules.append(f"{path.relative_to(root)} {count}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    metrics.long_functions.append(f"{path.relative_to(root)}:{node.lineno} {node.name} {length}")
    return metrics


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main() -> None:
    """Print the measures."""
    metrics = measure()
    if "--json" in sys.argv:
        _say(json.dumps(metrics.__dict__, indent=2))
        return
    _say(f"import cycles (runtime, incl. function-level): {len(metrics.cycles)}")
    for cycle in metrics.cycles:
        _say(f"  {len(cycle)} modules: {' '.join(cycle)}")
    _say(f"import cycles only through TYPE_CHECKING imports: {len(metrics.type_only_cycles)}")
    for cycle in metrics.type_only_cycles:
        _say(f"  {len(cycle)} modules: {' '.join(cycle)}")
    _say(f"aflow._* imports from aflow_tasks: {len(metrics.private_imports)}")
    for line in metrics.private_imports:
        _say(f"  {line}")
    _say(f"cross-module private attribute reads in aflow/: {len(metrics.private_reads)}")
    for line in metrics.private_reads:
        _say(f"  {line}")
    _say(f"modules over {MAX_MODULE_LINES} lines: {len(metrics.long_modules)}")
    for line in metrics.long_modules:
        _say(f"  {line}")
    _say(f"functions over {MAX_FUNCTION_LINES} lines: {len(metrics.long_functions)}")
    for line in metrics.long_functions:
        _say(f"  {line}")


if __name__ == "__main__":
    main()
