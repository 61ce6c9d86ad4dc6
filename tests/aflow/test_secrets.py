"""aflow.secrets: lazy local secrets, and their redaction from logs and state messages."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import aflow
from aflow import Flow, Secret, Task, context, defaults_from_attrs, task
from aflow import secrets as secrets_mod
from aflow.exceptions import AflowError, SecretNotFound
from aflow.secrets import REDACTED, RedactSecrets, redact, register
from aflow.signals import FAIL
from aflow.states import Failed, State, Success
from aflow.testing import FakeClock

GUARD = 10
TOKEN = "tok-5f3a9c-secret"  # distinctive: no other text of a run contains it


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    secrets_mod._clear()  # the registry is process-wide: no test may see another's values
    yield
    secrets_mod._clear()


async def run(flow: Flow, **kwargs: Any) -> State:
    with anyio.fail_after(GUARD):
        return await flow.run(**kwargs)


class Needs(Task):
    def __init__(self, token: Any = None, **kwargs: Any) -> None:
        self.token = token
        super().__init__(**kwargs)

    @defaults_from_attrs("token")
    async def run(self, token: Any = None) -> Any:
        return token


# -- reading --------------------------------------------------------------------------------------


def test_repr_shows_only_the_name() -> None:
    secret = Secret("GITHUB_TOKEN")
    with context.temporary(secrets={"GITHUB_TOKEN": TOKEN}):
        assert secret.get() == TOKEN
    assert repr(secret) == "Secret('GITHUB_TOKEN')"
    assert TOKEN not in repr(secret)
    assert TOKEN not in str(secret)


def test_secret_is_exported_and_is_a_lazy_default() -> None:
    assert aflow.Secret is Secret
    assert isinstance(Secret("X"), aflow.LazyDefault)
    assert Secret("X") == Secret("X")
    assert Secret("X") != Secret("Y")
    assert len({Secret("X"), Secret("X")}) == 1


@pytest.mark.parametrize("name", ["", None, 3])
def test_a_secret_needs_a_name(name: Any) -> None:
    with pytest.raises(ValueError, match="non-empty name"):
        Secret(name)


async def test_resolve_reads_the_run_context() -> None:
    with context.temporary(secrets={"API": TOKEN}):
        assert await Secret("API").resolve() == TOKEN


async def test_a_task_attribute_secret_is_read_from_flow_run_context() -> None:
    with Flow("ctx") as flow:
        out = Needs(token=Secret("API"))()
    state = await run(flow, context={"secrets": {"API": TOKEN}})
    assert state.is_successful()
    assert state.result[out].result == TOKEN


async def test_a_sync_run_gets_its_lazy_secret_too() -> None:
    class SyncNeeds(Task):
        def __init__(self, token: Any = None, **kwargs: Any) -> None:
            self.token = token
            super().__init__(**kwargs)

        @defaults_from_attrs("token")
        def run(self, token: Any = None) -> Any:
            return token

    with Flow("sync") as flow:
        out = SyncNeeds(token=Secret("API"))()
    state = await run(flow, context={"secrets": {"API": TOKEN}})
    assert state.result[out].result == TOKEN


async def test_the_environment_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFLOW__CONTEXT__SECRETS__FROM_ENV", "env-value-123x")
    assert await Secret("FROM_ENV").resolve() == "env-value-123x"
    with context.temporary(secrets={"FROM_ENV": "ctx-value-456y"}):  # the context wins
        assert await Secret("FROM_ENV").resolve() == "ctx-value-456y"


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ('{"user": "u1", "key": "k-9x7"}', {"user": "u1", "key": "k-9x7"}),
        ("[1, 2]", [1, 2]),
        ("12345", 12345),
        ("not json at all", "not json at all"),
        ('"quoted"', "quoted"),
    ],
)
async def test_json_strings_are_decoded(monkeypatch: pytest.MonkeyPatch, raw: str, decoded: Any) -> None:
    monkeypatch.setenv("AFLOW__CONTEXT__SECRETS__J", raw)
    assert await Secret("J").resolve() == decoded
    with context.temporary(secrets={"J": raw}):
        assert await Secret("J").resolve() == decoded


async def test_non_string_context_values_are_returned_as_they_are() -> None:
    value = {"user": "admin-x1", "password": "pw-77aa"}
    with context.temporary(secrets={"CREDS": value}):
        assert await Secret("CREDS").resolve() is value
    assert redact("admin-x1 pw-77aa") == f"{REDACTED} {REDACTED}"


async def test_a_missing_secret_names_where_it_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFLOW__CONTEXT__SECRETS__NOPE", raising=False)
    with pytest.raises(SecretNotFound) as info:
        await Secret("NOPE").resolve()
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, AflowError)
    message = str(info.value)
    assert "'NOPE'" in message
    assert "AFLOW__CONTEXT__SECRETS__NOPE" in message
    assert "context" in message
    assert "'secrets'" in message
    assert message == info.value.args[0]  # not KeyError's quoted repr


async def test_a_missing_secret_fails_the_task_in_a_flow() -> None:
    with Flow("missing") as flow:
        out = Needs(token=Secret("ABSENT_SECRET"))()
    state = await run(flow, context={"secrets": {"OTHER": "x"}})
    assert state.is_failed()
    assert isinstance(state.result[out], Failed)
    assert isinstance(state.result[out].result, SecretNotFound)


def test_context_secrets_must_be_a_mapping() -> None:
    with context.temporary(secrets=["A"]), pytest.raises(TypeError, match="mapping"):
        Secret("A").get()


# -- redaction ------------------------------------------------------------------------------------


def test_redact_is_the_identity_until_something_is_registered() -> None:
    assert secrets_mod._pattern is None
    assert redact(f"x {TOKEN} y") == f"x {TOKEN} y"


def test_every_value_read_is_registered() -> None:
    with context.temporary(secrets={"A": TOKEN, "B": '{"user": "svc-user", "key": "k3y-777", "n": 5}'}):
        Secret("A").get()
        Secret("B").get()
    assert redact(f"a={TOKEN}!") == f"a={REDACTED}!"
    assert redact("svc-user:k3y-777 n=5") == f"{REDACTED}:{REDACTED} n=5"  # each str leaf; numbers are not
    assert "k3y-777" not in redact('{"user": "svc-user", "key": "k3y-777", "n": 5}')


def test_register_masks_the_longest_match_and_the_repr_form() -> None:
    register("abc123")
    register("abc123-longer")
    register("back\\slash'q")
    assert redact("abc123-longer and abc123") == f"{REDACTED} and {REDACTED}"
    assert redact(repr(ValueError("back\\slash'q"))) == f'ValueError("{REDACTED}")'
    assert redact(repr("back\\slash'q")) == f'"{REDACTED}"'


def test_short_and_non_string_values_are_not_registered() -> None:
    register("ab")
    register(42)
    register(None)
    assert secrets_mod._pattern is None
    assert redact("ab 42") == "ab 42"


def test_the_filter_redacts_messages_args_and_tracebacks() -> None:
    register(TOKEN)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("tests.secrets.filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token is %s", TOKEN)
        logger.warning(f"inline {TOKEN}")  # noqa: G004 (an f-string is what leaks)
        logger.warning("no secret here: %d", 7)
        try:
            raise ValueError(f"bad token {TOKEN}")
        except ValueError:
            logger.exception("failed")
        logger.warning("stack", stack_info=True)
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.propagate = True
    out = stream.getvalue()
    assert TOKEN not in out
    assert f"token is {REDACTED}" in out
    assert f"inline {REDACTED}" in out
    assert "no secret here: 7" in out
    assert f"ValueError: bad token {REDACTED}" in out


def test_the_filter_keeps_records_without_secrets_untouched() -> None:
    register(TOKEN)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %s", ("plain",), None)
    assert RedactSecrets().filter(record) is True
    assert record.msg == "value %s"
    assert record.args == ("plain",)


async def test_task_logs_never_show_a_secret(caplog: pytest.LogCaptureFixture) -> None:
    class Chatty(Task):
        def __init__(self, token: Any = None, **kwargs: Any) -> None:
            self.token = token
            super().__init__(**kwargs)

        @defaults_from_attrs("token")
        async def run(self, token: Any = None) -> None:
            self.logger.info("using token %s", token)
            self.logger.info(f"inline {token}")  # noqa: G004 (an f-string is what leaks)
            context.logger.warning("via context: %r", {"token": token})

    @task(log_stdout=True)
    def printer(token: str) -> None:
        print(f"printed {token}")

    with Flow("logs") as flow:
        printer(Needs(token=Secret("API"))())
        Chatty(token=Secret("API"))()
    with caplog.at_level(logging.INFO, logger="aflow"):
        state = await run(flow, context={"secrets": {"API": TOKEN}})
    assert state.is_successful()
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("aflow.task.")]
    assert f"using token {REDACTED}" in messages
    assert f"inline {REDACTED}" in messages
    assert f"printed {REDACTED}" in messages
    assert any(REDACTED in m and "via context" in m for m in messages)
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("how", ["exception", "signal"])
async def test_failed_state_messages_never_show_a_secret(how: str) -> None:
    class Leaky(Task):
        def __init__(self, token: Any = None, **kwargs: Any) -> None:
            self.token = token
            super().__init__(**kwargs)

        @defaults_from_attrs("token")
        async def run(self, token: Any = None) -> None:
            if how == "signal":
                raise FAIL(f"rejected {token}")
            raise ValueError(f"rejected {token}")

    seen: list[str] = []

    def record(t: Task, old: State, new: State) -> None:
        seen.append(new.message or "")

    with Flow("leak") as flow:
        out = Leaky(token=Secret("API"), max_retries=1, state_handlers=[record])()
    state = await run(flow, context={"secrets": {"API": TOKEN}}, clock=FakeClock())
    final = state.result[out]
    assert isinstance(final, Failed)
    assert final.message is not None
    assert f"rejected {REDACTED}" in final.message
    assert any("Retrying" in m for m in seen)
    assert not any(TOKEN in m for m in seen)


async def test_state_messages_are_untouched_while_no_secret_is_registered() -> None:
    @task
    async def boom() -> None:
        raise ValueError("plain failure text")

    with Flow("plain") as flow:
        out = boom()
    state = await run(flow)
    assert state.result[out].message == "Error during execution of task: ValueError('plain failure text')"
    assert secrets_mod._pattern is None


async def test_secret_values_still_reach_results() -> None:
    # redaction is for logs and messages: the value itself is handed over intact
    with Flow("value") as flow:
        out = Needs(token=Secret("API"))()
    state = await run(flow, context={"secrets": {"API": TOKEN}})
    assert isinstance(state.result[out], Success)
    assert state.result[out].result == TOKEN


async def test_engine_messages_and_logs_never_show_a_secret(caplog: pytest.LogCaptureFixture, tmp_path: Any) -> None:
    from aflow.history import RunStore

    token = "tok-9f8e7d6c5b"

    class UsesToken(Task):
        def __init__(self, token: Any = None, **kwargs: Any) -> None:
            self.token = token
            super().__init__(**kwargs)

        @defaults_from_attrs("token")
        async def run(self, token: Any = None) -> str:
            return "ok"

    def leaky_handler(task: Task, old: State, new: State) -> None:
        if new.is_successful():
            raise RuntimeError(f"handler saw {token}")

    def leaky_trigger(upstream: Any) -> bool:
        raise ValueError(f"trigger saw {token}")

    def leaky_flow_handler(flow: Flow, old: State, new: State) -> None:
        if new.is_finished():
            raise RuntimeError(f"flow handler saw {token}")

    with Flow("leaks", state_handlers=[leaky_flow_handler]) as flow:
        first = UsesToken(token=Secret("API"), state_handlers=[leaky_handler])()
        second = UsesToken(token="x", trigger=leaky_trigger)(upstream_tasks=[first])

    async with RunStore(tmp_path / "h.db") as store:
        with caplog.at_level(logging.ERROR, logger="aflow"):
            state = await flow.run(context={"secrets": {"API": token}}, history=store)
        (run,) = await store.list_runs()
        history = await store.task_history(run.run_id)

    messages = [state.message, state.result[first].message, state.result[second].message]
    assert all(m is not None and token not in m for m in messages), messages
    assert REDACTED in (state.result[first].message or "")
    assert all(token not in (h.message or "") for h in history)
    assert all(token not in r.getMessage() for r in caplog.records)
    assert any("flow handler saw" in r.getMessage() for r in caplog.records)
