"""examples/notebook.ipynb runs headlessly (nbclient + ipykernel), so the notebook cannot rot."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "notebook.ipynb"
ROOT = NOTEBOOK.parent.parent


def outputs(notebook: nbformat.NotebookNode) -> str:
    text = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text.append(output.get("text", ""))
            text.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(text)


@pytest.mark.timeout(120)
async def test_the_notebook_awaits_a_flow_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    assert any("await flow.run(" in cell.source for cell in notebook.cells if cell.cell_type == "code")
    # the kernel imports aflow from this checkout and writes nothing outside tmp_path
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    client = NotebookClient(
        notebook,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    await client.async_execute()
    text = outputs(notebook)
    assert "squares: [0, 1, 4, 9, 16]" in text
    assert "total: 30" in text
    assert "cancelled flow: Cancelled" in text
