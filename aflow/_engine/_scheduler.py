"""The scheduler: starts each task as soon as its upstreams are done, all in one event loop.

Each task run (and each mapped child) is one asyncio task. A node counts the upstream events it
still waits for; the last one to arrive starts it. A mapped task needs only the *width* of an
upstream mapped task (known once that one's parent has mapped), not its children: child ``i``
waits for the upstream's child ``i`` alone, so mapped pipelines run depth-first, with no barrier.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import anyio

from .. import signals
from .._model._builtin_tasks import Constant, Parameter
from .._model._edge import is_mappable
from .._runtime._clock import SYSTEM_CLOCK, Clock
from .._runtime._logging import engine_logger, level_number
from .._runtime._run_context import FlowRunContext, flow_run_var
from .._runtime._run_resources import RunResources
from ..exceptions import AflowInternalError, ParameterError
from ..executors import Executor, LocalExecutor
from ..states import Cancelled, Failed, Mapped, Pending, ReferenceStates, Running, Skipped, State, Success
from ._blocking import DEFAULT_WARN_BLOCKING, BlockWatch, check_threshold
from ._cancel import DEFAULT_CANCEL_GRACE, check_grace, ignored_message, stop_all
from ._checkpoints import Persistence
from ._gc import relaxed_gc
from ._task_runner import UPSTREAM_SKIPPED, TaskRunEnv, check_trigger, expanded, redact_state, run_task

if TYPE_CHECKING:
    from .._model._edge import Edge
    from .._model._flow import Flow
    from .._model._task import Task
    from ._observer import RunObserver

__all__ = ("FlowRunner",)

logger = engine_logger("flow_runner")
_CHUNK = 1024  # task runs started per loop iteration (see FlowRunner._each)


class _Node:
    """The run-time record of one task of the flow."""

    __slots__ = (
        "child_listeners",
        "child_states",
        "child_waiting",
        "children_left",
        "consts",
        "df_getters",
        "edges_in",
        "finish_listeners",
        "is_mapped",
        "resolve_listeners",
        "resolved",
        "state",
        "task",
        "waiting",
        "width",
    )

    def __init__(self, task: Task, edges_in: list[Edge], consts: dict[str, Any] | None) -> None:
        self.task = task
        self.edges_in = edges_in
        self.consts = consts
        self.state: State | None = None
        self.waiting = 0
        self.finish_listeners: list[_Node] = _NONE
        self.resolve_listeners: list[_Node] = _NONE
        self.resolved = False
        self.is_mapped = any(e.mapped for e in edges_in) if edges_in else False
        self.width: int | None = None  # known once a mapped task has mapped
        # set by _map_parent, for mapped tasks only:
        self.child_states: list[State | None]
        self.children_left: int
        self.child_waiting: list[int]
        self.child_listeners: list[_Node]
        self.df_getters: list[Any]


_NONE: list[_Node] = []  # shared "no listeners" marker; never appended to


def _flatten(value: Any, name: str) -> list[Any]:
    """Un-nest ``value`` one level: list and tuple items are spliced in, others pass through."""
    if not isinstance(value, Iterable) or isinstance(value, (str, bytes, dict)):
        raise TypeError(f"flatten() over {name} needs a list, got {type(value).__name__}")
    out: list[Any] = []
    for item in value:
        if isinstance(item, (list, tuple)):
            out.extend(item)
        else:
            out.append(item)  # a scalar passes through (Prefect 1)
    return out


def _flatten_children(children: list[State]) -> tuple[list[Any], list[State]]:
    """A flattened mapped upstream, child by child: each item's value and the state it came from.

    A successful child's list is spliced in; any other child (a scalar result, or a child that
    failed or was skipped) is one item, so only its own downstream child fails or skips.
    """
    values: list[Any] = []
    states: list[State] = []
    for child in children:
        result = child.result
        if isinstance(child, Success) and not isinstance(child, Skipped) and isinstance(result, (list, tuple)):
            values.extend(result)
            states.extend([child] * len(result))
        else:
            values.append(result)
            states.append(child)
    return values, states


def _signalled(sig: signals.AflowSignal, current: State) -> State:
    """The flow state a signal raised in a flow hook sets.

    The signal's state, as in Prefect 1; when it carries no result of its own it keeps the
    task states of the run (``state.result[task]`` keeps working).
    """
    new = sig.state
    if (new.result is None or new.result is sig) and isinstance(current.result, dict):
        new = copy.copy(new)
        new.result = current.result
    logger.info("Flow hook raised %s: the flow run is %s", type(sig).__name__, type(new).__name__)
    return new


class FlowRunner:
    """Runs one flow once. Made by `Flow.run`."""

    def __init__(
        self,
        flow: Flow,
        parameters: dict[str, Any],
        *,
        max_concurrency: int | None = None,
        concurrency: dict[str, int] | None = None,
        clock: Clock | None = None,
        flow_run_name: str | None = None,
        context: dict[str, Any] | None = None,
        history: Any = None,
        executor: Executor | None = None,
        cancel_grace: float | None = None,
        warn_blocking: float | None = DEFAULT_WARN_BLOCKING,
        history_log_level: int | str | None = None,
    ) -> None:
        self.flow = flow
        self.warn_blocking = check_threshold(warn_blocking)
        self.cancel_grace = DEFAULT_CANCEL_GRACE if cancel_grace is None else check_grace(cancel_grace)
        self.history = history
        self.log_level = (
            logging.INFO if history_log_level is None else level_number(history_log_level, "history_log_level")
        )
        self.executor = None if isinstance(executor, LocalExecutor) else executor
        self.parameters = self._check_parameters(flow, parameters)
        # edges are checked for cycles as they are added, so insertion order is enough here
        self.order = list(flow._tasks)
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency
        bad = {tag: n for tag, n in (concurrency or {}).items() if not isinstance(n, int) or n < 1}
        if bad:
            raise ValueError(f"concurrency limits must be positive ints, got {bad}")
        self.concurrency = dict(concurrency or {})
        self.clock = clock or SYSTEM_CLOCK
        self.extra = dict(context or {})
        self.run_id = str(uuid.uuid4())
        self.run_name = flow_run_name or self.run_id
        self.nodes: dict[Task, _Node] = {}
        self.pending = 0
        # task runs in progress (cancelled if the run is), with their node and map index
        self.running: dict[asyncio.Task[Any] | None, tuple[_Node, int | None]] = {}
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
        flow = self.flow
        frun = FlowRunContext(
            flow_name=flow.name,
            flow_run_id=self.run_id,
            flow_run_name=self.run_name,
            parameters=self.parameters,
            date=self.clock.now(),
            extra=self.extra,
            clock=self.clock,
            resources=RunResources(),
        )
        debug = logger.isEnabledFor(logging.DEBUG)
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        store, own_store = await self._open_store()
        recorder = store.recorder(self.run_id, log_level=self.log_level) if store is not None else None
        runner = self.runner = TaskRunEnv(
            frun, self.clock, self.max_concurrency, self.concurrency, logger if debug else None, recorder
        )
        runner.cancel_grace = self.cancel_grace
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
        blocking = BlockWatch.acquire(self.warn_blocking) if self.warn_blocking is not None else None
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
                blocking.release(self.warn_blocking)  # type: ignore[arg-type]
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
        if self.history is None:
            return None, False
        if isinstance(self.history, (str, os.PathLike)):
            from ..history import RunStore

            store = RunStore(self.history)
            await store.open()
            return store, True
        return self.history, False

    def _build(self) -> None:
        flow = self.flow
        nodes = self.nodes
        edges_to = flow._edges_to
        constants = flow.constants
        for task in self.order:
            nodes[task] = _Node(task, edges_to.get(task, []), constants.get(task))
        self.pending = len(nodes)
        ready: list[_Node] = []
        for node in nodes.values():
            if node.edges_in:
                by_up: dict[_Node, bool] = {}
                for e in node.edges_in:
                    up = nodes[e.upstream_task]
                    df = e.mapped and not e.flattened and up.is_mapped
                    by_up[up] = by_up.get(up, True) and df
                for up, df in by_up.items():
                    if df:
                        if up.resolve_listeners is _NONE:
                            up.resolve_listeners = []
                        up.resolve_listeners.append(node)
                    else:
                        if up.finish_listeners is _NONE:
                            up.finish_listeners = []
                        up.finish_listeners.append(node)
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

    def _spawn(self, coro: Any, node: _Node, index: int | None = None) -> None:
        assert self.loop is not None
        self.running[self.loop.create_task(coro)] = (node, index)

    def _start(self, node: _Node) -> None:
        task = node.task
        if isinstance(task, Parameter):
            self._finish_node(node, Success("Parameter value", result=self.parameters[task.name]))
        elif isinstance(task, Constant):
            self._finish_node(node, Success("Constant value", result=task.value))
        elif node.is_mapped:
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

    def _resolve(self, node: _Node) -> None:
        if node.resolved:
            return
        node.resolved = True
        for down in node.resolve_listeners:
            down.waiting -= 1
            if down.waiting == 0:
                self._start(down)

    def _finish_node(self, node: _Node, state: State) -> None:
        node.state = redact_state(state)
        if self.observer is not None:
            self.observer.task_finished(node.task, None, state)
        self._resolve(node)
        for down in node.finish_listeners:
            down.waiting -= 1
            if down.waiting == 0:
                self._start(down)
        self.pending -= 1
        if self.pending == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)

    # -- single tasks -------------------------------------------------------------------------

    def _inputs_and_states(self, node: _Node) -> tuple[dict[str, Any], dict[Edge, State] | None]:
        consts = node.consts
        if not node.edges_in:
            return (consts if consts is not None else {}), None
        inputs = dict(consts) if consts else {}
        upstream: dict[Edge, State] = {}
        nodes = self.nodes
        for e in node.edges_in:
            state = nodes[e.upstream_task].state
            assert state is not None
            upstream[e] = state
            if e.key is not None:
                value = state.result
                if e.flattened and isinstance(state, Success):
                    value = _flatten(value, e.upstream_task.name)
                inputs[e.key] = value
        return inputs, upstream

    async def _run_single(self, node: _Node) -> None:
        try:
            if self.observer is not None:
                self.observer.task_started(node.task, None)
            try:
                inputs, upstream = self._inputs_and_states(node)
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

    async def _map_parent(self, node: _Node) -> None:
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
                width = self._plan_children(node)
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

    def _plan_children(self, node: _Node) -> int:
        """Fill ``node.df_getters`` (how child i gets each input) and return the width."""
        getters: list[tuple[str, Edge, Any]] = []
        widths: list[int] = []
        for e in node.edges_in:
            up = self.nodes[e.upstream_task]
            state = up.state
            if e.mapped and not e.flattened and up.width is not None:
                getters.append(("df", e, up))  # child i reads upstream child i
                widths.append(up.width)
            elif e.mapped and e.flattened and isinstance(state, Mapped):
                flat = _flatten_children(state.map_states)  # judged child by child
                getters.append(("flat", e, flat))
                widths.append(len(flat[0]))
            elif e.mapped:
                assert state is not None
                value = state.result
                if e.flattened:
                    value = _flatten(value, up.task.name)
                if not is_mappable(value):
                    raise TypeError(
                        f"argument {e.key or '(upstream)'!r} comes from {up.task.name!r} whose result "
                        f"{type(value).__name__} cannot be mapped over: map over a list "
                        "(or wrap the argument in unmapped())"
                    )
                seq = list(value)
                getters.append(("seq", e, (seq, state)))
                widths.append(len(seq))
            else:
                assert state is not None
                getters.append(("whole", e, state))
        node.df_getters = getters
        return min(widths)

    def _child_inputs(self, node: _Node, i: int) -> tuple[dict[str, Any], dict[Edge, State]]:
        inputs = dict(node.consts) if node.consts else {}
        upstream: dict[Edge, State] = {}
        for kind, e, src in node.df_getters:
            if kind == "df":
                state = src.child_states[i]
                value = state.result
            elif kind == "seq":
                seq, state = src
                value = seq[i]
            elif kind == "flat":
                value = src[0][i]
                state = src[1][i]
            else:
                state = src
                value = state.result
            upstream[e] = state
            if e.key is not None:
                inputs[e.key] = value
        return inputs, upstream

    async def _run_child(self, node: _Node, i: int) -> None:
        try:
            observer = self.observer
            if observer is not None:
                observer.task_started(node.task, i)
            inputs, upstream = self._child_inputs(node, i)
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

    async def _finish_mapped(self, node: _Node) -> None:
        children: list[State] = node.child_states  # type: ignore[assignment]
        state: State = Mapped(f"Mapped {len(children)} children.", [s.result for s in children], children)
        runner = self.runner
        assert runner is not None
        if node.task.state_handlers or runner.recorder is not None:
            state = await runner.transition(node.task, None, Pending(), state)
        self._finish_node(node, state)

    # -- the end ------------------------------------------------------------------------------

    async def _flow_state(self, old: State, new: State) -> State:
        for handler in self.flow.state_handlers:
            try:
                replaced = handler(self.flow, old, new)
                if asyncio.iscoroutine(replaced):
                    replaced = await replaced
            except asyncio.CancelledError:
                raise
            except signals.AflowSignal as sig:  # a signal sets the flow's state (Prefect 1)
                return _signalled(sig, new)
            except Exception as exc:
                name = getattr(handler, "__qualname__", repr(handler))
                logger.error("Flow %r: state handler %s raised %r", self.flow.name, name, exc, exc_info=exc)
                # the task states stay available as the result when the run got that far
                result = new.result if isinstance(new.result, dict) else exc
                return Failed(f"Flow state handler {name} raised {exc!r}", result=result)
            if replaced is not None:
                new = replaced
        return new

    async def _finish(self, running: State) -> State:
        flow = self.flow
        results = self._results()
        reference = {t: results[t] for t in flow.reference_tasks()}
        ref_expanded = expanded(reference.values())
        if any(s.is_failed() for s in ref_expanded):
            state: State = Failed("Some reference tasks failed.", result=results)
        elif all(s.is_successful() for s in ref_expanded):
            state = Success("All reference tasks succeeded.", result=results)
        else:
            state = Success("No reference tasks failed.", result=results)
        terminal, on_failure = flow.terminal_state_handler, flow.on_failure
        if terminal is not None:
            # Prefect 1's argument: a set of states (mapped tasks' children), with by_task
            ref_states = ReferenceStates(ref_expanded, reference)
            state = await self._call_flow_hook(lambda: terminal(flow, state, ref_states), state)
        state = await self._flow_state(running, state)  # the handlers see the state it leaves
        if on_failure is not None and state.is_failed():
            # its return value is ignored and its errors only logged; a signal sets the state
            state = await self._call_flow_hook(lambda: on_failure(flow, state), state, replaces=False)
        if state.result is None:
            state.result = results
        return state

    async def _call_flow_hook(self, call: Callable[[], Any], state: State, replaces: bool = True) -> State:
        try:
            replaced = call()
            if asyncio.iscoroutine(replaced):
                replaced = await replaced
        except asyncio.CancelledError:
            raise
        except signals.AflowSignal as sig:  # a signal sets the flow's state (Prefect 1)
            return _signalled(sig, state)
        except Exception as exc:
            logger.error("Flow %r: a flow hook raised %r", self.flow.name, exc, exc_info=exc)
            return Failed(f"Flow hook raised {exc!r}", result=exc) if replaces else state
        return replaced if replaces and isinstance(replaced, State) else state

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

    def _record_cancelled(self, node: _Node, state: State) -> None:
        """Record in the run store that ``node`` (and its unfinished mapped children) ended Cancelled."""
        runner = self.runner
        recorder = runner.recorder if runner is not None else None
        if runner is None or recorder is None:
            return
        if recorder.running:  # the cancelled attempts' Running rows come first
            recorder.rows.extend(recorder.running_rows())
        task = node.task
        if node.is_mapped and node.width is not None:
            for i, child in enumerate(node.child_states):
                if child is None:
                    runner.record(task, i, Cancelled(state.message))
        runner.record(task, None, state)

    async def _run_detached(self, node: _Node) -> State:
        """Run one task to a state without starting anything downstream."""
        inputs, upstream = self._inputs_and_states(node)
        return await run_task(node.task, self.runner, inputs, upstream)  # type: ignore[arg-type]

    def _results(self) -> dict[Task, State]:
        return {t: n.state or Pending("Task not run.") for t, n in self.nodes.items()}

    async def _cancel_all(self) -> list[tuple[_Node, int | None]]:
        """Cancel every task run once and wait for them; return the nodes of those given up on.

        A body gets ``cancel_grace`` seconds to stop (a sync body's thread runs to its end within
        them): nothing outlives the run but a body that ignored its cancellation.
        """
        running = self.running
        pending = [t for t in running if t is not None and not t.done()]
        if not pending:
            return []
        return [running[t] for t in await stop_all(pending, self.cancel_grace, self.clock) if t in running]

    def _gave_up(self, node: _Node, index: int | None) -> None:
        """Mark a task run that ignored its cancellation as Cancelled, with a message saying so."""
        task = node.task
        name = task.name if index is None else f"{task.name}[{index}]"
        msg = ignored_message(name, task.run_is_async, self.cancel_grace, "the flow run was cancelled")
        if index is None:
            if node.state is None:
                node.state = Cancelled(msg)
                self._record_cancelled(node, node.state)
            return
        if node.child_states[index] is None:
            node.child_states[index] = Cancelled(msg)
            if self.runner is not None:
                self.runner.record(task, index, node.child_states[index])  # type: ignore[arg-type]
        if node.state is None:
            node.state = Cancelled(f"Flow run was cancelled before the task finished; {msg}")
            self._record_cancelled(node, node.state)
