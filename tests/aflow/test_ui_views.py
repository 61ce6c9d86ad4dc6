"""The UI server's kept views of runs (a real run store file)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from aflow import Flow, task
from aflow._surface._ui import _server
from aflow.history import RunStore


async def test_a_graph_recorded_after_the_run_was_first_read_is_shown(tmp_path: Path) -> None:
    @task(name="one")
    async def one() -> int:
        return 1

    with Flow("late-graph") as flow:
        one()
    async with RunStore(tmp_path / "h.db") as store:
        store.flow_run_started("r1", "late-graph", {}, datetime.now(UTC))
        await store.flush()
        views = _server._Views(store)
        run = await store.get_run("r1")
        assert run is not None
        first = await views.get(run)
        assert first.graph is None  # read between the run's start and its graph
        store.record_graph("r1", flow)
        await store.flush()
        views._kept["r1"] = replace(first, at=-math.inf)  # due for a refresh (a running run's view is)
        graph = (await views.get(run)).graph
    assert graph is not None
    assert [node["name"] for node in graph["nodes"]] == ["one"]
