"""``aflow new-task FAMILY CLASS`` in a copy of the repository: what it writes passes every check as is.

The command writes a family module, its tests, a docs page, and the outline and nav entries; this
test then runs ruff, ruff format, mypy (strict), the new tests, the outline check and the docs'
examples in that copy, and the command's refusals.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(
    ".git", ".nox", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", ".benchmarks", "site"
)


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("repo") / "aflow"
    shutil.copytree(ROOT, target, ignore=SKIP)
    return target


def run(copy: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy)}
    return subprocess.run(
        [sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_new_task_writes_a_family_that_passes_every_check(copy: Path) -> None:
    outline_before = (copy / "docs" / "outline.toml").read_text()
    made = run(copy, "-m", "aflow._cli", "new-task", "acme_cloud", "GetWidget")
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines() == [
        f"wrote {Path('aflow_tasks/acme_cloud.py')}",
        f"wrote {Path('tests/aflow_tasks/test_acme_cloud.py')}",
        f"wrote {Path('docs/tasks/acme_cloud.md')}",
        f"wrote {Path('docs/outline.toml')}",
        f"wrote {Path('mkdocs.yml')}",
    ]
    outline = (copy / "docs" / "outline.toml").read_text()
    assert outline.startswith(outline_before)
    assert '[pages.tasks.acme_cloud]\ntitle = "Acme Cloud"\nmodule = "aflow_tasks.acme_cloud"' in outline
    assert "      - Acme Cloud: tasks/acme_cloud.md\n" in (copy / "mkdocs.yml").read_text()
    module = (copy / "aflow_tasks" / "acme_cloud.py").read_text()
    for kit in ("ClientFactory(", "map_errors(", "Failure(", "@defaults_from_attrs(", "async def run(", "is_lazy("):
        assert kit in module

    new_files = ["aflow_tasks/acme_cloud.py", "tests/aflow_tasks/test_acme_cloud.py"]
    lint = run(copy, "-m", "ruff", "check", *new_files)
    assert lint.returncode == 0, lint.stdout
    formatted = run(copy, "-m", "ruff", "format", "--check", *new_files)
    assert formatted.returncode == 0, formatted.stdout
    types = run(copy, "-m", "mypy", *new_files, timeout=300)
    assert types.returncode == 0, types.stdout
    tests = run(
        copy,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/aflow_tasks/test_acme_cloud.py",
        "tests/test_docs_outline.py",
        "tests/test_docs_examples.py",
        "tests/aflow_tasks/test_integration_kit.py",
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout.splitlines()[-1]
    assert "failed" not in tests.stdout.splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Acme", "GetWidget"], "FAMILY must be a lower-case module name such as acme or acme_cloud, not 'Acme'"),
        (["class", "GetWidget"], "FAMILY must be a lower-case module name"),
        (["acme", "get_widget"], "CLASS must be a CamelCase class name such as GetWidget, not 'get_widget'"),
        (["http", "Get"], "the family 'http' exists already"),
        (["aws", "Get"], "the family 'aws' exists already"),
    ],
)
def test_new_task_refuses_bad_names_and_taken_families(copy: Path, args: list[str], message: str) -> None:
    refused = run(copy, "-m", "aflow._cli", "new-task", *args)
    assert refused.returncode == 2
    assert refused.stderr.startswith("aflow: error: ")
    assert message in refused.stderr


def test_new_task_outside_a_checkout_says_where_to_run_it(tmp_path: Path) -> None:
    refused = run(ROOT, "-m", "aflow._cli", "new-task", "acme", "GetWidget", "--root", str(tmp_path))
    assert refused.returncode == 2
    assert f"{tmp_path} is not an aflow checkout" in refused.stderr
    assert "pass --root" in refused.stderr
    assert list(tmp_path.iterdir()) == []
