"""The task library builds on aflow's public surface only (`aflow.integration` and the other public modules)."""

from __future__ import annotations

import ast
from pathlib import Path

import aflow_tasks


def is_private_aflow_name(dotted: str) -> bool:
    package, *rest = dotted.split(".")
    return package == "aflow" and any(part.startswith("_") for part in rest)


def private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found += [f"{path.name}:{node.lineno} {m}" for m in modules if is_private_aflow_name(m)]
    return found


def test_no_family_imports_a_private_aflow_name() -> None:
    root = Path(aflow_tasks.__file__).parent
    assert [hit for path in sorted(root.rglob("*.py")) for hit in private_imports(path)] == []


def test_the_check_sees_a_private_import(tmp_path: Path) -> None:
    source = tmp_path / "family.py"
    source.write_text("from aflow._defaults import is_lazy\nimport aflow._shielded\nfrom aflow import _task\n")
    assert private_imports(source) == [
        "family.py:1 aflow._defaults",
        "family.py:1 aflow._defaults.is_lazy",
        "family.py:2 aflow._shielded",
        "family.py:3 aflow._task",
    ]
