"""``defaults_from_attrs`` and lazy defaults (values awaited when the task runs)."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import anyio
import anyio.from_thread

__all__ = ("LazyDefault", "defaults_from_attrs", "is_lazy", "resolve_defaults", "resolve_lazy")

# values of these types are never lazy: `_fill` skips the inspection for them (the common case)
_PLAIN = frozenset({str, int, float, bool, bytes, dict, list, tuple})

F = TypeVar("F", bound=Callable[..., Any])


@runtime_checkable
class LazyDefault(Protocol):
    """A default resolved when the task runs: anything with an async ``resolve()``.

    Secrets implement it, so ``MyTask(token=Secret("GITHUB"))`` reads the secret at run time,
    not when the flow is built. A coroutine function that takes no arguments counts too.
    """

    async def resolve(self) -> Any:
        """Return the value to use."""


def is_lazy(value: Any) -> bool:
    """Whether ``value`` is a lazy default (see `LazyDefault`)."""
    resolve = getattr(type(value), "resolve", None)
    if resolve is not None and inspect.iscoroutinefunction(resolve):
        return True
    if inspect.iscoroutinefunction(value):
        params = inspect.signature(value).parameters.values()
        return all(p.default is not p.empty or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params)
    return False


async def resolve_lazy(value: Any) -> Any:
    """Await a lazy default and return its value."""
    if inspect.iscoroutinefunction(value):
        return await value()
    return await value.resolve()


async def _resolve_many(kwargs: dict[str, Any], lazy: dict[str, Any]) -> None:
    if len(lazy) == 1:
        ((name, value),) = lazy.items()
        kwargs[name] = await resolve_lazy(value)
        return

    async def one(name: str, value: Any) -> None:
        kwargs[name] = await resolve_lazy(value)

    async with anyio.create_task_group() as tg:
        for name, value in lazy.items():
            tg.start_soon(one, name, value)


async def resolve_defaults(owner: Any, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Fill ``kwargs`` with the attribute defaults of a ``defaults_from_attrs`` run.

    Lazy defaults are awaited concurrently. A no-op for a run without the decorator.
    """
    spec: tuple[tuple[str, int], ...] | None = getattr(fn, "__aflow_defaults__", None)
    if spec is None:
        return
    lazy = _fill(owner, spec, args, kwargs)
    if lazy:
        await _resolve_many(kwargs, lazy)


def _fill(
    owner: Any, spec: tuple[tuple[str, int], ...], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    lazy: dict[str, Any] = {}
    for name, position in spec:
        if name in kwargs or position < len(args):
            continue  # given by the caller (an explicit None included)
        value = getattr(owner, name)
        if value is not None and type(value) not in _PLAIN and is_lazy(value):
            lazy[name] = value
        else:
            kwargs[name] = value
    return lazy


def _run_resolution_from_sync(kwargs: dict[str, Any], lazy: dict[str, Any]) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            f"a sync run() with lazy defaults ({', '.join(lazy)}) cannot be called directly "
            "inside a running event loop; await the defaults first or run the task in a flow"
        )
    started = False

    async def resolve() -> None:
        nonlocal started
        started = True
        await _resolve_many(kwargs, lazy)

    try:
        anyio.from_thread.run(resolve)  # in an anyio worker thread
    except RuntimeError:
        if started:  # a resolver raised it: do not resolve everything a second time
            raise
        anyio.run(resolve)  # plain sync code: no loop anywhere


def defaults_from_attrs(*names: str) -> Callable[[F], F]:
    """Fill ``run`` arguments left out of the call from the task's attributes of the same name.

    A lazy default (an object with an async ``resolve()``, such as a secret reference, or a
    zero-argument coroutine function) is awaited at run time; all of a call's lazy defaults are
    awaited concurrently. An argument the caller passes, ``None`` included, is kept as given,
    by keyword or by position. Works for ``async def run`` and for ``def run``::

        class Greet(Task):
            def __init__(self, greeting="hello", **kwargs):
                self.greeting = greeting
                super().__init__(**kwargs)

            @defaults_from_attrs("greeting")
            async def run(self, name, greeting=None):
                return f"{greeting} {name}"

    Args:
        *names: Names that are both ``run`` parameters and task attributes.
    """

    def decorator(run: F) -> F:
        params = list(inspect.signature(run).parameters)
        missing = [n for n in names if n not in params]
        if missing:
            raise TypeError(f"defaults_from_attrs: {run.__qualname__}() has no parameter {', '.join(missing)}")
        # position among the positional arguments after ``self``
        spec = tuple((n, params.index(n) - 1) for n in names)

        if inspect.iscoroutinefunction(run):

            @functools.wraps(run)
            async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                lazy = _fill(self, spec, args, kwargs)
                if lazy:
                    await _resolve_many(kwargs, lazy)
                return await run(self, *args, **kwargs)

            wrapper: Any = async_wrapper
        else:

            @functools.wraps(run)
            def sync_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                lazy = _fill(self, spec, args, kwargs)
                if lazy:
                    _run_resolution_from_sync(kwargs, lazy)
                return run(self, *args, **kwargs)

            wrapper = sync_wrapper
        wrapper.__aflow_defaults__ = spec
        return wrapper  # type: ignore[no-any-return]

    return decorator
