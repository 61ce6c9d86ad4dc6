"""dbt tasks: dbt Core through the shell (`DbtShellTask`) and dbt Cloud's API (`DbtCloudRunJob`).

Modelled on Prefect 1's ``prefect.tasks.dbt``: the same class names, arguments and return
shapes, async end to end. dbt's lines stream to the task's logger while dbt runs, a cancelled
task stops dbt (or cancels the dbt Cloud run), and a failing model or run fails the task.

Needs the ``dbt`` extra: ``pip install aflow-engine[dbt]`` (plus your adapter, e.g. ``dbt-duckdb``).
"""

from __future__ import annotations

from .cloud import STATUS_NAMES, DbtCloudRunFailed, DbtCloudRunJob
from .core import DbtShellTask

__all__ = ("STATUS_NAMES", "DbtCloudRunFailed", "DbtCloudRunJob", "DbtShellTask")
