"""Every ```python block of the docs runs as is: each in a fresh interpreter, warnings as errors.

A block preceded by a ``<!-- no-run -->`` line (blank lines between are allowed) is left out:
use that only for fragments that cannot run on their own (a network service...).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# every page under docs/ (guides and task pages included) except the generated API reference
DOCS = [*sorted(p for p in (ROOT / "docs").glob("**/*.md") if "reference" not in p.parts), ROOT / "README.md"]
TIMEOUT = 60  # seconds for one block
NO_RUN = "<!-- no-run -->"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """The ```python blocks of a Markdown text: (first line number, code, skipped?)."""
    lines = text.splitlines()
    blocks: list[tuple[int, str, bool]] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        words = opening["info"].split()
        language = words[0].lower() if words else ""
        start = i + 1
        end = start
        while end < len(lines) and not re.match(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", lines[end]):
            end += 1
        if language in ("python", "py", "python3"):
            before = [line.strip() for line in lines[:i] if line.strip()]
            skipped = bool(before) and before[-1] == NO_RUN
            code = "\n".join(line[indent:] if line[:indent].isspace() else line for line in lines[start:end])
            blocks.append((start + 1, code + "\n", skipped))
        i = end + 1
    return blocks


def _cases() -> list[object]:
    cases: list[object] = []
    for path in DOCS:
        if not path.is_file():
            continue
        name = path.relative_to(ROOT).as_posix()
        for index, (line, code, skipped) in enumerate(python_blocks(path.read_text(encoding="utf-8"))):
            if not skipped:  # a no-run fragment (it needs a real cloud service) makes no test case
                cases.append(pytest.param(name, line, code, id=f"{name}-{index}"))
    return cases


def test_the_docs_have_examples() -> None:
    assert len(_cases()) >= 5


def test_the_extractor_sees_blocks_and_markers() -> None:
    text = "intro\n```python\na = 1\n```\n\n<!-- no-run -->\n\n```python\nb = 2\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(3, "a = 1\n", False), (9, "b = 2\n", True)]


@pytest.mark.parametrize(("doc", "line", "code"), _cases())
def test_docs_example_runs(doc: str, line: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    work = tmp_path / "cwd"
    work.mkdir()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["HOME"] = str(tmp_path / "home")  # a result store with no dir= stays inside tmp_path
    try:
        done = subprocess.run(
            [sys.executable, "-W", "error", str(script)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{doc}, block at line {line}: still running after {TIMEOUT} s")
    output = f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, f"{doc}, block at line {line} exited with {done.returncode}\n{output}"
