from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aflow import Flow, cache_validators, task
from aflow._runtime._run_context import FlowRunContext, flow_run_var
from aflow._runtime._run_resources import RunResources
from aflow.cache_validators import (
    all_inputs,
    all_parameters,
    duration_only,
    hash_inputs,
    never_use,
    partial_inputs_only,
    partial_parameters_only,
)
from aflow.states import Cached
from aflow.testing import FakeClock

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
EARLIER = NOW - timedelta(minutes=5)


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    """Stand in for a flow run whose clock reads NOW, as the engine's context would."""
    fake = FakeClock(NOW)
    run = FlowRunContext(
        flow_name="f",
        flow_run_id="id",
        flow_run_name="name",
        parameters={},
        date=NOW,
        extra={},
        clock=fake,
        resources=RunResources(),
    )
    token = flow_run_var.set(run)
    try:
        yield fake
    finally:
        flow_run_var.reset(token)


def cached(
    *,
    inputs: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    expiration: datetime | None = None,
) -> Cached:
    return Cached(
        result="value",
        cached_inputs=None if inputs is None else hash_inputs(inputs),
        cached_parameters=parameters,
        cached_result_expiration=expiration,
    )


def test_public_names_are_sorted_and_documented() -> None:
    assert list(cache_validators.__all__) == sorted(cache_validators.__all__)
    for name in cache_validators.__all__:
        obj = getattr(cache_validators, name)
        if callable(obj) and name != "CacheValidator":
            assert obj.__module__ == "aflow.cache_validators", name
            assert obj.__doc__, name


def test_cached_state_carries_the_cache_fields() -> None:
    state = Cached("hit", 3, cached_inputs={"x": "ab"}, cached_parameters={"p": 1}, cached_result_expiration=NOW)
    assert (state.message, state.result) == ("hit", 3)
    assert state.cached_inputs == {"x": "ab"}
    assert state.cached_parameters == {"p": 1}
    assert state.cached_result_expiration == NOW
    plain = Cached(result=3)
    assert (plain.cached_inputs, plain.cached_parameters, plain.cached_result_expiration) == (None, None, None)
    assert plain.is_cached()
    assert plain.is_successful()
    assert plain != Cached(result=3, cached_parameters={"p": 1})  # the fields take part in equality
    assert plain == Cached(result=3)


def test_never_use(clock: FakeClock) -> None:
    assert never_use(cached(), {}, {}) is False
    assert never_use(cached(expiration=LATER), None, None) is False


async def test_duration_only_follows_the_run_clock(clock: FakeClock) -> None:
    state = cached(expiration=LATER, inputs={"x": 1})
    assert duration_only(state, {"x": 2}, {"p": 9}) is True  # inputs and parameters do not matter
    assert duration_only(cached(expiration=EARLIER), {}, {}) is False
    await clock.sleep(299)
    assert duration_only(state, {}, {}) is True
    await clock.sleep(1)  # the instant of expiry: no longer valid
    assert clock.now() == LATER
    assert duration_only(state, {}, {}) is False
    assert duration_only(cached(expiration=None), {}, {}) is True  # no expiry: valid forever


async def test_duration_only_follows_the_clock_of_a_real_flow_run() -> None:
    state = cached(expiration=LATER)

    @task
    async def check() -> bool:
        return duration_only(state, {}, {})

    with Flow("cache") as flow:
        result = check()
    assert (await flow.run(clock=FakeClock(EARLIER))).result[result].result is True
    assert (await flow.run(clock=FakeClock(LATER + timedelta(seconds=1)))).result[result].result is False


def test_outside_a_run_expiry_uses_the_system_clock() -> None:
    assert flow_run_var.get() is None
    real_now = datetime.now(UTC)
    assert duration_only(cached(expiration=real_now + timedelta(days=1)), {}, {}) is True
    assert duration_only(cached(expiration=real_now - timedelta(days=1)), {}, {}) is False


def test_a_naive_expiration_counts_as_utc(clock: FakeClock) -> None:
    assert duration_only(cached(expiration=LATER.replace(tzinfo=None)), {}, {}) is True
    assert duration_only(cached(expiration=EARLIER.replace(tzinfo=None)), {}, {}) is False


