"""Executors: where task bodies run.

The flow's scheduler (triggers, retries, timeouts, mapping, caching, results) always runs in the
caller's event loop; an executor only decides where each task *body* runs. The default runs
them right there (async bodies on the loop, sync bodies in worker threads). Another executor,
such as `aflow.executors.DaskExecutor` when available, receives each body as a `BodyCall` and
returns its value or raises its exception::

    state = await flow.run(executor=MyExecutor())

A task tagged ``"local"`` always runs in the caller's process, whatever the executor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._engine._executor import LOCAL_TAG as LOCAL_TAG
from ._engine._executor import BodyCall as BodyCall
from ._engine._executor import Executor as Executor
from ._engine._executor import LocalExecutor as LocalExecutor

if TYPE_CHECKING:
    from ._engine._dask import DaskExecutor as DaskExecutor

__all__ = ("LOCAL_TAG", "BodyCall", "DaskExecutor", "Executor", "LocalExecutor")


def __getattr__(name: str) -> Any:
    # DaskExecutor lives in a private module that imports dask.distributed: load it on first use
    if name == "DaskExecutor":
        from ._engine._dask import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
