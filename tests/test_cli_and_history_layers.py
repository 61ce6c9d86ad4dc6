"""The CLI, the run-history store and ``serve`` keep the shape issue 20 gave them.

Measured with ``scripts/arch_metrics.py`` on this tree's source: no import cycle touching these
modules, counting imports inside functions; no module over 600 lines; no function over 80 lines;
the CLI's shared helpers import no command module.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from tests.test_architecture import _arch_metrics

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aflow._surface._cli", "aflow._surface._ui", "aflow._persist._history", "aflow._schedules")
FOLDERS = tuple(p.replace(".", "/") + "/" for p in PACKAGES)


@pytest.fixture(scope="module")
def metrics() -> Any:
    return _arch_metrics().measure()


def _ours(module: str) -> bool:
    return module == "aflow._cli" or any(module == p or module.startswith(p + ".") for p in PACKAGES)


def test_no_import_cycle_touches_the_cli_the_history_store_or_serve(metrics: Any) -> None:
    assert [cycle for cycle in metrics.cycles if any(map(_ours, cycle))] == []


def test_the_cli_the_history_store_and_serve_have_no_long_modules_or_functions(metrics: Any) -> None:
    assert [line for line in metrics.long_modules if line.startswith(FOLDERS)] == []
    assert [line for line in metrics.long_functions if line.startswith(FOLDERS)] == []


def _imported_cli_modules(path: Path) -> set[str]:
    """The ``aflow._surface`` modules a CLI module imports (anywhere in it, inside functions too)."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative to aflow._surface._cli
                anchor = ["aflow", "_surface", "_cli"][: 4 - node.level]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            imported.update(f"{base}.{alias.name}" if not node.module else base for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    return {name for name in imported if name.startswith("aflow._surface.")}


@pytest.mark.parametrize("helper", ["_errors", "_run_store", "_text"])
def test_the_cli_helpers_import_no_command_module(helper: str) -> None:
    path = ROOT / "aflow" / "_surface" / "_cli" / f"{helper}.py"
    assert _imported_cli_modules(path) <= {"aflow._surface._cli._errors"}


def test_the_cli_command_modules_are_seen_importing_the_helpers() -> None:
    path = ROOT / "aflow" / "_surface" / "_cli" / "_history_commands.py"
    assert {"aflow._surface._cli._errors", "aflow._surface._cli._run_store"} <= _imported_cli_modules(path)
