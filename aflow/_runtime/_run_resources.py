"""Run-scoped resources: one shared client per configuration for the length of a flow run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import anyio

from ._run_context import flow_run_var

__all__ = ("RunResources", "run_resource")

T = TypeVar("T")


class RunResources:
    """The resources a flow run has opened, closed together when the run ends."""

    __slots__ = ("_closed", "_locks", "_stack", "_values")

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self._values: dict[Hashable, Any] = {}
        self._locks: dict[Hashable, anyio.Lock] = {}
        self._closed = False

    async def get(self, key: Hashable, factory: Callable[[], AbstractAsyncContextManager[T]]) -> T:
        """Return the resource for ``key``, entering ``factory()`` on first use."""
        if key in self._values:
            return self._values[key]  # type: ignore[no-any-return]
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            if key in self._values:
                return self._values[key]  # type: ignore[no-any-return]
            if self._closed:
                raise RuntimeError("run_resource() was used after its flow run ended")
            value = await self._stack.enter_async_context(factory())
            self._values[key] = value
            return value

    async def aclose(self) -> None:
        """Close every resource (last opened first), even when the caller is being cancelled."""
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._stack.aclose()
        self._values.clear()


@asynccontextmanager
async def run_resource(key: Hashable, factory: Callable[[], AbstractAsyncContextManager[T]]) -> AsyncIterator[T]:
    """Use a resource shared by every task of the current flow run.

    Inside a flow run, the first use with a given ``key`` enters ``factory()`` and later uses
    (from any task of the run) get the same object; the run closes it when it ends, also on
    failure or cancellation. Outside a flow run (a task's ``run`` called directly), the block
    gets a resource of its own, closed when the block exits::

        async with run_resource(("http", timeout), lambda: httpx.AsyncClient(timeout=timeout)) as client:
            response = await client.get(url)

    The resource is entered in one task and closed by the flow run, so use it for clients and
    sessions, not for objects bound to the task that opened them (anyio task groups).

    Args:
        key: A hashable description of the configuration (two uses share a resource iff equal).
        factory: Makes a new async context manager that yields the resource.
    """
    flow_run = flow_run_var.get()
    if flow_run is None:
        async with factory() as value:
            yield value
    else:
        yield await flow_run.resources.get(key, factory)
