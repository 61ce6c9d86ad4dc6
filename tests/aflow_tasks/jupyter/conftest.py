"""Notebooks for the ExecuteNotebook tests, written once per session; helpers to find kernels in /proc."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

nbformat: Any = importlib.import_module("nbformat")  # untyped functions


def code(source: str, *tags: str) -> Any:
    cell = nbformat.v4.new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def notebook(path: Path, *cells: Any, kernel: str = "python3") -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nb.cells = list(cells)
    nbformat.write(nb, str(path))
    return str(path)


@pytest.fixture(scope="session")
def notebooks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The test notebooks by name (paths)."""
    root = tmp_path_factory.mktemp("notebooks")
    return {
        "params": notebook(
            root / "params.ipynb",
            nbformat.v4.new_markdown_cell("# Doubling"),
            code("a = 1\nname = 'x'", "parameters"),
            code("print(f'{name}:{a * 2}')\nf'result={a * 10}'"),
        ),
        "noparams": notebook(root / "noparams.ipynb", code("print(f'got {a!r}')")),
        "raises": notebook(
            root / "raises.ipynb", code("x = 41"), code("raise KeyError(f'missing {x + 1}')"), code("print('never')")
        ),
        "gated": notebook(
            root / "gated.ipynb",
            code("gate = ''", "parameters"),
            code("print('first cell done', flush=True)"),
            code("import os, time\nwhile not os.path.exists(gate):\n    time.sleep(0.05)\nprint('second cell done')"),
        ),
        "forever": notebook(
            root / "forever.ipynb",
            code("pidfile = ''", "parameters"),
            code(
                "import os, subprocess\nchild = subprocess.Popen(['sleep', '300'])\n"
                "open(pidfile, 'w').write(f'{os.getpid()} {child.pid}')\nprint('kernel up', flush=True)"
            ),
            code("import time\nwhile True:\n    time.sleep(0.1)"),
        ),
        "other_kernel": notebook(
            root / "other_kernel.ipynb", code("import sys\nprint(sys.version_info[0])"), kernel="no-such-kernel"
        ),
    }


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


def child_kernels() -> list[int]:
    """Live child processes of this process that run an ipykernel."""
    me = str(os.getpid()).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[1] == me and b"ipykernel" in cmdline and fields[0] not in (b"Z", b"X"):
            found.append(int(entry))
    return found


async def assert_no_kernel(*pids: int) -> None:
    """The given kernels, and every kernel this process started, end promptly."""
    with anyio.fail_after(10):
        while any(running(p) for p in pids) or child_kernels():  # noqa: ASYNC110 - /proc signals nothing
            await anyio.sleep(0.02)


def read(body: str) -> Any:
    """The notebook in ``body`` (the JSON text of the "notebook" format)."""
    return nbformat.reads(body, as_version=4)
