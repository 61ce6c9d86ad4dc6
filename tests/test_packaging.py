"""The package as users meet it: its distribution name, every install line, CI's wheel check, offline docs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
DIST = "aflow-engine"  # the name `aflow` on the package index is an unrelated project

# `pip install aflow`, `pip install 'aflow[http]'`, "aflow[cli]"...: our package under the wrong name
WRONG_NAME = re.compile(r"""pip install\s+["']?aflow(?![-\w])|(?<![-\w.])aflow\[""")


def read(relative: str) -> str:
    return (ROOT / relative).read_text()


def test_the_distribution_has_a_name_of_its_own_and_keeps_the_import_names() -> None:
    project = tomllib.loads(read("pyproject.toml"))
    assert project["project"]["name"] == DIST
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["aflow", "aflow_tasks"]
    assert project["project"]["scripts"] == {"aflow": "aflow._cli:main"}
    # the test and dev extras pull the family extras through the package's own name
    own = [req for reqs in project["project"]["optional-dependencies"].values() for req in reqs if "[" in req]
    assert own
    assert all(req.startswith(f"{DIST}[") for req in own if req.split("[")[0] in {"aflow", DIST}), own


def test_every_install_line_names_the_distribution() -> None:
    files = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("examples/*.py")]
    files += [*ROOT.glob("aflow/**/*.py"), *ROOT.glob("aflow_tasks/**/*.py")]
    wrong = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in files
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if WRONG_NAME.search(line)
    ]
    assert wrong == []
    hints = sum(f"pip install {DIST}[" in path.read_text() for path in files)
    assert hints >= 20  # the extras' error hints and the docs' install lines use the new name


def test_ci_runs_the_readme_test_command_verbatim_then_checks_the_wheel_outside_the_tree() -> None:
    readme, ci, wheel = read("README.md"), read(".ci/run"), read(".ci/wheel")
    command = "python -m pip install -e '.[test]' && python -m pytest"
    assert command in readme
    assert command in ci.splitlines()
    assert ci.index(command) < ci.index("bash .ci/wheel")
    assert "-m build -q --no-isolation" in wheel  # sdist, then the wheel built from it
    assert 'python -m venv "$work/venv"' in wheel  # a fresh venv, nothing of the source tree on its path
    assert '-m pip install -q "$wheel[cli]"' in wheel  # with one extra
    assert 'cp examples/demo.py "$work/run/"' in wheel
    assert 'cd "$work/run"' in wheel
    assert "unset PYTHONPATH" in wheel


def test_readme_names_every_program_the_tests_need_beyond_pip() -> None:
    readme, ci = read("README.md"), read(".ci/run")
    installs = re.findall(r"apt-get install[^\n]*", ci)
    assert installs
    packages = {word for line in installs for word in line.split()[2:] if not word.startswith("-") and word.isalnum()}
    assert {"graphviz", "openssl"} <= packages
    for package in sorted(packages):
        assert package in readme, f"README does not say the tests need {package} (.ci/run installs it)"
    assert "Graphviz's `dot`" in readme


def test_the_docs_site_links_no_external_fonts_or_assets() -> None:
    config = read("mkdocs.yml")
    theme = config.split("\ntheme:\n", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"^  font: false$", theme, re.M), "Material links Google Fonts unless theme.font is false"
    assert "extra_css" not in config
    assert "extra_javascript" not in config
    assert not re.search(r"https?://", config)
