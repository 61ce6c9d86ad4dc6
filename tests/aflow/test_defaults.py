from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest

import aflow
from aflow import Flow, Parameter, Task, defaults_from_attrs


class Greet(Task):
    def __init__(self, greeting: Any = "hello", punctuation: Any = "!", **kwargs: Any) -> None:
        self.greeting = greeting
        self.punctuation = punctuation
        super().__init__(**kwargs)

    @defaults_from_attrs("greeting", "punctuation")
    async def run(self, name: Any, greeting: Any = None, punctuation: Any = None) -> tuple[Any, Any, Any]:
        return (name, greeting, punctuation)


class SyncGreet(Task):
    def __init__(self, greeting: Any = "hello", **kwargs: Any) -> None:
        self.greeting = greeting
        super().__init__(**kwargs)

    @defaults_from_attrs("greeting")
    def run(self, name: Any, greeting: Any = None) -> tuple[Any, Any, int]:
        return (name, greeting, threading.get_ident())


class Lazy:
    """A lazy default: counts its resolutions and records the thread they ran in."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.calls = 0
        self.threads: list[int] = []

    async def resolve(self) -> Any:
        self.calls += 1
        self.threads.append(threading.get_ident())
        return self.value


def waiting_pair() -> tuple[Callable[[], Awaitable[str]], Callable[[], Awaitable[str]]]:
    """Two zero-argument resolvers that each wait until the other one has started.

    Resolving them one after the other deadlocks, so a serial implementation fails the
    ``fail_after`` guard instead of returning. The events are made on first use, inside
    whichever event loop runs the resolvers.
    """
    events: list[anyio.Event] = []

    def both() -> list[anyio.Event]:
        if not events:
            events.extend([anyio.Event(), anyio.Event()])
        return events

    async def resolve_a() -> str:
        a, b = both()
        a.set()
        with anyio.fail_after(5):
            await b.wait()
        return "A"

    async def resolve_b() -> str:
        a, b = both()
        b.set()
        with anyio.fail_after(5):
            await a.wait()
        return "B"

    return resolve_a, resolve_b


# -- filling from attributes ------------------------------------------------------------------


async def test_absent_arguments_are_filled_from_attributes():
    assert await Greet(greeting="hi", punctuation="?").run("bob") == ("bob", "hi", "?")


async def test_given_keyword_wins_over_attribute():
    assert await Greet(greeting="hi").run("bob", greeting="yo") == ("bob", "yo", "!")


async def test_explicit_none_stays_none():
    assert await Greet(greeting="hi").run("bob", greeting=None) == ("bob", None, "!")


async def test_positional_arguments_count_as_given():
    # both given positionally: no "multiple values" collision, and None stays None
    assert await Greet(greeting="hi", punctuation="?").run("bob", "yo", None) == ("bob", "yo", None)
    # only the first defaulted one given positionally: the second is still filled
    assert await Greet(greeting="hi", punctuation="?").run("bob", "yo") == ("bob", "yo", "?")


async def test_attribute_none_is_passed_as_none():
    assert await Greet(greeting=None).run("bob") == ("bob", None, "!")


async def test_attribute_read_at_call_time_not_at_decoration():
    t = Greet(greeting="hi")
    t.greeting = "changed"
    assert await t.run("bob") == ("bob", "changed", "!")


def test_unknown_name_raises_type_error():
    with pytest.raises(TypeError, match="nope"):

        class Bad(Task):
            @defaults_from_attrs("nope")
            async def run(self, x=None):
                return x


def test_sync_run_fills_defaults_when_called_directly():
    name, greeting, _ = SyncGreet(greeting="hi").run("bob")
    assert (name, greeting) == ("bob", "hi")


# -- lazy defaults ----------------------------------------------------------------------------


async def test_lazy_object_default_is_awaited_at_run_time():
    lazy = Lazy("secret")
    t = Greet(greeting=lazy)
    assert lazy.calls == 0  # nothing resolved when the task is built
    assert await t.run("bob") == ("bob", "secret", "!")
    assert lazy.calls == 1
    assert await t.run("bob") == ("bob", "secret", "!")
    assert lazy.calls == 2  # resolved again on each run, not cached


async def test_lazy_coroutine_function_default_is_awaited():
    calls = []

    async def fetch():
        calls.append(1)
        return "from-coro"

    assert await Greet(greeting=fetch).run("bob") == ("bob", "from-coro", "!")
    assert calls == [1]


async def test_coroutine_function_with_required_argument_is_not_lazy():
    async def needs_arg(x):
        return x  # pragma: no cover - never called

    _name, greeting, _ = await Greet(greeting=needs_arg).run("bob")
    assert greeting is needs_arg


async def test_given_argument_skips_lazy_resolution():
    lazy = Lazy("secret")
    assert await Greet(greeting=lazy).run("bob", greeting="plain") == ("bob", "plain", "!")
    assert await Greet(greeting=lazy).run("bob", None) == ("bob", None, "!")
    assert lazy.calls == 0


async def test_lazy_defaults_of_one_call_resolve_concurrently():
    # each resolver waits for the other to have started: resolving them one after the
    # other would deadlock (and fail on the guard) instead of returning
    resolve_a, resolve_b = waiting_pair()

    with anyio.fail_after(5):
        assert await Greet(greeting=resolve_a, punctuation=resolve_b).run("bob") == ("bob", "A", "B")


async def test_lazy_default_in_a_flow_with_upstream_values():
    lazy = Lazy("secret")
    with Flow("f") as flow:
        name = Parameter("name")
        g = Greet(greeting=lazy)(name)
        other = Greet(greeting=lazy)(name=name, greeting=g[1])

    state = await flow.run(name="ann")
    assert state.is_successful()
    assert state.result[g].result == ("ann", "secret", "!")
    assert state.result[other].result == ("ann", "secret", "!")
    assert lazy.calls == 1  # `other` got greeting from upstream: its lazy default was not used


async def test_lazy_defaults_resolve_concurrently_in_a_flow():
    resolve_a, resolve_b = waiting_pair()

    with Flow("f") as flow:
        g = Greet(greeting=resolve_a, punctuation=resolve_b)("bob")

    with anyio.fail_after(5):
        state = await flow.run()
    assert state.result[g].result == ("bob", "A", "B")


async def test_sync_run_in_flow_resolves_lazy_default_on_loop_then_runs_body_in_thread():
    lazy = Lazy("secret")
    with Flow("f") as flow:
        g = SyncGreet(greeting=lazy)("bob")

    state = await flow.run()
    assert state.is_successful(), state.result[g]
    name, greeting, body_thread = state.result[g].result
    loop_thread = threading.get_ident()
    assert (name, greeting) == ("bob", "secret")
    assert lazy.threads == [loop_thread]
    assert body_thread != loop_thread


def test_sync_run_with_lazy_default_from_plain_sync_code():
    lazy = Lazy("secret")
    name, greeting, _ = SyncGreet(greeting=lazy).run("bob")
    assert (name, greeting) == ("bob", "secret")
    assert lazy.calls == 1


def test_sync_run_with_several_lazy_defaults_from_plain_sync_code_resolves_concurrently():
    class Two(Task):
        def __init__(self, a: Any, b: Any, **kwargs: Any) -> None:
            self.a = a
            self.b = b
            super().__init__(**kwargs)

        @defaults_from_attrs("a", "b")
        def run(self, a: Any = None, b: Any = None) -> tuple[Any, Any]:
            return (a, b)

    resolve_a, resolve_b = waiting_pair()

    assert Two(resolve_a, resolve_b).run() == ("A", "B")


async def test_sync_run_with_lazy_default_in_a_worker_thread_resolves_on_the_loop():
    lazy = Lazy("secret")
    t = SyncGreet(greeting=lazy)
    name, greeting, body_thread = await anyio.to_thread.run_sync(t.run, "bob")
    assert (name, greeting) == ("bob", "secret")
    assert lazy.threads == [threading.get_ident()]
    assert body_thread != threading.get_ident()


async def test_resolver_error_from_a_worker_thread_is_raised_once():
    calls = []

    async def broken():
        calls.append(1)
        raise RuntimeError("vault is sealed")

    t = SyncGreet(greeting=broken)
    with pytest.raises(RuntimeError, match="vault is sealed"):
        await anyio.to_thread.run_sync(t.run, "bob")
    assert calls == [1]  # not retried in a second event loop


async def test_sync_run_with_lazy_default_called_directly_inside_a_loop_is_refused():
    lazy = Lazy("secret")
    with pytest.raises(RuntimeError, match="running event loop"):
        SyncGreet(greeting=lazy).run("bob")
    assert lazy.calls == 0


async def test_failing_lazy_default_fails_the_task_in_a_flow():
    async def broken():
        raise KeyError("no such secret")

    with Flow("f") as flow:
        g = Greet(greeting=broken)("bob")

    state = await flow.run()
    assert state.is_failed()
    assert isinstance(state.result[g].result, KeyError)


async def test_lazy_default_protocol_is_runtime_checkable():
    assert isinstance(Lazy(1), aflow.LazyDefault)
    assert not isinstance(object(), aflow.LazyDefault)
