"""Task and flow run states, as in Prefect 1.

The tree (``is_*`` predicates are ``isinstance`` checks on it)::

    State
     ├── Pending ── Scheduled(start_time) ── Retrying(run_count)
     ├── Running
     └── Finished
          ├── Success ── Cached, Mapped(map_states), Skipped
          ├── Failed ── TimedOut, TriggerFailed
          ├── Looped(loop_count)
          └── Cancelled

Skipped counts as a success everywhere. A failed state's ``result`` is the exception that
caused it, and its ``exception`` attribute holds the same object.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._model._task import Task

__all__ = (
    "Cached",
    "Cancelled",
    "Failed",
    "Finished",
    "Looped",
    "Mapped",
    "Pending",
    "ReferenceStates",
    "Retrying",
    "Running",
    "Scheduled",
    "Skipped",
    "State",
    "Success",
    "TimedOut",
    "TriggerFailed",
)


class State:
    """Base of all states.

    Two states are equal when they have the same type and data (``result`` and the subclass's
    fields), whatever their messages, as in Prefect 1; they hash by identity.

    Args:
        message: A human-readable explanation of the state.
        result: The value the state carries: a task's return value, or the exception of a failure.
    """

    __slots__ = ("message", "result")
    color = "#999999"

    def __init__(self, message: str | None = None, result: Any = None) -> None:
        self.message = message
        self.result = result

    def __repr__(self) -> str:
        name = type(self).__name__
        if self.message:
            return f"<{name}: {self.message!r}>"
        return f"<{name}>"

    def __eq__(self, other: object) -> bool:
        # as in Prefect 1: type and data, not the message
        if type(self) is not type(other):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in _slots(type(self)) if s != "message")

    # hashed by identity, as in Prefect 1: states go in sets (a terminal_state_handler's
    # reference states); equality still compares type and fields
    __hash__ = object.__hash__

    @property
    def exception(self) -> BaseException | None:
        """The exception carried by a failed (or otherwise signalled) state, else None."""
        return self.result if isinstance(self.result, BaseException) else None

    def is_pending(self) -> bool:
        """True for Pending and its subclasses (Scheduled, Retrying)."""
        return isinstance(self, Pending)

    def is_scheduled(self) -> bool:
        """True for Scheduled and Retrying."""
        return isinstance(self, Scheduled)

    def is_retrying(self) -> bool:
        """True for Retrying."""
        return isinstance(self, Retrying)

    def is_running(self) -> bool:
        """True for Running."""
        return isinstance(self, Running)

    def is_finished(self) -> bool:
        """True for every Finished state."""
        return isinstance(self, Finished)

    def is_successful(self) -> bool:
        """True for Success and its subclasses (Cached, Mapped, Skipped)."""
        return isinstance(self, Success)

    def is_failed(self) -> bool:
        """True for Failed and its subclasses (TimedOut, TriggerFailed)."""
        return isinstance(self, Failed)

    def is_skipped(self) -> bool:
        """True for Skipped."""
        return isinstance(self, Skipped)

    def is_mapped(self) -> bool:
        """True for Mapped (a mapped task's parent state)."""
        return isinstance(self, Mapped)

    def is_cached(self) -> bool:
        """True for Cached."""
        return isinstance(self, Cached)

    def is_looped(self) -> bool:
        """True for Looped."""
        return isinstance(self, Looped)

    def is_timed_out(self) -> bool:
        """True for TimedOut."""
        return isinstance(self, TimedOut)

    def is_cancelled(self) -> bool:
        """True for Cancelled."""
        return isinstance(self, Cancelled)

    def is_trigger_failed(self) -> bool:
        """True for TriggerFailed."""
        return isinstance(self, TriggerFailed)


def _slots(cls: type) -> list[str]:
    return [s for c in cls.__mro__ for s in getattr(c, "__slots__", ())]


class Pending(State):
    """Not started yet."""

    __slots__ = ()


class Scheduled(Pending):
    """Waiting for ``start_time`` (None means now)."""

    __slots__ = ("start_time",)

    def __init__(self, message: str | None = None, result: Any = None, start_time: datetime | None = None) -> None:
        super().__init__(message, result)
        self.start_time = start_time


class Retrying(Scheduled):
    """A failed attempt that will run again at ``start_time``; ``run_count`` attempts so far."""

    __slots__ = ("run_count",)

    def __init__(
        self,
        message: str | None = None,
        result: Any = None,
        start_time: datetime | None = None,
        run_count: int = 1,
    ) -> None:
        super().__init__(message, result, start_time)
        self.run_count = run_count


class Running(State):
    """The task body is running."""

    __slots__ = ()


class Finished(State):
    """Base of every final state."""

    __slots__ = ()


class Success(Finished):
    """The task finished and ``result`` is its value."""

    __slots__ = ()


class Cached(Success):
    """The result came from a cache or target instead of running the task.

    Args:
        message: A human-readable explanation of the state.
        result: The cached value.
        cached_inputs: The task's inputs when the value was computed, as input name to
            `stable_hash` digest (what `aflow.cache_validators.hash_inputs` returns), or None.
        cached_parameters: The flow parameters when the value was computed, or None.
        cached_result_expiration: When the cache stops being valid (timezone-aware), or None for never.
    """

    __slots__ = ("cached_inputs", "cached_parameters", "cached_result_expiration")

    def __init__(
        self,
        message: str | None = None,
        result: Any = None,
        *,
        cached_inputs: dict[str, str] | None = None,
        cached_parameters: dict[str, Any] | None = None,
        cached_result_expiration: datetime | None = None,
    ) -> None:
        super().__init__(message, result)
        self.cached_inputs = cached_inputs
        self.cached_parameters = cached_parameters
        self.cached_result_expiration = cached_result_expiration


class Skipped(Success):
    """The task did not run (SKIP, an upstream skip or a case that did not match)."""

    __slots__ = ()


class Mapped(Success):
    """A mapped task's parent: ``map_states`` holds the children's states, ``result`` their values."""

    __slots__ = ("map_states",)

    def __init__(
        self,
        message: str | None = None,
        result: Any = None,
        map_states: list[State] | None = None,
    ) -> None:
        super().__init__(message, result)
        self.map_states: list[State] = [] if map_states is None else map_states

    @property
    def n_map_states(self) -> int:
        """The number of children."""
        return len(self.map_states)


class Failed(Finished):
    """The task failed; ``result`` is the exception."""

    __slots__ = ()


class TimedOut(Failed):
    """The task body ran past its ``timeout`` and was cancelled."""

    __slots__ = ()


class TriggerFailed(Failed):
    """The task's trigger did not pass, so its body never ran."""

    __slots__ = ()


class Looped(Finished):
    """The task raised LOOP; it runs again with ``loop_count`` and ``result`` in context."""

    __slots__ = ("loop_count",)

    def __init__(self, message: str | None = None, result: Any = None, loop_count: int = 1) -> None:
        super().__init__(message, result)
        self.loop_count = loop_count


class Cancelled(Finished):
    """The run was cancelled before the task could finish."""

    __slots__ = ()


class ReferenceStates(set[State]):
    """The reference tasks' states that a flow's ``terminal_state_handler`` receives.

    A set of states, as in Prefect 1 (a mapped reference task contributes its children's
    states), so a Prefect 1 handler (``for s in states: s.is_failed()``) works unchanged.
    ``by_task`` maps each reference task to its own final state (a mapped task's `Mapped`).

    Args:
        states: The states of the set.
        by_task: Reference task to final state.
    """

    __slots__ = ("by_task",)

    def __init__(self, states: Iterable[State] = (), by_task: Mapping[Task, State] | None = None) -> None:
        super().__init__(states)
        self.by_task: dict[Task, State] = dict(by_task or {})
