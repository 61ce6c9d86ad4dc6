"""The integration kit (`aflow.integration`) against real tasks in real flows, with a fake clock."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from aflow import Flow, Task, context, signals
from aflow.integration import ClientFactory, Failure, cleanup, map_errors, retry_after_seconds, retry_or_fail
from aflow.testing import FakeClock


class ServiceError(Exception):
    """What a client library raises: a status and the service's message."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class StatusFail(signals.FAIL):
    """A FAIL carrying the status, as a family's would."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def service_failure(exc: ServiceError) -> Failure:
    return Failure(
        f"the service said {exc.status}: {exc}",
        transient=exc.status == 429 or exc.status >= 500,
        retry_after=exc.retry_after,
        fail=lambda message: StatusFail(message, status=exc.status),
    )


class Flaky(Task):
    """Raises the service errors it is given, one per attempt, then returns ``"ok"``."""

    def __init__(self, errors: list[ServiceError], **kwargs: Any) -> None:
        self.errors = errors
        self.attempts = 0
        super().__init__(**kwargs)

    async def run(self) -> str:
        self.attempts += 1
        with map_errors(ServiceError, service_failure):
            if self.errors:
                raise self.errors.pop(0)
        return "ok"


# -- retry_or_fail and map_errors in flows --------------------------------------------------------


async def test_a_transient_failure_retries_after_what_the_service_asked() -> None:
    flaky = Flaky(
        [ServiceError(503, "busy", retry_after=7), ServiceError(429, "slow down", retry_after=3)], max_retries=2
    )
    with Flow("kit") as flow:
        t = flaky()
    clock = FakeClock()
    state = await flow.run(clock=clock)
    assert state.is_successful()
    assert state.result[t].result == "ok"
    assert clock.sleeps == [7, 3]
    assert isinstance(t, Flaky)
    assert t.attempts == 3


async def test_the_delay_is_capped_by_max_retry_delay_and_defaults_to_retry_delay() -> None:
    flaky = Flaky(
        [ServiceError(503, "busy", retry_after=600), ServiceError(500, "oops")],
        max_retries=2,
        retry_delay=2,
        max_retry_delay=10,
    )
    with Flow("kit") as flow:
        flaky()
    clock = FakeClock()
    assert (await flow.run(clock=clock)).is_successful()
    assert clock.sleeps == [10, 2]


async def test_out_of_retries_fails_with_the_services_message() -> None:
    flaky = Flaky([ServiceError(503, "busy")] * 3, max_retries=1)
    with Flow("kit") as flow:
        t = flaky()
    state = await flow.run(clock=FakeClock())
    final = state.result[t]
    assert final.is_failed()
    assert final.message == "the service said 503: busy (no retries left after 2 attempts)"
    assert isinstance(final.result, StatusFail)
    assert final.result.status == 503


async def test_a_lasting_failure_is_a_plain_fail() -> None:
    flaky = Flaky([ServiceError(404, "no such thing")])
    with Flow("kit") as flow:
        t = flaky()
    clock = FakeClock()
    state = await flow.run(clock=clock)
    assert state.result[t].message == "the service said 404: no such thing"
    assert isinstance(state.result[t].result, StatusFail)
    assert clock.sleeps == []


async def test_retry_messages_name_the_attempt() -> None:
    flaky = Flaky([], max_retries=2)
    with context.temporary(task_run_count=1):
        first = retry_or_fail("busy", task=flaky, retry_after=1.5)
        later = retry_or_fail("busy", task=flaky)
    assert isinstance(first, signals.RETRY)
    assert (first.message, first.delay) == ("busy (attempt 1 of 3; retrying in 1.5s)", 1.5)
    assert isinstance(later, signals.RETRY)
    assert (later.message, later.delay) == ("busy (attempt 1 of 3; retrying after the task's retry_delay)", None)


async def test_outside_a_task_run_a_transient_failure_fails() -> None:
    flaky = Flaky([ServiceError(503, "busy")], max_retries=5)
    with pytest.raises(StatusFail, match=r"^the service said 503: busy$"):
        await flaky.run()
    assert type(retry_or_fail("x")) is signals.FAIL


async def test_map_errors_lets_other_exceptions_and_signals_through() -> None:
    with pytest.raises(KeyError), map_errors(ServiceError, service_failure):
        raise KeyError("k")
    with pytest.raises(signals.SKIP):
        async with map_errors(Exception, lambda exc: Failure("mapped")):
            raise signals.SKIP("skip me")
    with pytest.raises(ServiceError), map_errors(ServiceError, lambda exc: None):  # the classifier declined
        raise ServiceError(400, "not mine")
    with map_errors(ServiceError, service_failure):
        pass


async def test_map_errors_lets_cancellation_through() -> None:
    with anyio.CancelScope() as scope:
        async with map_errors(BaseException, lambda exc: Failure("swallowed")):
            scope.cancel()
            await anyio.sleep(1)
    assert scope.cancelled_caught


async def test_map_errors_keeps_or_hides_the_cause() -> None:
    with pytest.raises(signals.FAIL) as kept, map_errors(ServiceError, service_failure):
        raise ServiceError(400, "bad")
    assert isinstance(kept.value.__cause__, ServiceError)
    with pytest.raises(signals.FAIL) as hidden:
        async with map_errors(ServiceError, service_failure, chain=False):
            raise ServiceError(400, "token=s3cret")
    assert hidden.value.__cause__ is None
    assert hidden.value.__suppress_context__


# -- ClientFactory -----------------------------------------------------------------------------------


class Client:
    """A client that knows its configuration and whether it was closed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.closed = False


