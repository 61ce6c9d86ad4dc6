"""The kit for writing task families: what `aflow_tasks` builds on, and what your own families may use.

- `is_lazy` / `resolve_lazy`: tell a lazy value (an `aflow.Secret`, an awaitable factory) from a
  plain one and await it at run time, for values resolved outside `defaults_from_attrs`.
- `retry_or_fail`: the one policy for a transient failure (throttling, a 5xx, a service briefly
  away): `aflow.signals.RETRY` while the task has retries left (after the service's
  ``Retry-After``, capped by the task's ``max_retry_delay``), else `aflow.signals.FAIL` with the
  service's message; `retry_after_seconds` reads a ``Retry-After`` header.
- `map_errors` with `Failure`: turn a client library's exceptions into task failures at one
  boundary, in the manner of httpx's ``map_httpcore_exceptions``: a classifier says what an
  error means (its message, whether it is transient), the kit raises the signal.
- `ClientFactory`: one client per configuration per flow run (`aflow.run_resource`), closed
  when the run ends; a client of its own outside a run. ``override`` / ``use`` inject another
  opener or a ready client for the current context only (tests), without patching anything.
- `to_the_end` and `cleanup`: await a call that starts something remote (a job, an upload) so that
  no cancellation cuts it in half, and make cleanup calls shielded, bounded and quiet.

A family written with the kit::

    clients = ClientFactory("acme", open_acme_client)

    def acme_failure(exc: Exception) -> Failure:
        return Failure(f"Acme said: {exc}", transient=getattr(exc, "status", 0) >= 500)

    class AcmeGet(Task):
        async def run(self, item: str) -> Any:
            async with clients.client(("acme", self.url), self.url) as acme:
                with map_errors(AcmeError, acme_failure):
                    return await acme.get(item)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, final

import anyio

from . import context
from ._model._defaults import is_lazy as is_lazy
from ._model._defaults import resolve_lazy as resolve_lazy
from ._runtime._run_context import task_run_var
from ._runtime._run_resources import run_resource
from ._runtime._shielded import to_the_end as to_the_end
from .signals import FAIL, RETRY

if TYPE_CHECKING:
    from ._model._task import Task

__all__ = (
    "ClientFactory",
    "Failure",
    "cleanup",
    "is_lazy",
    "map_errors",
    "resolve_lazy",
    "retry_after_seconds",
    "retry_or_fail",
    "to_the_end",
)

P = ParamSpec("P")
C = TypeVar("C")


def _current_task(task: Task | None) -> Task | None:
    if task is not None:
        return task
    run = task_run_var.get()
    return None if run is None else run.task


def retry_or_fail(
    problem: str,
    *,
    task: Task | None = None,
    retry_after: float | None = None,
    fail: Callable[[str], FAIL] = FAIL,
) -> RETRY | FAIL:
    """The signal for a transient failure: `RETRY` while the task has retries left, else `FAIL`.

    The run count is the task run's (``context.task_run_count``); outside a task run (a ``run``
    called directly) there is nothing to retry and the answer is FAIL. A RETRY waits
    ``retry_after`` seconds (what the service asked for, capped by the task's
    ``max_retry_delay``), or the task's ``retry_delay`` when the service said nothing. The
    message names the attempt; a FAIL after retries says none are left. Raise what it returns::

        raise retry_or_fail(f"{label} returned 503: {body}", retry_after=7.0)

    Args:
        problem: What went wrong, with the service's message (no secrets in it).
        task: The failing task; None for the task of the current task run.
        retry_after: Seconds the service asked to wait (``Retry-After``), or None.
        fail: Makes the FAIL (a subclass carrying details, such as a status code).

    Returns:
        The signal to raise.
    """
    task = _current_task(task)
    run_count = context.get("task_run_count")
    if task is None or run_count is None:
        return fail(problem)
    if run_count <= task.max_retries:
        delay = retry_after
        cap = task.max_retry_delay
        if delay is not None and cap is not None:
            delay = min(delay, cap.total_seconds())
        when = f"in {delay:g}s" if delay is not None else "after the task's retry_delay"
        return RETRY(f"{problem} (attempt {run_count} of {task.max_retries + 1}; retrying {when})", delay=delay)
    if task.max_retries:
        problem = f"{problem} (no retries left after {run_count} attempts)"
    return fail(problem)


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def retry_after_seconds(value: str | None, *, date: str | None = None) -> float | None:
    """The delay a ``Retry-After`` header asks for, in seconds (None when absent or unreadable).

    The header holds seconds or an HTTP-date; a date is measured from the response's ``Date``
    header when given (both come from the service's clock), else from the local clock.

    Args:
        value: The header's value.
        date: The response's ``Date`` header, if any.
    """
    value = (value or "").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    when = _http_date(value)
    if when is None:
        return None
    now = (_http_date(date) if date else None) or datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)


@final
@dataclass(frozen=True, slots=True)
class Failure:
    """What a client library's error means for the task: the answer of a `map_errors` classifier.

    Args:
        message: The task's failure message (the service's own words, no secrets).
        transient: Whether trying again may help (throttling, a 5xx, a dropped connection):
            then `retry_or_fail` decides between RETRY and FAIL.
        retry_after: Seconds the service asked to wait before trying again, or None.
        fail: Makes the FAIL (a `aflow.signals.FAIL` subclass carrying details).
    """

    message: str
    transient: bool = False
    retry_after: float | None = None
    fail: Callable[[str], FAIL] = FAIL

    def signal(self, task: Task | None = None) -> RETRY | FAIL:
        """The signal to raise for this failure (see `retry_or_fail` for a transient one).

        Args:
            task: The failing task; None for the task of the current task run.
        """
        if self.transient:
            return retry_or_fail(self.message, task=task, retry_after=self.retry_after, fail=self.fail)
        return self.fail(self.message)


@final
class map_errors:  # a function to its users: ``with map_errors(...)``
    """Turn a client library's errors raised in the block into task failures (`RETRY`/`FAIL`).

    The classifier gets each exception of ``errors`` and returns the `Failure` it means (or None
    to let it through); the block then raises ``failure.signal()``. Cancellation, aflow's own
    signals and other exceptions pass untouched. Works with ``with`` and ``async with``::

        with map_errors((ClientError, BotoCoreError), aws_failure):
            await s3.put_object(...)

    Args:
        errors: The exception type (or types) to map.
        classify: ``(exception) -> Failure | None``.
        task: The task whose retries count; None for the task of the current task run.
        chain: Keep the original exception as the signal's ``__cause__`` (False hides it, for
            errors whose text may hold secrets).
    """

    __slots__ = ("_chain", "_classify", "_errors", "_task")

    def __init__(
        self,
        errors: type[BaseException] | tuple[type[BaseException], ...],
        classify: Callable[[Any], Failure | None],
        *,
        task: Task | None = None,
        chain: bool = True,
    ) -> None:
        self._errors = errors
        self._classify = classify
        self._task = task
        self._chain = chain

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        # cancellation, aflow's signals, KeyboardInterrupt... are BaseExceptions: never mapped
        if not isinstance(exc, Exception) or not isinstance(exc, self._errors):
            return False
        failure = self._classify(exc)
        if failure is None:
            return False
        signal = failure.signal(self._task)
        if self._chain:
            raise signal from exc
        raise signal from None

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)


@final
class ClientFactory(Generic[P, C]):
    """One client per configuration per flow run, and the public seam to inject another in tests.

    ``client(key, *args)`` gives the flow run's client for ``key`` as an async context manager:
    the first use in a run enters ``opener(*args)``, later uses (from any task of the run) get
    the same client, and the run closes it when it ends, on failure and cancellation too. Outside
    a flow run the block gets a client of its own, closed on exit.

    ``override(opener)`` and ``use(client)`` replace the opener, or hand out a ready client, for
    the current context only (`contextvars`): what a test sets inside ``with`` is seen by the flow
    runs it starts there, and by nothing else::

        with aflow_tasks.aws.clients.override(counting_opener):
            state = await flow.run()

    Args:
        name: Names the family in resource keys and messages (``"aflow_tasks.aws"``).
        opener: ``(*args) -> async context manager`` yielding a new client.
    """

    __slots__ = ("_override", "name", "opener")

    def __init__(self, name: str, opener: Callable[P, AbstractAsyncContextManager[C]]) -> None:
        self.name = name
        self.opener = opener
        self._override: ContextVar[Callable[P, AbstractAsyncContextManager[C]] | None] = ContextVar(
            f"{name}.clients", default=None
        )

    def __repr__(self) -> str:
        return f"ClientFactory({self.name!r})"

    def client(self, key: Hashable, *args: P.args, **kwargs: P.kwargs) -> AbstractAsyncContextManager[C]:
        """The flow run's client for ``key`` (see the class docstring).

        Args:
            key: A hashable description of the configuration (two uses share a client iff equal);
                it must not hold secrets in the clear (use a digest).
            *args: Passed to the opener.
            **kwargs: Passed to the opener.
        """
        opener = self._override.get() or self.opener
        return run_resource((self.name, opener, key), lambda: opener(*args, **kwargs))

    @contextmanager
    def override(self, opener: Callable[P, AbstractAsyncContextManager[C]]) -> Iterator[None]:
        """Open clients with ``opener`` inside the block (this context only): the test seam.

        ``factory.opener`` is the default one, so an override may wrap it (count, record, proxy).

        Args:
            opener: Takes the arguments the default opener takes.
        """
        token = self._override.set(opener)
        try:
            yield
        finally:
            self._override.reset(token)

    def use(self, client: C) -> AbstractContextManager[None]:
        """Hand out ``client`` inside the block (this context only); it is never closed for you.

        Args:
            client: A ready client (a fake, or one pointed at a local server).
        """

        @asynccontextmanager
        async def given(*args: Any, **kwargs: Any) -> AsyncIterator[C]:
            yield client

        return self.override(given)


async def cleanup(
    call: Callable[[], Awaitable[Any]],
    what: str,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    *,
    expected: Callable[[Exception], bool] | None = None,
    limit: float = 30.0,
) -> None:
    """Make a cleanup call after a failure or a cancellation: shielded, bounded, never raising.

    The call runs to its end whatever cancellation reaches the caller (see `to_the_end`), for at
    most ``limit`` seconds. The error or cancellation being handled matters more than the
    cleanup's own failure, which is logged (at DEBUG when ``expected`` says it only means there
    was nothing to clean up, else at WARNING) and dropped.

    Args:
        call: Makes the call (stop an execution, terminate a job, abort an upload).
        what: What it does, for the log (``"stop execution arn:..."``).
        logger: Where a failure goes.
        expected: Tells the failures that only mean there was nothing to clean up.
        limit: Seconds to wait for it.
    """

    async def bounded() -> None:
        with anyio.move_on_after(limit):
            try:
                await call()
            except Exception as exc:
                quiet = expected is not None and expected(exc)
                logger.log(logging.DEBUG if quiet else logging.WARNING, "could not %s: %s", what, exc)

    await to_the_end(bounded())
