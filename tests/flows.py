"""Reusable sample flows for tests.

Each builder makes fresh tasks (so side-effect lists never leak between tests) and returns a
small record holding the flow, the tasks a test may want to look up in ``state.result``, and
the list the task bodies append to when they run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aflow import Flow, Parameter, Task, task


@dataclass
class Diamond:
    """``a -> (b, c) -> d``: a = x + 1, b = a * 2, c = a + 1, d = b + c (x=1 gives d=7)."""

    flow: Flow
    x: Parameter
    a: Task
    b: Task
    c: Task
    d: Task
    calls: list[str] = field(default_factory=list)


def diamond(x_default: int = 1) -> Diamond:
    """Build the diamond flow; ``calls`` records the tasks in the order their bodies ran."""
    calls: list[str] = []

    @task
    async def inc(n):
        calls.append(f"inc({n})")
        return n + 1

    @task
    async def double(n):
        calls.append(f"double({n})")
        return n * 2

    @task
    async def add(left, right):
        calls.append(f"add({left}, {right})")
        return left + right

    with Flow("diamond") as flow:
        x = Parameter("x", default=x_default)
        a = inc(x)
        b = double(a)
        c = inc(a)
        d = add(b, c)
    return Diamond(flow, x, a, b, c, d, calls)


@dataclass
class MapReduce:
    """``numbers -> square.map -> total``: squares each number and sums the squares."""

    flow: Flow
    numbers: Parameter
    squares: Task
    total: Task
    calls: list[str] = field(default_factory=list)


def map_reduce(default: list[int] | None = None) -> MapReduce:
    """Build the fan-out/reduce flow; the ``numbers`` parameter defaults to [1, 2, 3]."""
    calls: list[str] = []

    @task
    async def square(n):
        calls.append(f"square({n})")
        return n * n

    @task
    async def total(values):
        calls.append(f"total({values})")
        return sum(values)

    with Flow("map-reduce") as flow:
        numbers = Parameter("numbers", default=[1, 2, 3] if default is None else default)
        squares = square.map(numbers)
        result = total(squares)
    return MapReduce(flow, numbers, squares, result, calls)


@dataclass
class FailingLeaf:
    """``root -> (good, bad)``: ``bad`` raises ValueError("boom"), ``good`` returns "fine"."""

    flow: Flow
    root: Task
    good: Task
    bad: Task
    calls: list[str] = field(default_factory=list)


def failing_leaf() -> FailingLeaf:
    """Build a flow with one failing terminal task next to a succeeding one."""
    calls: list[str] = []

    @task
    async def root():
        calls.append("root")
        return 1

    @task
    async def good(n):
        calls.append("good")
        return "fine"

    @task
    async def bad(n):
        calls.append("bad")
        raise ValueError("boom")

    with Flow("failing-leaf") as flow:
        r = root()
        g = good(r)
        b = bad(r)
    return FailingLeaf(flow, r, g, b, calls)


@dataclass
class RetryThenSucceed:
    """``flaky -> after``: ``flaky`` fails its first ``failures`` attempts, then returns "ok"."""

    flow: Flow
    flaky: Task
    after: Task
    attempts: list[int] = field(default_factory=list)


def retry_then_succeed(failures: int = 2, max_retries: int = 2, retry_delay: float = 10.0) -> RetryThenSucceed:
    """Build a flow whose first task needs retries; run it with ``clock=FakeClock()``.

    ``attempts`` records the attempt number of each run of ``flaky`` (1, 2, ...).
    """
    attempts: list[int] = []

    @task(max_retries=max_retries, retry_delay=retry_delay)
    async def flaky():
        attempts.append(len(attempts) + 1)
        if len(attempts) <= failures:
            raise RuntimeError(f"attempt {len(attempts)} failed")
        return "ok"

    @task
    async def after(value):
        return value.upper()

    with Flow("retry-then-succeed") as flow:
        f = flaky()
        a = after(f)
    return RetryThenSucceed(flow, f, a, attempts)
