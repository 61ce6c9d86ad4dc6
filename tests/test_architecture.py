"""The architecture rules of docs/internals.md hold on this tree, and the measure finds breaches.

The numbers come from ``scripts/arch_metrics.py`` (``python scripts/arch_metrics.py`` prints them):
import cycles among aflow's modules counting imports inside functions, private imports from the
task library, reads of another class's private attributes, module and function lengths.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_PRIVATE_READS = 5
MAX_LONG_FUNCTIONS = 3


def _arch_metrics() -> ModuleType:
    if "arch_metrics" in sys.modules:
        return sys.modules["arch_metrics"]
    spec = importlib.util.spec_from_file_location("arch_metrics", ROOT / "scripts" / "arch_metrics.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["arch_metrics"] = module  # its dataclass looks the module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def metrics() -> Any:
    return _arch_metrics().measure(ROOT)


def test_no_import_cycle_among_aflows_modules_counting_imports_inside_functions(metrics: Any) -> None:
    assert metrics.cycles == []


def test_the_task_library_imports_nothing_private_of_the_core(metrics: Any) -> None:
    assert metrics.private_imports == []


def test_few_private_reads_across_modules_each_justified(metrics: Any) -> None:
    assert len(metrics.private_reads) <= MAX_PRIVATE_READS, metrics.private_reads
    assert [r for r in metrics.private_reads if r.endswith("(no comment)")] == []


def test_modules_and_functions_stay_small(metrics: Any) -> None:
    assert metrics.long_modules == []
    assert len(metrics.long_functions) <= MAX_LONG_FUNCTIONS, metrics.long_functions


def test_the_model_reaches_the_engine_only_through_its_entry() -> None:
    am = _arch_metrics()
    files = {am.module_name(p, ROOT): p for p in am.sources(ROOT, "aflow")}
    modules = set(files)
    reached: dict[str, set[str]] = {}
    for name, path in files.items():
        if name.startswith("aflow._model."):
            tree = am.ast.parse(path.read_text())
            engine = {t for t, type_only in am._imports(path, ROOT, tree, modules) if not type_only}
            reached[name] = {t for t in engine if t.startswith("aflow._engine")}
    assert set().union(*reached.values()) == {"aflow._engine._entry"}


def _toy_repo(tmp_path: Path) -> Path:
    files = {
        "aflow/__init__.py": "",
        "aflow/a.py": "from .b import thing\n",
        "aflow/b.py": "def thing():\n    from .a import other  # inside a function: still a cycle\n",
        "aflow/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import D\n",
        "aflow/d.py": "from .c import C\n",
        "aflow/e.py": textwrap.dedent(
            """\
            import sys
            def f(flow, task):
                sys._getframe()  # a standard module's private name: not counted
                x = flow._tasks
                # private-read: justified here
                return task._run_spec
            """
        ),
        "aflow_tasks/__init__.py": "",
        "aflow_tasks/fam.py": "from aflow._model._defaults import is_lazy\nfrom aflow import integration\n",
        "aflow/long.py": "def f():\n" + "    x = 1\n" * 90 + "\n" * 520,
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_measure_finds_each_kind_of_breach(tmp_path: Path) -> None:
    found = _arch_metrics().measure(_toy_repo(tmp_path))
    assert found.cycles == [["aflow.a", "aflow.b"]]
    assert found.type_only_cycles == [["aflow.c", "aflow.d"]]
    assert found.private_imports == ["aflow_tasks/fam.py:1 from aflow._model._defaults import is_lazy"]
    assert found.private_reads == ["aflow/e.py:4 flow._tasks (no comment)", "aflow/e.py:6 task._run_spec"]
    assert found.long_modules == ["aflow/long.py 611"]
    assert found.long_functions == ["aflow/long.py:1 f 91"]
