"""Triggers decide, from its upstream states, whether a task runs.

A trigger is a function ``(upstream_states: Mapping[Edge, State]) -> bool``. It returns True to
run the task; returning False, raising `~aflow.signals.TRIGGERFAIL` or raising any other error
makes the task TriggerFailed (never retried). It may raise another signal (``not_all_skipped``
raises SKIP). A reduce's mapped upstream arrives as its `~aflow.states.Mapped` state; the
built-in triggers look through it at every child's state (use `child_states` in your own).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeAlias

from . import signals
from .states import Mapped, State

if TYPE_CHECKING:
    from ._model._edge import Edge

__all__ = (
    "Trigger",
    "all_failed",
    "all_finished",
    "all_successful",
    "always_run",
    "any_failed",
    "any_successful",
    "child_states",
    "not_all_skipped",
    "some_failed",
    "some_successful",
)

Trigger: TypeAlias = Callable[[Mapping["Edge", State]], bool]
"""The type of a trigger: upstream states by edge in, True (run) out; it may raise a signal."""


def child_states(upstream_states: Mapping[Edge, State]) -> list[State]:
    """The upstream states, with each Mapped state replaced by its children's states."""
    out: list[State] = []
    for s in upstream_states.values():
        if isinstance(s, Mapped):
            out.extend(s.map_states)
        else:
            out.append(s)
    return out


def all_successful(upstream_states: Mapping[Edge, State]) -> bool:
    """Run if every upstream succeeded (Skipped counts as success). The default trigger."""
    if not all(s.is_successful() for s in child_states(upstream_states)):
        raise signals.TRIGGERFAIL('Trigger was "all_successful" but some of the upstream tasks failed.')
    return True


def all_finished(upstream_states: Mapping[Edge, State]) -> bool:
    """Run once every upstream finished, whatever its outcome."""
    if not all(s.is_finished() for s in child_states(upstream_states)):
        raise signals.TRIGGERFAIL('Trigger was "all_finished" but some of the upstream tasks were not finished.')
    return True


always_run = all_finished
"""Alias of `all_finished`: run whatever happened upstream (for cleanup tasks)."""


def all_failed(upstream_states: Mapping[Edge, State]) -> bool:
    """Run only if every upstream failed."""
    if not all(s.is_failed() for s in child_states(upstream_states)):
        raise signals.TRIGGERFAIL('Trigger was "all_failed" but some of the upstream tasks succeeded.')
    return True


def any_successful(upstream_states: Mapping[Edge, State]) -> bool:
    """Run if at least one upstream succeeded, or there are no upstreams."""
    states = child_states(upstream_states)
    if states and not any(s.is_successful() for s in states):
        raise signals.TRIGGERFAIL('Trigger was "any_successful" but none of the upstream tasks succeeded.')
    return True


def any_failed(upstream_states: Mapping[Edge, State]) -> bool:
    """Run if at least one upstream failed, or there are no upstreams."""
    states = child_states(upstream_states)
    if states and not any(s.is_failed() for s in states):
        raise signals.TRIGGERFAIL('Trigger was "any_failed" but none of the upstream tasks failed.')
    return True


def not_all_skipped(upstream_states: Mapping[Edge, State]) -> bool:
    """Skip if every upstream was skipped; otherwise run only if all succeeded."""
    states = child_states(upstream_states)
    if states and all(s.is_skipped() for s in states):
        raise signals.SKIP("All upstreams were skipped")
    return all_successful(upstream_states)


def _count_trigger(
    name: str, predicate: Callable[[State], bool], at_least: float | None, at_most: float | None
) -> Trigger:
    def _bound(limit: float, total: int) -> float:
        # a fraction below 1 is a share of the upstreams; otherwise a count
        return limit * total if 0 < limit < 1 else limit

    def trigger(upstream_states: Mapping[Edge, State]) -> bool:
        if not upstream_states:  # no upstreams: nothing to count, it runs (Prefect 1)
            return True
        states = child_states(upstream_states)
        total = len(states)
        hits = sum(1 for s in states if predicate(s))
        if at_least is not None and hits < _bound(at_least, total):
            raise signals.TRIGGERFAIL(f'Trigger was "{name}" but only {hits} of {total} upstream tasks matched.')
        if at_most is not None and hits > _bound(at_most, total):
            raise signals.TRIGGERFAIL(f'Trigger was "{name}" but {hits} of {total} upstream tasks matched.')
        return True

    trigger.__name__ = trigger.__qualname__ = name
    return trigger


def some_successful(at_least: float | None = None, at_most: float | None = None) -> Trigger:
    """Make a trigger that runs if the number of successful upstreams lies within bounds.

    Without bounds, or for a task without upstreams, it always runs (as in Prefect 1).

    Args:
        at_least: Minimum successes: a count, or a fraction of the upstreams when below 1.
        at_most: Maximum successes, counted the same way.
    """
    return _count_trigger("some_successful", State.is_successful, at_least, at_most)


def some_failed(at_least: float | None = None, at_most: float | None = None) -> Trigger:
    """Make a trigger that runs if the number of failed upstreams lies within bounds.

    Without bounds, or for a task without upstreams, it always runs (as in Prefect 1).

    Args:
        at_least: Minimum failures: a count, or a fraction of the upstreams when below 1.
        at_most: Maximum failures, counted the same way.
    """
    return _count_trigger("some_failed", State.is_failed, at_least, at_most)
