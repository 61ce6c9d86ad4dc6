"""`DaskExecutor`: task bodies on dask.distributed workers (exposed as ``aflow.executors.DaskExecutor``).

Only bodies travel. The flow's scheduler (triggers, retries, timeouts, mapping, caching, results)
stays in the caller's event loop and talks to dask through one asynchronous ``Client``.

How a body travels: the task object is cloudpickled once per run (workers keep a small cache of
unpickled tasks), and each call sends that blob plus the pickled inputs and run-context snapshot
to ``_run_async_body`` or ``_run_sync_body`` below, submitted with ``pure=False``, a unique key
``<task name>-<map index>-<uuid>`` and the ``dask-resource:KEY=NUM`` tags as resources. On the
worker the context snapshot is set with `aflow.context.temporary` (contextvars do not travel).
Bodies queued in one event-loop iteration (a map's children) are submitted together with one
``client.map`` per (wrapper, resources), and results that finish together are fetched with one
``client.gather``: per-task round trips are what separates a naive executor from ``client.map``.

Cancellation: dask's own cancel releases a future but does not stop a running body. When the
awaiting coroutine is cancelled (a task timeout, a cancelled flow run), the executor cancels the
future and, for async bodies, pushes its own signal: ``client.run`` of ``_cancel_keys`` on the
workers, which cancels the body's asyncio task there (or leaves a tombstone if the body has not
started yet). Sync bodies cannot be interrupted: they run to their end on the worker and their
result is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anyio
import cloudpickle  # type: ignore[import-untyped]

from .. import context
from ..signals import FAIL
from ._executor import LOCAL_TAG, BodyCall, Executor

if TYPE_CHECKING:
    from .._model._task import Task

__all__ = ("RESOURCE_TAG_PREFIX", "DaskExecutor", "dask_resources")

RESOURCE_TAG_PREFIX = "dask-resource:"
"""Tags ``dask-resource:KEY=NUM`` make a body need ``NUM`` of worker resource ``KEY``."""

_logger = logging.getLogger("aflow.executors.dask")
_CLEANUP_TIMEOUT = 10.0  # seconds a cancelled call waits for dask to take its cancellation
_MISSING = "aflow.executors.DaskExecutor needs dask.distributed: pip install aflow-engine[dask]"


def _distributed() -> Any:
    """``distributed``, imported on first use: ``import aflow.executors`` must work without it.

    Untyped: dask's API is only partly annotated.

    Raises:
        ImportError: dask.distributed is not installed (the message names the extra).
    """
    try:
        import distributed
        import distributed.comm.core
        import distributed.scheduler
    except ImportError as exc:
        raise ImportError(_MISSING, name="distributed") from exc
    return distributed


def dask_resources(tags: Iterable[str]) -> dict[str, float]:
    """The dask worker resources asked for by ``dask-resource:KEY=NUM`` tags.

    Raises:
        ValueError: For a malformed resource tag.
    """
    out: dict[str, float] = {}
    for tag in tags:
        if not tag.startswith(RESOURCE_TAG_PREFIX):
            continue
        key, sep, num = tag[len(RESOURCE_TAG_PREFIX) :].partition("=")
        try:
            if not (sep and key.strip()):
                raise ValueError
            out[key.strip()] = float(num)
        except ValueError:
            raise ValueError(f"Malformed tag {tag!r}: expected '{RESOURCE_TAG_PREFIX}KEY=NUMBER'") from None
    return out


def _resolve_class(cls: type[Any] | str) -> type[Any]:
    if isinstance(cls, str):
        module, _, name = cls.rpartition(".")
        if not module:
            raise ValueError(f"cluster_class {cls!r} is not an import path like 'dask_kubernetes.KubeCluster'")
        resolved: type[Any] = getattr(importlib.import_module(module), name)
        return resolved
    return cls


async def _wait_shielded(fut: asyncio.Future[Any], limit: float) -> None:
    """Wait for ``fut`` (at most ``limit`` s) even if this task is cancelled meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    with anyio.CancelScope(shield=True):
        while not fut.done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait([fut], timeout=remaining)
            except asyncio.CancelledError:
                pass  # a plain Task.cancel() is not stopped by anyio's shield: keep cleaning up


