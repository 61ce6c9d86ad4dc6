"""The benchmark suite's quick mode (how CI runs it): every workload runs and checks its result.

Timings never fail this test; only a wrong result (non-zero exit) or a missing workload does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QUICK_WORKLOADS = ("W1", "W2", "W3", "W4", "W5")


@pytest.mark.timeout(150)
def test_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["mode"] == "quick"
    assert doc["ok"] is True
    for workload in QUICK_WORKLOADS:
        entry = doc["workloads"][workload]
        assert entry["ok"] is True, workload
        assert entry["cases"], workload
        for case in entry["cases"]:
            assert case["ok"] is True, (workload, case["n"])
            assert {"aflow", "dag floor"} <= set(case["variants"]), workload
    assert doc["memory"]["ok"] is True
    assert doc["import"]["wall_ms"] > 0
    assert {"python", "platform", "cpu_count", "date"} <= set(doc["machine"])


@pytest.mark.timeout(150)
def test_the_dask_comparison_runs_when_dask_is_installed(tmp_path: Path) -> None:
    """Nothing in bench/ shadows the dask package: ``--with-dask`` times dask, it does not skip it."""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", "W1", "--with-dask", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cases = json.loads(out.read_text())["workloads"]["W1"]["cases"]
    assert all("dask" in case["variants"] for case in cases), proc.stdout[-3000:]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("script", "needs", "marker"),
    [
        ("shell.py", (), "ShellTask.map / fastest raw bash -c"),
        ("http_client.py", ("httpx", "aiohttp"), "HttpRequest.map / raw httpx + sniffio (CPU)"),
        ("s3.py", ("aiobotocore", "moto.server"), "ratio flow / raw"),
    ],
)
def test_a_family_bench_runs_in_quick_mode(script: str, needs: tuple[str, ...], marker: str) -> None:
    """bench/shell.py, bench/http_client.py and bench/s3.py check their results: exit 0 means right."""
    for module in needs:
        pytest.importorskip(module)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert marker in proc.stdout, proc.stdout[-3000:]