class Opened:
    def __init__(self) -> None:
        self.clients: list[Client] = []

    @asynccontextmanager
    async def __call__(self, url: str) -> AsyncIterator[Client]:
        client = Client(url)
        self.clients.append(client)
        try:
            yield client
        finally:
            client.closed = True


opened = Opened()
clients: ClientFactory[[str], Client] = ClientFactory("tests.kit", opened)


class Fetch(Task):
    """Uses the run's client for ``url`` and returns it."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.url = url
        super().__init__(**kwargs)

    async def run(self) -> Client:
        async with clients.client(self.url, self.url) as client:
            await anyio.lowlevel.checkpoint()
            return client


@pytest.fixture(autouse=True)
def fresh_opened() -> None:
    opened.clients.clear()


async def test_a_flow_run_shares_one_client_per_configuration_and_closes_it() -> None:
    with Flow("clients") as flow:
        a = [Fetch("http://a")() for _ in range(5)]
        b = Fetch("http://b")()
    state = await flow.run()
    assert state.is_successful()
    assert [c.url for c in opened.clients] == ["http://a", "http://b"]
    assert {id(state.result[t].result) for t in a} == {id(opened.clients[0])}
    assert state.result[b].result is opened.clients[1]
    assert all(c.closed for c in opened.clients)


async def test_outside_a_flow_run_each_use_gets_a_client_of_its_own() -> None:
    first = await Fetch("http://a").run()
    second = await Fetch("http://a").run()
    assert first is not second
    assert first.closed
    assert second.closed


async def test_override_is_seen_inside_its_block_only() -> None:
    made: list[str] = []

    @asynccontextmanager
    async def recording(url: str) -> AsyncIterator[Client]:
        made.append(url)
        async with clients.opener(url) as client:
            yield client

    with Flow("override") as flow:
        Fetch("http://a")()
        Fetch("http://a")()
    with clients.override(recording):
        assert (await flow.run()).is_successful()
    assert made == ["http://a"]
    assert (await flow.run()).is_successful()
    assert made == ["http://a"]  # the override ended with its block
    assert len(opened.clients) == 2


async def test_use_hands_out_a_ready_client_and_never_closes_it() -> None:
    mine = Client("http://fake")
    with Flow("use") as flow:
        t = Fetch("http://a")()
    with clients.use(mine):
        state = await flow.run()
        direct = await Fetch("http://b").run()
    assert state.result[t].result is mine
    assert direct is mine
    assert not mine.closed
    assert opened.clients == []
    assert repr(clients) == "ClientFactory('tests.kit')"


# -- cleanup and retry_after_seconds -----------------------------------------------------------------


async def test_cleanup_runs_to_its_end_when_the_caller_is_cancelled() -> None:
    done: list[str] = []

    async def undo() -> None:
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
        done.append("undone")

    with anyio.CancelScope() as scope:
        scope.cancel()
        await cleanup(undo, "undo it", logging.getLogger("tests.kit"))
    assert done == ["undone"]


async def test_cleanup_logs_its_failure_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "tests.kit")
    logger = logging.getLogger("tests.kit")

    async def broken() -> None:
        raise ServiceError(500, "gone wrong")

    async def absent() -> None:
        raise ServiceError(404, "nothing there")

    await cleanup(broken, "stop the job", logger)
    await cleanup(absent, "delete the job", logger, expected=lambda exc: getattr(exc, "status", 0) == 404)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "could not stop the job: gone wrong"),
        (logging.DEBUG, "could not delete the job: nothing there"),
    ]


async def test_cleanup_is_bounded() -> None:
    async def stuck() -> None:
        await anyio.sleep_forever()

    await cleanup(stuck, "wait forever", logging.getLogger("tests.kit"), limit=0.01)


def test_retry_after_seconds() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(" 2.5 ") == 2.5
    assert retry_after_seconds("-3") == 0.0
    assert retry_after_seconds(later, date=format_datetime(now, usegmt=True)) == 90.0
    assert retry_after_seconds(format_datetime(now, usegmt=True), date=later) == 0.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("") is None
    assert retry_after_seconds("soon") is None