async def test_all_inputs(clock: FakeClock) -> None:
    state = cached(inputs={"x": 1, "y": {"b": [1, 2], "a": {3}}}, expiration=LATER)
    assert all_inputs(state, {"y": {"a": {3}, "b": [1, 2]}, "x": 1}, {}) is True
    assert all_inputs(state, {"x": 1, "y": {"a": {3}, "b": [1, 2, 3]}}, {}) is False
    assert all_inputs(state, {"x": 1.0, "y": {"a": {3}, "b": [1, 2]}}, {}) is False  # 1.0 is not 1
    assert all_inputs(state, {"x": 1}, {}) is False  # an input missing
    assert all_inputs(state, {"x": 1, "y": {"a": {3}, "b": [1, 2]}, "z": 0}, {}) is False  # one more
    await clock.sleep(300)
    assert all_inputs(state, {"x": 1, "y": {"a": {3}, "b": [1, 2]}}, {}) is False  # expired


def test_all_inputs_without_inputs(clock: FakeClock) -> None:
    assert all_inputs(cached(), {}, {}) is True
    assert all_inputs(cached(), None, None) is True
    assert all_inputs(cached(inputs={}), None, {}) is True
    assert all_inputs(cached(), {"x": 1}, {}) is False


async def test_all_parameters(clock: FakeClock) -> None:
    state = cached(parameters={"a": 1, "b": [2]}, expiration=LATER)
    assert all_parameters(state, {"ignored": 1}, {"b": [2], "a": 1}) is True
    assert all_parameters(state, {}, {"a": 1, "b": [3]}) is False
    assert all_parameters(state, {}, {"a": 1}) is False
    assert all_parameters(state, {}, {"a": 1, "b": [2], "c": 0}) is False
    assert all_parameters(cached(), {}, None) is True
    assert all_parameters(cached(), {}, {"a": 1}) is False
    await clock.sleep(86_400)
    assert all_parameters(state, {}, {"a": 1, "b": [2]}) is False


async def test_partial_inputs_only(clock: FakeClock) -> None:
    state = cached(inputs={"x": 1, "y": 2, "z": [3]}, expiration=LATER)
    validator = partial_inputs_only(validate_on=["x", "z"])
    assert validator(state, {"x": 1, "y": 99, "z": [3]}, {}) is True
    assert validator(state, {"x": 1, "z": [3]}, {}) is True
    assert validator(state, {"x": 2, "y": 2, "z": [3]}, {}) is False
    assert validator(state, {"x": 1, "y": 2}, {}) is False  # z missing now
    assert partial_inputs_only(["w"])(state, {"w": 1}, {}) is False  # w was not there then
    assert partial_inputs_only(["w"])(state, {}, {}) is True  # absent in both
    assert partial_inputs_only(None)(state, {"x": 5}, {}) is True  # nothing to compare
    assert partial_inputs_only()(cached(inputs={"x": 1}), {"x": 5}, {}) is True
    await clock.sleep(300)
    assert validator(state, {"x": 1, "y": 2, "z": [3]}, {}) is False
    assert partial_inputs_only(None)(state, {}, {}) is False


async def test_partial_parameters_only(clock: FakeClock) -> None:
    state = cached(parameters={"a": 1, "b": 2}, expiration=LATER)
    validator = partial_parameters_only(validate_on=("a",))
    assert validator(state, {}, {"a": 1, "b": 99}) is True
    assert validator(state, {}, {"a": 2, "b": 2}) is False
    assert validator(state, {}, {"b": 2}) is False
    assert validator(cached(), {}, {"a": 1}) is False  # nothing was cached for a
    assert validator(cached(), {}, {"b": 1}) is True
    assert partial_parameters_only()(state, {}, {"a": 5}) is True
    assert partial_parameters_only({"a", "b"})(state, {"x": 0}, {"a": 1, "b": 2, "c": 3}) is True
    await clock.sleep(300)
    assert validator(state, {}, {"a": 1, "b": 2}) is False


def test_validate_on_must_be_a_collection_of_names() -> None:
    with pytest.raises(TypeError, match="not the string 'ab'"):
        partial_inputs_only("ab")
    with pytest.raises(TypeError, match="names"):
        partial_parameters_only([1])  # type: ignore[list-item]


def test_validate_on_is_read_once() -> None:
    names = ["x"]
    validator = partial_inputs_only(names)
    names.append("y")
    state = cached(inputs={"x": 1, "y": 1})
    assert validator(state, {"x": 1, "y": 2}, {}) is True