class DaskExecutor(Executor):
    """Run task bodies on a dask.distributed cluster, through an asynchronous client.

    With no ``address`` each run starts a temporary cluster (``cluster_class``, by default
    ``distributed.LocalCluster``, quiet: no worker logs and no dashboard on a fixed port) and
    closes it at the end; with an ``address`` it connects to that scheduler and leaves it running.
    ``async with executor:`` keeps one cluster and client across several runs on the same loop::

        state = await flow.run(executor=DaskExecutor(cluster_kwargs={"n_workers": 2}))

    Async bodies run on the worker's event loop (the caller's own loop with
    ``processes=False``), sync bodies in a worker thread. A task tagged ``"local"`` runs here.
    Tags ``dask-resource:KEY=NUM`` become dask worker resources. Cancelling a run (or a task
    timeout) cancels the dask future and cancels async bodies on the worker; a sync body runs
    to its end there and its result is dropped. A worker dying mid-task fails the task with
    a message naming the worker death (retried if the task has retries); dask itself
    reschedules it first up to its ``allowed_failures`` (3 by default; pass
    ``cluster_kwargs={"scheduler_kwargs": {"allowed_failures": 0}}`` to fail at once).

    Args:
        address: The address of a running dask scheduler (``"tcp://host:8786"``).
        cluster_class: The cluster class to start when there is no address, or its import path
            (``"dask_kubernetes.KubeCluster"``, ``"dask_jobqueue.SLURMCluster"``).
        cluster_kwargs: Keyword arguments for the cluster class.
        adapt_kwargs: If given, ``cluster.adapt(**adapt_kwargs)`` for an adaptive cluster.
        client_kwargs: Keyword arguments for ``distributed.Client``.
    """

    def __init__(
        self,
        address: str | None = None,
        cluster_class: type[Any] | str | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        adapt_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if address is not None and (cluster_class is not None or cluster_kwargs or adapt_kwargs):
            raise ValueError("Give either an address or a cluster_class/cluster_kwargs/adapt_kwargs, not both")
        _distributed()  # a missing extra fails here, naming it, not when the run starts
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.adapt_kwargs = dict(adapt_kwargs or {})
        self.client_kwargs = dict(client_kwargs or {})
        self._client: Any = None
        self._cluster: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._depth = 0
        self._shipped: dict[Task, tuple[str, bytes]] = {}
        self._to_cancel: list[tuple[Any, str | None]] = []
        self._queued: list[tuple[Any, ...]] = []
        self._to_gather: list[tuple[Any, asyncio.Future[Any]]] = []
        self._gathers: set[asyncio.Task[Any]] = set()
        self._flusher: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        where = self.address or (self._cluster.scheduler_address if self._cluster is not None else "temporary cluster")
        return f"<DaskExecutor: {where}>"

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` while the executor is started, else None."""
        return self._client

    @property
    def cluster(self) -> Any:
        """The cluster this executor started (None with an address or when not started)."""
        return self._cluster

    async def start(self) -> None:
        """Start the temporary cluster (or connect to ``address``) and the client."""
        loop = asyncio.get_running_loop()
        if self._depth:
            if loop is not self._loop:
                raise RuntimeError("A DaskExecutor's client belongs to the event loop that started it")
            self._depth += 1
            return
        stack = contextlib.AsyncExitStack()
        dist = _distributed()
        try:
            if self.address is not None:
                target: Any = self.address
            else:
                cls = _resolve_class(self.cluster_class) if self.cluster_class is not None else dist.LocalCluster
                kwargs = dict(self.cluster_kwargs)
                if issubclass(cls, dist.LocalCluster):  # quiet by default
                    kwargs.setdefault("silence_logs", logging.CRITICAL)
                    kwargs.setdefault("dashboard_address", "127.0.0.1:0")
                target = self._cluster = await stack.enter_async_context(cls(asynchronous=True, **kwargs))
                if self.adapt_kwargs:
                    target.adapt(**self.adapt_kwargs)
            self._client = await stack.enter_async_context(
                dist.Client(target, asynchronous=True, **{"set_as_default": False, **self.client_kwargs})
            )
        except BaseException:
            self._client = self._cluster = None
            with anyio.CancelScope(shield=True):
                await stack.aclose()
            raise
        self._stack, self._loop, self._depth = stack, loop, 1

    async def shutdown(self) -> None:
        """Close the client and the cluster ``start`` opened (never an external scheduler)."""
        if not self._depth:
            return
        self._depth -= 1
        if self._depth:
            return
        if self._flusher is not None:
            await _wait_shielded(self._flusher, _CLEANUP_TIMEOUT)
        stack, self._stack = self._stack, None
        self._client = self._cluster = self._loop = self._flusher = None
        self._shipped.clear()
        if stack is not None:
            await stack.aclose()

    async def run(self, call: BodyCall) -> Any:
        """Run ``call``'s body on a worker and return its value (or raise its exception)."""
        if self._client is None:
            raise RuntimeError("DaskExecutor.run() before start(): pass it to flow.run(executor=...)")
        task = call.task
        resources = dask_resources(task.tags)
        token, blob = self._ship(task)
        index = call.context.get("map_index")
        key = f"{task.name}-{uuid.uuid4().hex}" if index is None else f"{task.name}-{index}-{uuid.uuid4().hex}"
        payload = _pack(task, key, call.inputs, call.context)
        is_async = task.run_is_async
        submitted = self._submit(_run_async_body if is_async else _run_sync_body, token, blob, payload, key, resources)
        future: Any = None
        try:
            future = await submitted
            return await self._result(future)
        except asyncio.CancelledError:
            if future is None and submitted.done() and not submitted.cancelled() and submitted.exception() is None:
                future = submitted.result()  # submitted, but this task was cancelled before it saw it
            if future is not None:
                await self._abandon(future, key if is_async else None)
            raise
        except _distributed().scheduler.KilledWorker as err:
            raise FAIL(f"The dask worker running task {task.name!r} died ({err})") from err
        except _distributed().comm.core.CommClosedError as err:
            raise FAIL(
                f"Lost the connection to the dask worker or scheduler running task {task.name!r}: {err}"
            ) from err
        except _distributed().client.FutureCancelledError as err:
            raise FAIL(f"The dask future of task {task.name!r} was cancelled outside aflow: {err}") from err
        finally:
            if future is not None:
                future.release()

    async def _result(self, future: Any) -> Any:
        """The value of ``future``: results finishing together are fetched in one ``gather``."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        future.add_done_callback(lambda _: _wake(loop, done))  # called in dask's callback thread
        await done
        if future.status != "finished":
            return await future  # raises its error or cancellation (no round trip)
        fetched: asyncio.Future[Any] = loop.create_future()
        if not self._to_gather:
            loop.call_soon(self._gather_batch)
        self._to_gather.append((future, fetched))
        return await fetched

    def _gather_batch(self) -> None:
        batch, self._to_gather = self._to_gather, []
        batch = [(f, fetched) for f, fetched in batch if not fetched.cancelled()]
        if batch:
            task = asyncio.ensure_future(self._gather([f for f, _ in batch]))  # noqa: RUF006 (kept just below)
            self._gathers.add(task)
            task.add_done_callback(self._gathers.discard)
            task.add_done_callback(lambda t: _share(t, [fetched for _, fetched in batch]))

    async def _gather(self, futures: list[Any]) -> list[tuple[bool, Any]]:
        """``(True, value)`` or ``(False, exception)`` for each future, in one round trip if all goes well."""
        client = self._client
        if client is None:
            raise RuntimeError("The DaskExecutor was shut down")
        try:
            return [(True, value) for value in await client.gather(futures)]
        except Exception:  # say a worker holding one result died: fetch them one by one
            outcomes: list[tuple[bool, Any]] = []
            for future in futures:
                try:
                    outcomes.append((True, await future))
                except Exception as exc:
                    outcomes.append((False, exc))
            return outcomes

    def _submit(
        self, fn: Any, token: str, blob: bytes, payload: bytes, key: str, resources: dict[str, float]
    ) -> asyncio.Future[Any]:
        """Queue one body for submission; the returned future gives its dask future.

        Bodies queued in the same event-loop iteration (a map's children) go to the scheduler
        as one graph per (wrapper, resources) through ``client.map``: one message, not one each.
        """
        loop = asyncio.get_running_loop()
        submitted: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._submit_queued)
        self._queued.append((fn, tuple(sorted(resources.items())), (token, blob, payload), key, submitted))
        return submitted

    def _submit_queued(self) -> None:
        queued, self._queued = self._queued, []
        groups: dict[tuple[Any, tuple[tuple[str, float], ...]], list[tuple[Any, ...]]] = {}
        for fn, resources, args, key, submitted in queued:
            if not submitted.cancelled():
                groups.setdefault((fn, resources), []).append((args, key, submitted))
        for (fn, resources), items in groups.items():
            try:
                if self._client is None:
                    raise RuntimeError("The DaskExecutor was shut down")
                futures = self._client.map(
                    fn,
                    *zip(*(args for args, _, _ in items), strict=True),
                    key=[key for _, key, _ in items],
                    pure=False,
                    resources=dict(resources) or None,
                )
            except Exception as exc:
                for _, _, submitted in items:
                    if not submitted.done():
                        submitted.set_exception(exc)
                continue
            for (_, key, submitted), future in zip(items, futures, strict=True):
                if submitted.done():  # cancelled meanwhile
                    self._request_cancel(future, key if fn is _run_async_body else None)
                else:
                    submitted.set_result(future)

    def _ship(self, task: Task) -> tuple[str, bytes]:
        """The pickled task and its cache token, made once per run."""
        shipped = self._shipped.get(task)
        if shipped is None:
            try:
                blob = cloudpickle.dumps(task)
            except Exception as exc:
                raise TypeError(
                    f"Task {task.name!r} cannot be pickled to send it to dask workers ({exc!r}); "
                    f"tag it {LOCAL_TAG!r} to run it in this process"
                ) from exc
            shipped = self._shipped[task] = (uuid.uuid4().hex, blob)
        return shipped

    async def _abandon(self, future: Any, key: str | None) -> None:
        """Cancel ``future`` and stop its async body, whatever happens to the caller meanwhile."""
        await _wait_shielded(self._request_cancel(future, key), _CLEANUP_TIMEOUT)

    def _request_cancel(self, future: Any, key: str | None) -> asyncio.Future[None]:
        """Queue ``future`` (and its async body's ``key``) for cancelling, batched with the others."""
        self._to_cancel.append((future, key))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return self._flusher

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the other bodies being cancelled join this batch
        batch, self._to_cancel = self._to_cancel, []
        client = self._client
        if client is None or not batch:
            return
        try:
            await client.cancel([f for f, _ in batch], force=True)
            keys = [k for _, k in batch if k is not None]
            if keys:
                await client.run(_cancel_keys, keys, on_error="ignore")
        except Exception:
            _logger.debug("Could not cancel %d dask futures", len(batch), exc_info=True)


def _set_done(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


def _wake(loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> None:
    try:
        loop.call_soon_threadsafe(_set_done, done)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass


def _share(gathered: asyncio.Future[list[tuple[bool, Any]]], waiters: list[asyncio.Future[Any]]) -> None:
    """Hand each waiter its value from one batched gather (or the gather's error)."""
    if gathered.cancelled():  # the executor is shutting down
        for waiter in waiters:
            waiter.cancel()
        return
    error = gathered.exception()
    outcomes = gathered.result() if error is None else [(False, error)] * len(waiters)
    for waiter, (ok, value) in zip(waiters, outcomes, strict=True):
        if waiter.done():
            continue
        if ok:
            waiter.set_result(value)
        else:
            waiter.set_exception(value)


def _pack(task: Task, key: str, inputs: dict[str, Any], values: dict[str, Any]) -> bytes:
    """Pickle a call's key, inputs and context; context values that do not pickle stay behind."""
    try:
        blob: bytes = cloudpickle.dumps((key, inputs, values))
        return blob
    except Exception:
        pass
    try:
        cloudpickle.dumps(inputs)
    except Exception as exc:
        raise TypeError(
            f"The inputs of task {task.name!r} cannot be pickled to send them to dask workers ({exc!r}); "
            f"tag it {LOCAL_TAG!r} to run it in this process"
        ) from exc
    kept = {}
    for name, value in values.items():
        try:
            cloudpickle.dumps(value)
        except Exception:
            _logger.debug("Context value %r does not pickle: not sent to the dask worker", name)
        else:
            kept[name] = value
    blob = cloudpickle.dumps((key, inputs, kept))
    return blob


# -- worker side --------------------------------------------------------------------------------

_TASKS: OrderedDict[str, Any] = OrderedDict()  # token -> unpickled task, most recent last
_TASK_CACHE_SIZE = 256
_RUNNING: dict[str, asyncio.Task[Any]] = {}  # key -> the async body's task on this worker
_CANCELLED: OrderedDict[str, None] = OrderedDict()  # keys cancelled before their body started
_TOMBSTONES = 10_000


def _unpack(token: str, blob: bytes, payload: bytes) -> tuple[Any, str, dict[str, Any], dict[str, Any]]:
    task = _TASKS.get(token)
    if task is None:
        task = _TASKS[token] = cloudpickle.loads(blob)
        while len(_TASKS) > _TASK_CACHE_SIZE:
            _TASKS.popitem(last=False)
    key, inputs, values = cloudpickle.loads(payload)
    return task, key, inputs, values


def _annotate(exc: BaseException) -> None:
    """Keep the worker-side traceback text on the exception (it travels with its notes)."""
    try:
        where = _distributed().get_worker().address
    except Exception:
        where = "?"
    tb = exc.__traceback__
    text = "".join(traceback.format_exception(type(exc), exc, tb.tb_next if tb is not None else None))
    exc.add_note(f"Traceback on dask worker {where}:\n{text.rstrip()}")


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _run_sync_body(token: str, blob: bytes, payload: bytes) -> Any:
    """Run a sync body in the worker thread dask gave this task."""
    task, _, inputs, values = _unpack(token, blob, payload)
    try:
        with context.temporary(**values):
            result = task.run(**inputs)
            if inspect.isawaitable(result):  # a sync wrapper around a coroutine function
                result = asyncio.run(_awaited(result))
        return result
    except Exception as exc:
        _annotate(exc)
        raise


async def _run_async_body(token: str, blob: bytes, payload: bytes) -> Any:
    """Run an async body on the worker's event loop, cancellable through ``_cancel_keys``."""
    task, key, inputs, values = _unpack(token, blob, payload)
    if key in _CANCELLED:
        del _CANCELLED[key]
        raise asyncio.CancelledError(f"{key} was cancelled before it started")
    with context.temporary(**values):  # the body's task copies the context, overlay included
        body = asyncio.ensure_future(task.run(**inputs))
    _RUNNING[key] = body
    try:
        return await body
    except Exception as exc:
        _annotate(exc)
        raise
    finally:
        _RUNNING.pop(key, None)
        if not body.done():
            body.cancel()


async def _cancel_keys(keys: list[str]) -> None:
    """Cancel the async bodies of ``keys`` running on this worker (run with ``client.run``)."""
    for key in keys:
        body = _RUNNING.get(key)
        if body is not None:
            body.cancel()
        else:
            _CANCELLED[key] = None
            while len(_CANCELLED) > _TOMBSTONES:
                _CANCELLED.popitem(last=False)
