"""The public surface: sorted ``__all__`` tuples, ``__module__`` fixed up, docstrings, light imports."""

from __future__ import annotations

import ast
import importlib
import importlib.resources
import inspect
import json
import pkgutil
import re
import subprocess
import sys
import types
from typing import Any

import pytest

import aflow

PUBLIC_MODULES = (
    "aflow",
    "aflow.context",
    "aflow.executors",
    "aflow.exceptions",
    "aflow.cache_validators",
    "aflow.history",
    "aflow.integration",
    "aflow.results",
    "aflow.schedules",
    "aflow.secrets",
    "aflow.signals",
    "aflow.states",
    "aflow.testing",
    "aflow.triggers",
    "aflow_tasks",
)

# importing aflow must stay cheap: these belong to optional extras or to tests
HEAVY_MODULES = (
    "aiobotocore",
    "aiofiles",
    "cloudpickle",
    "dask",
    "distributed",
    "httpx",
    "hypothesis",
    "jinja2",
    "kubernetes_asyncio",
    "numpy",
    "pandas",
    "pendulum",
    "pytest",
)


def isort_key(name: str) -> tuple[int, list[Any]]:
    """The order of ruff's RUF022 (isort style): CONSTANTS, then Classes, then the rest, naturally."""
    if len(name) > 1 and name.upper() == name and name.lower() != name:
        kind = 0
    elif name[:1].isupper():
        kind = 1
    else:
        kind = 2
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return kind, natural


def test_isort_key_orders_like_ruff() -> None:
    names = ["b", "Task", "FAIL", "a2", "AflowSignal", "a10", "ENDRUN"]
    assert sorted(names, key=isort_key) == ["ENDRUN", "FAIL", "AflowSignal", "Task", "a2", "a10", "b"]


def public_names(module_name: str) -> list[tuple[str, str]]:
    module = importlib.import_module(module_name)
    return [(module_name, name) for name in module.__all__]


ALL_PUBLIC = [pair for m in PUBLIC_MODULES for pair in public_names(m)]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_is_a_sorted_tuple_of_existing_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = module.__all__
    assert isinstance(names, tuple)
    assert all(isinstance(n, str) for n in names)
    assert len(set(names)) == len(names), "duplicate names in __all__"
    assert list(names) == sorted(names, key=isort_key)
    missing = [n for n in names if not hasattr(module, n)]
    assert missing == []


def test_every_public_module_is_checked_here() -> None:
    # a module without a leading underscore is public API: list it in PUBLIC_MODULES
    found = {f"aflow.{m.name}" for m in pkgutil.iter_modules(aflow.__path__) if not m.name.startswith("_")}
    assert found <= set(PUBLIC_MODULES)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, Any] = {}
    exec("from aflow import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(aflow.__all__)


def test_top_level_classes_and_functions_claim_aflow_as_their_module() -> None:
    wrong = {
        name: getattr(aflow, name).__module__
        for name in aflow.__all__
        if not isinstance(getattr(aflow, name), types.ModuleType) and getattr(aflow, name).__module__ != "aflow"
    }
    assert wrong == {}


def test_public_modules_are_reexported_as_themselves() -> None:
    for name in ("context", "signals", "states", "triggers"):
        assert name in aflow.__all__
        assert getattr(aflow, name) is importlib.import_module(f"aflow.{name}")


def test_public_submodule_classes_keep_their_module() -> None:
    # only the top-level facade rewrites __module__; `aflow.states.Failed` stays where it lives
    for module_name in ("aflow.states", "aflow.signals", "aflow.testing"):
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type):
                assert obj.__module__ == module_name, (module_name, name)


def _has_attribute_docstring(module: types.ModuleType, name: str) -> bool:
    """Whether ``name`` is assigned in ``module`` and followed by a string literal (its docstring).

    A name re-exported with ``from ._private import name as name`` is looked up where it is defined.
    """
    tree = ast.parse(inspect.getsource(module))
    for stmt, nxt in zip(tree.body, [*tree.body[1:], None], strict=True):
        if isinstance(stmt, ast.ImportFrom) and any((a.asname or a.name) == name for a in stmt.names):
            source = importlib.import_module("." * stmt.level + (stmt.module or ""), module.__package__)
            original = next(a.name for a in stmt.names if (a.asname or a.name) == name)
            return _has_attribute_docstring(source, original)
        if isinstance(stmt, ast.Assign):
            targets = {t.id for t in stmt.targets if isinstance(t, ast.Name)}
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            targets = {stmt.target.id}
        else:
            continue
        if name in targets:
            return (
                isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)
            )
    return False


@pytest.mark.parametrize(("module_name", "name"), ALL_PUBLIC)
def test_every_public_name_has_a_docstring(module_name: str, name: str) -> None:
    module = importlib.import_module(module_name)
    obj = getattr(module, name)
    if isinstance(obj, (type, types.ModuleType)) or inspect.isroutine(obj):
        doc = obj.__doc__  # a class's own docstring: __doc__ is not inherited
        assert doc, f"{module_name}.{name} has no docstring"
        assert doc.strip()
    else:  # an alias or constant: documented by a string right after its assignment
        assert _has_attribute_docstring(module, name), f"{module_name}.{name} has no attribute docstring"


@pytest.mark.parametrize(("module_name", "name"), [p for p in ALL_PUBLIC if p[0] != "aflow"])
def test_public_methods_of_public_classes_have_docstrings(module_name: str, name: str) -> None:
    obj = getattr(importlib.import_module(module_name), name)
    if not isinstance(obj, type):
        return
    undocumented = []
    for attr, value in vars(obj).items():
        if attr.startswith("_"):
            continue
        fn = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
        if (isinstance(value, property) or inspect.isroutine(fn)) and not fn.__doc__:
            undocumented.append(attr)
    assert undocumented == []


def test_public_modules_have_docstrings() -> None:
    for module_name in PUBLIC_MODULES:
        assert importlib.import_module(module_name).__doc__, module_name


def test_version_is_a_string() -> None:
    assert isinstance(aflow.__version__, str)
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", aflow.__version__)


def _modules_after(statement: str) -> set[str]:
    code = f"{statement}; import json, sys; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("package", ["aflow", "aflow_tasks"])
def test_import_does_not_pull_in_heavy_modules(package: str) -> None:
    loaded = _modules_after(f"import {package}")
    assert package in loaded  # the probe really imported the package
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY_MODULES)
    assert heavy == []


def test_aflow_tasks_is_importable() -> None:
    import aflow_tasks

    assert isinstance(aflow_tasks.__all__, tuple)
    assert aflow_tasks.__doc__


@pytest.mark.parametrize("package", ["aflow", "aflow_tasks"])
def test_package_ships_py_typed(package: str) -> None:
    marker = importlib.resources.files(package).joinpath("py.typed")
    assert marker.is_file()
