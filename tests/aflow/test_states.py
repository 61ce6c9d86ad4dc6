from __future__ import annotations

import pytest

from aflow import states
from aflow.states import (
    Cached,
    Cancelled,
    Failed,
    Finished,
    Looped,
    Mapped,
    Pending,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
)

PREDICATES = (
    "is_pending",
    "is_scheduled",
    "is_retrying",
    "is_running",
    "is_finished",
    "is_successful",
    "is_failed",
    "is_skipped",
    "is_mapped",
    "is_cached",
    "is_looped",
    "is_timed_out",
    "is_cancelled",
    "is_trigger_failed",
)

# every state kind and the predicates that must be true for it (all others must be false)
EXPECTED: dict[type[State], set[str]] = {
    Pending: {"is_pending"},
    Scheduled: {"is_pending", "is_scheduled"},
    Retrying: {"is_pending", "is_scheduled", "is_retrying"},
    Running: {"is_running"},
    Finished: {"is_finished"},
    Success: {"is_finished", "is_successful"},
    Cached: {"is_finished", "is_successful", "is_cached"},
    Skipped: {"is_finished", "is_successful", "is_skipped"},
    Mapped: {"is_finished", "is_successful", "is_mapped"},
    Failed: {"is_finished", "is_failed"},
    TimedOut: {"is_finished", "is_failed", "is_timed_out"},
    TriggerFailed: {"is_finished", "is_failed", "is_trigger_failed"},
    Looped: {"is_finished", "is_looped"},
    Cancelled: {"is_finished", "is_cancelled"},
}


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_predicates_follow_the_state_tree(cls: type[State]) -> None:
    state = cls()
    truths = {name for name in PREDICATES if getattr(state, name)()}
    assert truths == EXPECTED[cls]


def test_every_exported_state_is_covered() -> None:
    exported = {getattr(states, n) for n in states.__all__} - {State, states.ReferenceStates}  # a set, not a state
    assert exported == set(EXPECTED)


def test_skipped_counts_as_success_and_not_failure() -> None:
    s = Skipped("nothing to do")
    assert s.is_successful()
    assert not s.is_failed()
    assert isinstance(s, Success)


def test_looped_and_cancelled_are_neither_success_nor_failure() -> None:
    for s in (Looped(), Cancelled()):
        assert s.is_finished()
        assert not s.is_successful()
        assert not s.is_failed()


def test_failed_state_exposes_its_exception() -> None:
    err = ValueError("boom")
    assert Failed("x", result=err).exception is err
    assert Success(result=3).exception is None
    assert TimedOut(result=TimeoutError("t")).exception is not None


def test_retrying_carries_start_time_and_run_count() -> None:
    r = Retrying("again", run_count=3)
    assert r.run_count == 3
    assert r.start_time is None
    assert r.is_scheduled()
    assert not r.is_finished()


def test_mapped_holds_child_states() -> None:
    children: list[State] = [Success(result=1), Failed(result=ValueError())]
    m = Mapped("m", result=[1, None], map_states=children)
    assert m.n_map_states == 2
    assert m.map_states is children
    assert Mapped().map_states == []
    assert Mapped().n_map_states == 0


def test_equality_compares_type_and_fields() -> None:
    assert Success("ok", result=1) == Success("ok", result=1)
    assert Success("ok", result=1) != Success("ok", result=2)
    assert Success("ok", result=1) != Skipped("ok", result=1)
    assert Retrying(run_count=1) != Retrying(run_count=2)
    assert Looped(loop_count=2) == Looped(loop_count=2)


def test_equality_ignores_the_message_as_in_prefect1() -> None:
    # a Prefect 1 test's `state.result[t] == Success(result=5)` holds on a run's "Task run succeeded."
    assert Success("Task run succeeded.", result=5) == Success(result=5)
    assert Failed("x", result=1) != Failed("x", result=2)
    assert Success("x", result=1) != Skipped("x", result=1)


def test_states_hash_by_identity_and_go_in_sets() -> None:
    # as in Prefect 1 (was: unhashable): a terminal_state_handler gets a set of states
    a, b = Success("ok", result=1), Success("ok", result=1)
    assert hash(a) == hash(a)
    assert a == b
    states = {a, Failed("bad")}
    assert a in states
    assert len(states) == 2
    assert any(s.is_failed() for s in states)


def test_repr_shows_kind_and_message() -> None:
    assert repr(Failed("it broke")) == "<Failed: 'it broke'>"
    assert repr(Pending()) == "<Pending>"
