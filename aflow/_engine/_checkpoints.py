"""Targets, checkpoints and caches: what a task run reads before running and writes after.

Before the body runs: a task with a ``target`` whose location already holds a result ends
Cached with that value; a task with ``cache_for`` looks for a cached state (this process's
cache, then the run store's, which survives restarts) that its ``cache_validator`` accepts.
After a success: the value is written to the target or, with checkpointing, to the result's
location; with ``cache_for`` the state becomes Cached and is remembered.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .. import cache_validators, context
from .._persist._history._records import dump_json
from .._persist._results._result import default_location, format_lazily
from .._runtime._logging import engine_logger
from .._runtime._run_context import task_run_var
from ..context import _lookup as context_value  # to_dict().get(key) without the whole dict
from ..context import _overlay as context_overlay  # values set by context.temporary()
from ..results import LocalResult, PickleSerializer, Result
from ..states import Cached, Failed, State, Success

if TYPE_CHECKING:
    from .._model._flow import Flow
    from .._model._task import Task
    from .._runtime._run_context import FlowRunContext, TaskRunContext

__all__ = ("Persistence", "clear_process_cache")

# Prefect 1 keeps cached states in a process-global dict; so does aflow, and the run store
# (``flow.run(history=...)``) keeps them across processes too.
_PROCESS_CACHE: dict[str, list[Cached]] = {}
_SERIALIZER = PickleSerializer()
_ABSENT: Any = object()
_DEFAULT_NAMES = frozenset({"flow_name", "task_full_name", "task_name", "uuid"})  # what DEFAULT_LOCATION uses
logger = engine_logger("persist")


def clear_process_cache() -> None:
    """Forget every cached state kept in this process."""
    _PROCESS_CACHE.clear()


class Persistence:
    """The targets, checkpoints and caches of one flow run."""

    __slots__ = ("_active", "_default_result", "_plain_names", "checkpoint", "frun", "result", "store")

    def __init__(self, flow: Flow, frun: FlowRunContext, store: Any) -> None:
        self.frun = frun
        self.result: Result | None = flow.result
        self.checkpoint: bool = bool(flow.checkpoint)
        self.store = store
        self._active: dict[Task, bool] = {}
        self._default_result: Result | None = None
        # no parameter or context value of the run hides the names a default location uses
        self._plain_names = _DEFAULT_NAMES.isdisjoint(frun.parameters) and _DEFAULT_NAMES.isdisjoint(frun.extra)

    @staticmethod
    def wanted(flow: Flow) -> bool:
        """Whether any task of ``flow`` reads or writes results (else the run skips all this)."""
        return bool(flow.checkpoint) or any(
            t.target is not None or t.cache_seconds is not None or t.checkpoint for t in flow.graph.tasks
        )

    async def prepare(self, flow: Flow) -> None:
        """Let the stores that targets read get ready (`Result.prepare`), once, before tasks start.

        A store that fails here is left as it is: its reads fail or succeed on their own.
        """
        results: dict[int, Result] = {}
        for task in flow.graph.tasks:
            if task.target is not None:
                result = self._result_of(task)
                results.setdefault(id(result), result)
        for result in results.values():
            try:
                await result.prepare()
            except Exception as exc:
                logger.warning("Could not prepare %r for reading targets: %r", result, exc)

    def active(self, task: Task) -> bool:
        """Whether runs of ``task`` read or write anything here."""
        found = self._active.get(task)
        if found is None:
            found = self._active[task] = (
                task.target is not None or task.cache_seconds is not None or self._checkpoints(task)
            )
        return found

    def _checkpoints(self, task: Task) -> bool:
        if task.checkpoint is False:
            return False
        if task.target is not None:
            return True  # a target is written whenever the task succeeds
        # without a result on the task or the flow, LocalResult() (~/.aflow/results), as targets
        return bool(task.checkpoint if task.checkpoint is not None else self.checkpoint)

    def _result_of(self, task: Task) -> Result:
        result = task.result if task.result is not None else self.result
        if result is None:
            if self._default_result is None:
                self._default_result = LocalResult()
            result = self._default_result
        return result

    def _values(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Every value a location is formatted with: parameters, then context values, then inputs."""
        return {**self.frun.parameters, **context.to_dict(), **inputs}

    def _location(self, inputs: dict[str, Any], template: Any = None, result: Result | None = None) -> str:
        """Format ``template`` (or ``result``'s location) fetching only the values it names."""
        if (
            result is not None
            and result.location is None
            and self._plain_names
            and type(result).format is Result.format
            and _DEFAULT_NAMES.isdisjoint(inputs)
            and not context_overlay.get()
        ):  # the default location, from the flow's name and the task run's (nothing hides them)
            ctx = task_run_var.get()
            return default_location(self.frun.flow_name, None if ctx is None else ctx.full_name)
        parameters = self.frun.parameters

        def get(key: str, default: Any) -> Any:  # the precedence of `_values`
            if key in inputs:
                return inputs[key]
            value = context_value(key, _ABSENT)
            return parameters.get(key, default) if value is _ABSENT else value

        return format_lazily(template, get, lambda: self._values(inputs), result)

    def _cache_key(self, task: Task) -> str:
        return task.cache_key or task.name

    async def before(self, task: Task, ctx: TaskRunContext, inputs: dict[str, Any]) -> State | None:
        """A Cached state if a target or a valid cache holds the result, else None."""
        if task.target is not None:
            result = self._result_of(task)
            location = self._location(inputs, task.target)
            try:  # one read (no separate exists()): a miss is FileNotFoundError, per the Result contract
                value = await result.read(location)
            except FileNotFoundError:
                pass
            else:
                return Cached(f"Result found at task target {location}", result=value)
        if task.cache_for is not None:
            validator = task.cache_validator or cache_validators.duration_only
            params = self.frun.parameters
            as_stored: dict[str, Any] | None = None
            for candidate, from_store in await self._candidates(task):
                if from_store and as_stored is None:  # compare with parameters as the store keeps them (JSON)
                    as_stored = json.loads(dump_json(dict(params)))
                if validator(candidate, inputs, as_stored if from_store else params):
                    return Cached(
                        "Task run skipped: a valid cached result exists.",
                        result=candidate.result,
                        cached_inputs=candidate.cached_inputs,
                        cached_parameters=candidate.cached_parameters,
                        cached_result_expiration=candidate.cached_result_expiration,
                    )
        return None

    async def _candidates(self, task: Task) -> list[tuple[Cached, bool]]:
        """The cached states to validate, newest first, each with whether it comes from the store."""
        key = self._cache_key(task)
        found = [(c, False) for c in reversed(_PROCESS_CACHE.get(key, []))]  # newest first
        if self.store is not None:
            for entry in await self.store.cache_get(key):
                try:
                    value = _SERIALIZER.loads(entry.value)
                except Exception as exc:  # e.g. pickled by code that is gone: not a candidate
                    logger.warning("Skipping an unreadable cached result of %r: %r", key, exc)
                    continue
                found.append(
                    (
                        Cached(
                            "Cached result from the run store.",
                            result=value,
                            cached_inputs=json.loads(entry.inputs_hash) if entry.inputs_hash else None,
                            cached_parameters=entry.parameters,
                            cached_result_expiration=entry.expires_at,
                        ),
                        True,
                    )
                )
        return found

    async def after(self, task: Task, ctx: TaskRunContext, inputs: dict[str, Any], state: Success) -> State:
        """Write the value where it belongs; return the (maybe Cached) final state."""
        value = state.result
        if self._checkpoints(task):
            result = self._result_of(task)
            try:
                if task.target is not None:
                    location = self._location(inputs, task.target)
                else:
                    location = self._location(inputs, result=result)
                await result.write(value, location)
            except Exception as exc:
                return Failed(f"Could not write the task's result: {exc!r}", result=exc)
        seconds = task.cache_seconds
        if seconds is None:
            return state
        expires = self.frun.clock.now() + timedelta(seconds=seconds)
        cached = Cached(
            "Task run succeeded; its result is cached.",
            result=value,
            cached_inputs=cache_validators.hash_inputs(inputs),
            cached_parameters=dict(self.frun.parameters),
            cached_result_expiration=expires,
        )
        key = self._cache_key(task)
        now = self.frun.clock.now()
        kept = [
            c
            for c in _PROCESS_CACHE.get(key, ())
            if c.cached_result_expiration is None or c.cached_result_expiration > now
        ]
        _PROCESS_CACHE[key] = [*kept, cached]
        if self.store is not None:
            try:
                await self.store.cache_put(
                    key,
                    json.dumps(cached.cached_inputs, sort_keys=True),
                    cached.cached_parameters,
                    _SERIALIZER.dumps(value),
                    expires,
                    now=now,
                )
            except Exception as exc:
                return Failed(f"Could not store the cached result: {exc!r}", result=exc)
        return cached
