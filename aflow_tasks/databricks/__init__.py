"""Databricks tasks over the Jobs API 2.1 (httpx): Prefect 1's `prefect.tasks.databricks`.

`DatabricksSubmitRun`, `DatabricksRunNow` and `DatabricksSubmitMultitaskRun` start a run and
poll it to its end, logging each change of state and the run page URL to the task logger;
a run ending in a state other than SUCCESS fails the task with that state's message; a cancelled
flow run or a task ``timeout`` cancels the run on Databricks. `DatabricksGetJobID` finds a job's id
by its name. Requests go through the flow run's shared httpx client (`aflow_tasks.http.clients`).

Needs the ``databricks`` extra: ``pip install aflow-engine[databricks]``.
"""

from __future__ import annotations

from ._api import DatabricksFail, DatabricksRunFail, RunState
from .jobs import DatabricksGetJobID, DatabricksRunNow, DatabricksSubmitMultitaskRun, DatabricksSubmitRun

__all__ = (
    "DatabricksFail",
    "DatabricksGetJobID",
    "DatabricksRunFail",
    "DatabricksRunNow",
    "DatabricksSubmitMultitaskRun",
    "DatabricksSubmitRun",
    "RunState",
)
