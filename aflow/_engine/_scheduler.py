"""The scheduler: starts each task as soon as its upstreams are done, all in one event loop.

Each task run (and each mapped child) is one asyncio task. A node counts the upstream events it
still waits for; the last one to arrive starts it. A mapped task needs only the *width* of an
upstream mapped task (known once that one's parent has mapped), not its children: child ``i``
waits for the upstream's child ``i`` alone, so mapped pipelines run depth-first, with no barrier.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import anyio

from .._model._builtin_tasks import Constant, Parameter
from .._runtime._gc import relaxed_gc
from .._runtime._logging import engine_logger
from .._runtime._run_context import FlowRunContext, flow_run_var
from .._runtime._run_resources import RunResources
from .._runtime._settings import RunSettings
from ..exceptions import AflowInternalError, ParameterError
from ..states import Cancelled, Failed, Mapped, Pending, Running, Skipped, State, Success
from ._blocking import BlockWatch
from ._cancel import ignored_message, stop_all
from ._checkpoints import Persistence
from ._executor import LocalExecutor
from ._flow_hooks import final_state, flow_state
from ._nodes import MappedNode, Node, add_listener, child_inputs, inputs_and_states, new_node, plan_children
from ._task_runner import UPSTREAM_SKIPPED, TaskRunEnv, check_trigger, redact_state, run_task

if TYPE_CHECKING:
    from .._model._edge import Edge
    from .._model._flow import Flow
    from .._model._task import Task
    from ._observer import RunObserver

__all__ = ("FlowRunner",)

logger = engine_logger("flow_runner")
_CHUNK = 1024  # task runs started per loop iteration (see FlowRunner._each)


class FlowRunner:
    """Runs one flow once, with its `RunSettings`. Made by the engine entry (`Flow.run`)."""

    def __init__(self, flow: Flow, parameters: dict[str, Any], settings: RunSettings) -> None:
        self.flow = flow
        self.graph = flow.graph
        self.settings = settings
        self.clock = settings.clock
        executor = settings.executor
        self.executor = None if isinstance(executor, LocalExecutor) else executor
        self.parameters = self._check_parameters(flow, parameters)
        # edges are checked for cycles as they are added, so insertion order is enough here
        self.order = list(self.graph.tasks)
        self.run_id = str(uuid.uuid4())
        self.run_name = settings.flow_run_name or self.run_id
        self.nodes: dict[Task, Node] = {}
        self.pending = 0
        # task runs in progress (cancelled if the run is), with their node and map index
        self.running: dict[asyncio.Task[Any] | None, tuple[Node, int | None]] = {}
        self.done: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runner: TaskRunEnv | None = None
        self.cancel_requested = False
        self.stopping = False  # set when the run stops: nothing new may start
        self.observer: RunObserver | None = None  # told of task starts and final states (progress display)

    @staticmethod
    def _check_parameters(flow: Flow, given: dict[str, Any]) -> dict[str, Any]:
        params = {p.name: p for p in flow.parameters()}
        unknown = sorted(set(given) - set(params))
        if unknown:
            known = ", ".join(sorted(params)) or "none"
            raise ParameterError(f"Flow {flow.name!r} has no parameter {', '.join(unknown)} (its parameters: {known})")
        missing = sorted(n for n, p in params.items() if p.required and n not in given)
        if missing:
            raise ParameterError(f"Flow {flow.name!r} needs parameter {', '.join(missing)}: pass it to run()")
        return {n: given.get(n, p.default) for n, p in params.items()}

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> State:
        flow, settings = self.flow, self.settings
        frun = FlowRunContext(
            flow_name=flow.name,
            flow_run_id=self.run_id,
            flow_run_name=self.run_name,
            parameters=self.parameters,
            date=self.clock.now(),
            extra=dict(settings.context),
            clock=self.clock,
            resources=RunResources(),
        )
        debug = logger.isEnabledFor(logging.DEBUG)
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        store, own_store = await self._open_store()
        recorder = store.recorder(self.run_id, log_level=settings.history_log_level) if store is not None else None
        runner = self.runner = TaskRunEnv(
            frun, self.clock, settings.max_concurrency, settings.concurrency, logger if debug else None, recorder
        )
        runner.cancel_grace = settings.cancel_grace
        if hasattr(self.observer, "task_waiting"):
            runner.observer = self.observer  # type: ignore[assignment]
        if recorder is not None:
            recorder.timestamp = runner.timestamp
            frun.recorder = recorder  # the task loggers keep their records there
        if Persistence.wanted(flow):
            runner.persist = Persistence(flow, frun, store)
        token = flow_run_var.set(frun)
        state: State = Pending()
        executor = self.executor
        blocking = BlockWatch.acquire(settings.warn_blocking) if settings.warn_blocking is not None else None
        try:
            if executor is not None:
                await executor.start()
                runner.executor = executor
            if store is not None:
                store.flow_run_started(self.run_id, flow.name, self.parameters, self.clock.now())
            state = await self._flow_state(state, Running("Running flow."))
            if isinstance(state, Running):
                logger.info("Flow run %s of %r: starting %d tasks", self.run_name, flow.name, len(self.order))
                with relaxed_gc(len(self.order)):
                    if store is not None:
                        store.record_graph(self.run_id, flow)  # for readers of the file (aflow ui)
                    if runner.persist is not None:
                        await runner.persist.prepare(flow)  # the targets' stores, before any task reads
                    self._build()
                    if self.pending and not self.cancel_requested:
                        await self.done
                if self.cancel_requested:
                    await self._stop()
                    state = await self._flow_state(state, Cancelled("Flow run was cancelled.", result=self._results()))
                else:
                    state = await self._finish(state)
                logger.info("Flow run %s of %r: %s", self.run_name, flow.name, type(state).__name__)
            return redact_state(state)
        except BaseException as exc:
            await self._stop()
            if isinstance(exc, asyncio.CancelledError):
                state = Cancelled("Flow run was cancelled.", result=self._results())
            else:
                state = Failed(f"Flow run crashed: {exc!r}", result=exc)
            raise
        finally:
            if blocking is not None:
                blocking.release(settings.warn_blocking)  # type: ignore[arg-type]
            flow_run_var.reset(token)
            with anyio.CancelScope(shield=True):
                if runner.executor is not None:
                    await runner.executor.shutdown()
                await frun.resources.aclose()
                if store is not None:
                    if recorder is not None:
                        store.release(recorder)
                    store.flow_run_finished(self.run_id, redact_state(state), self.clock.now())
                    await (store.aclose() if own_store else store.flush())

    async def _open_store(self) -> tuple[Any, bool]:
        """The run store to record in, and whether this run opened it (and must close it)."""
        history = self.settings.history
        if history is None:
            return None, False
        if isinstance(history, (str, os.PathLike)):
            from ..history import RunStore

            store = RunStore(history)
            await store.open()
            return store, True
        return history, False

    def _build(self) -> None:
        graph = self.graph
        nodes = self.nodes
        edges_into = graph.edges_into
        constants = graph.constants
        for task in self.order:
            nodes[task] = new_node(task, edges_into(task), constants.get(task))
        self.pending = len(nodes)
        ready: list[Node] = []
        for node in nodes.values():
            if node.edges_in:
                by_up: dict[Node, bool] = {}
                for e in node.edges_in:
                    up = nodes[e.upstream_task]
                    df = e.mapped and not e.flattened and up.is_mapped
                    by_up[up] = by_up.get(up, True) and df
                for up, df in by_up.items():
                    if df and isinstance(up, MappedNode):  # (df needs up.is_mapped)
                        up.resolve_listeners = add_listener(up.resolve_listeners, node)
                    else:
                        up.finish_listeners = add_listener(up.finish_listeners, node)
                node.waiting = len(by_up)
            else:
                ready.append(node)
        self._each(self._start, iter(ready))

    def _each(self, start: Callable[[Any], None], items: Iterator[Any]) -> None:
        """Call ``start`` on every item, up to `_CHUNK` per loop iteration.

        Everything ready still starts at once as far as tasks can tell, but a wide fan-out never
        holds thousands of not-yet-started coroutines in memory at the same time.
        """
        if self.stopping:
            return
        for n, item in enumerate(items, 1):
            start(item)
            if n == _CHUNK:
                assert self.loop is not None
                self.loop.call_soon(self._each, start, items)
                return

    def _spawn(self, coro: Any, node: Node, index: int | None = None) -> None:
        assert self.loop is not None
        self.running[self.loop.create_task(coro)] = (node, index)

    def _start(self, node: Node) -> None:
        task = node.task
        if isinstance(task, Parameter):
            self._finish_node(node, Success("Parameter value", result=self.parameters[task.name]))
        elif isinstance(task, Constant):
            self._finish_node(node, Success("Constant value", result=task.value))
        elif isinstance(node, MappedNode):
            self._spawn(self._guard(self._map_parent(node)), node)
        else:
            self._spawn(self._run_single(node), node)

    async def _guard(self, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._internal_error(exc)
        finally:
            self.running.pop(asyncio.current_task(), None)

    def _internal_error(self, exc: BaseException) -> None:
        """An engine bug: stop the run and report it."""
        if self.done is not None and not self.done.done():
            err = AflowInternalError(f"aflow engine error: {exc!r}")
            err.__cause__ = exc
            self.done.set_exception(err)

    # -- notifications ------------------------------------------------------------------------

    def _resolve(self, node: MappedNode) -> None:
        if node.resolved:
            return
        node.resolved = True
        for down in node.resolve_listeners:
            down.waiting -= 1
            if down.waiting == 0:
                self._start(down)

    def _finish_node(self, node: Node, state: State) -> None:
        node.state = redact_state(state)
        if self.observer is not None:
            self.observer.task_finished(node.task, None, state)
        if isinstance(node, MappedNode):
            self._resolve(node)
        for down in node.finish_listeners:
            down.waiting -= 1
            if down.waiting == 0:
                self._start(down)
        self.pending -= 1
        if self.pending == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)

    # -- single tasks -------------------------------------------------------------------------

    async def _run_single(self, node: Node) -> None:
        try:
            if self.observer is not None:
                self.observer.task_started(node.task, None)
            try:
                inputs, upstream = inputs_and_states(node, self.nodes)
            except Exception as exc:
                state: State = Failed(f"Could not gather inputs: {exc}", result=exc)
            else:
                state = await run_task(node.task, self.runner, inputs, upstream)  # type: ignore[arg-type]
            self._finish_node(node, state)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._internal_error(exc)
        finally:
            self.running.pop(asyncio.current_task(), None)  # freed when done

    # -- mapped tasks -------------------------------------------------------------------------

    async def _map_parent(self, node: MappedNode) -> None:
        """Decide a mapped task's width, then start each child when its own inputs are ready."""
        assert self.runner is not None
        task = node.task
        whole: dict[Edge, State] = {}  # edges from finished upstreams, seen by the parent
        for e in node.edges_in:
            up_state = self.nodes[e.upstream_task].state
            if up_state is not None:
                whole[e] = up_state
        stop: State | None = None
        if whole:
            if task.skip_on_upstream_skip and any(s.is_skipped() for s in whole.values()):
                stop = Skipped(UPSTREAM_SKIPPED)
            elif any(not s.is_successful() for e, s in whole.items() if e.mapped):
                stop = check_trigger(task, {e: s for e, s in whole.items() if e.mapped})
        if stop is None:
            try:
                width = plan_children(node, self.nodes)
            except Exception as exc:
                stop = Failed(f"Could not map {task.name!r}: {exc}", result=exc)
        if stop is not None:
            if task.state_handlers or self.runner.recorder is not None:
                stop = await self.runner.transition(task, None, Pending(), stop)
            self._finish_node(node, stop)
            return
        node.width = width
        if self.observer is not None:
            self.observer.task_mapped(task, width)
        node.child_states = [None] * width
        node.children_left = width
        node.child_listeners = []
        self._resolve(node)
        if width == 0:
            await self._finish_mapped(node)
            return
        sources = [s for s in dict.fromkeys(g[2] for g in node.df_getters if g[0] == "df") if s.width is not None]
        node.child_waiting = [0] * width
        for src in sources:
            if src.state is None:  # still running children: listen to them
                src.child_listeners.append(node)
                for i in range(width):
                    if src.child_states[i] is None:
                        node.child_waiting[i] += 1
        ready = [i for i in range(width) if node.child_waiting[i] == 0]  # decided now, started in chunks
        self._each(lambda i: self._spawn(self._run_child(node, i), node, i), iter(ready))

    async def _run_child(self, node: MappedNode, i: int) -> None:
        try:
            observer = self.observer
            if observer is not None:
                observer.task_started(node.task, i)
            inputs, upstream = child_inputs(node, i)
            state = await run_task(node.task, self.runner, inputs, upstream, map_index=i)  # type: ignore[arg-type]
            node.child_states[i] = redact_state(state)
            if observer is not None:
                observer.task_finished(node.task, i, state)
            for down in node.child_listeners:
                if i < len(down.child_waiting):
                    down.child_waiting[i] -= 1
                    if down.child_waiting[i] == 0:
                        self._spawn(self._run_child(down, i), down, i)
            node.children_left -= 1
            if node.children_left == 0:
                await self._finish_mapped(node)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._internal_error(exc)
        finally:
            self.running.pop(asyncio.current_task(), None)

    async def _finish_mapped(self, node: MappedNode) -> None:
        children: list[State] = node.child_states  # type: ignore[assignment]
        state: State = Mapped(f"Mapped {len(children)} children.", [s.result for s in children], children)
        runner = self.runner
        assert runner is not None
        if node.task.state_handlers or runner.recorder is not None:
            state = await runner.transition(node.task, None, Pending(), state)
        self._finish_node(node, state)

    # -- the end ------------------------------------------------------------------------------

    async def _flow_state(self, old: State, new: State) -> State:
        return await flow_state(self.flow, old, new)

    async def _finish(self, running: State) -> State:
        return await final_state(self.flow, running, self._results())

    def cancel(self) -> None:
        """Ask the run to stop.

        Running bodies are cancelled, unfinished tasks end Cancelled and `run` returns a
        Cancelled flow state.
        """
        self.cancel_requested = True
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    async def _stop(self) -> None:
        """Cancel every running body, wait for them, and mark unfinished tasks Cancelled."""
        self.stopping = True
        with anyio.CancelScope(shield=True):
            given_up = await self._cancel_all()
            for node, index in given_up:
                self._gave_up(node, index)
            nodes_given_up = {node for node, index in given_up if index is None}
            for node in self.nodes.values():
                if node.state is None:
                    node.state = Cancelled("Flow run was cancelled before the task finished.")
                    self._record_cancelled(node, node.state)
            for node in self.nodes.values():  # resource cleanups still run, if set up
                if (
                    node.task.run_on_cancel
                    and isinstance(node.state, Cancelled)
                    and not node.is_mapped
                    and node not in nodes_given_up
                ):
                    assert self.loop is not None
                    node.state = await self.loop.create_task(self._run_detached(node))

    def _record_cancelled(self, node: Node, state: State) -> None:
        """Record in the run store that ``node`` (and its unfinished mapped children) ended Cancelled."""
        runner = self.runner
        recorder = runner.recorder if runner is not None else None
        if runner is None or recorder is None:
            return
        if recorder.running:  # the cancelled attempts' Running rows come first
            recorder.rows.extend(recorder.running_rows())
        task = node.task
        if isinstance(node, MappedNode) and node.width is not None:
            for i, child in enumerate(node.child_states):
                if child is None:
                    runner.record(task, i, Cancelled(state.message))
        runner.record(task, None, state)

    async def _run_detached(self, node: Node) -> State:
        """Run one task to a state without starting anything downstream."""
        inputs, upstream = inputs_and_states(node, self.nodes)
        return await run_task(node.task, self.runner, inputs, upstream)  # type: ignore[arg-type]

    def _results(self) -> dict[Task, State]:
        return {t: n.state or Pending("Task not run.") for t, n in self.nodes.items()}

    async def _cancel_all(self) -> list[tuple[Node, int | None]]:
        """Cancel every task run once and wait for them; return the nodes of those given up on.

        A body gets ``cancel_grace`` seconds to stop (a sync body's thread runs to its end within
        them): nothing outlives the run but a body that ignored its cancellation.
        """
        running = self.running
        pending = [t for t in running if t is not None and not t.done()]
        if not pending:
            return []
        return [running[t] for t in await stop_all(pending, self.settings.cancel_grace, self.clock) if t in running]

    def _gave_up(self, node: Node, index: int | None) -> None:
        """Mark a task run that ignored its cancellation as Cancelled, with a message saying so."""
        task = node.task
        name = task.name if index is None else f"{task.name}[{index}]"
        msg = ignored_message(name, task.run_is_async, self.settings.cancel_grace, "the flow run was cancelled")
        if index is None:
            if node.state is None:
                node.state = Cancelled(msg)
                self._record_cancelled(node, node.state)
            return
        assert isinstance(node, MappedNode)  # a child's index: a mapped task
        if node.child_states[index] is None:
            node.child_states[index] = Cancelled(msg)
            if self.runner is not None:
                self.runner.record(task, index, node.child_states[index])  # type: ignore[arg-type]
        if node.state is None:
            node.state = Cancelled(f"Flow run was cancelled before the task finished; {msg}")
            self._record_cancelled(node, node.state)
