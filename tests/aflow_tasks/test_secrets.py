"""aflow_tasks.secrets: GetSecret and EnvVarSecret, whose results are never persisted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from aflow import Flow, context, task
from aflow import secrets as secrets_mod
from aflow.exceptions import SecretNotFound
from aflow.results import LocalResult, MemoryResult
from aflow.secrets import REDACTED, redact
from aflow.states import Failed, State, Success
from aflow_tasks.secrets import EnvVarSecret, GetSecret, SecretBase

GUARD = 10
TOKEN = "tsk-secret-8d1e0b"


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    secrets_mod._clear()
    yield
    secrets_mod._clear()


async def run(flow: Flow, **kwargs: Any) -> State:
    with anyio.fail_after(GUARD):
        return await flow.run(**kwargs)


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# -- GetSecret ------------------------------------------------------------------------------------


def test_get_secret_stores_its_name_and_is_named_after_it() -> None:
    t = GetSecret("API")
    assert t.secret_name == "API"
    assert t.name == "API"
    assert t.checkpoint is False
    bare = GetSecret()
    assert bare.secret_name is None
    assert bare.name == "GetSecret"


async def test_get_secret_reads_the_context_and_the_call_wins() -> None:
    with context.temporary(secrets={"A": TOKEN, "B": '{"k": "v-json-1"}'}):
        assert await GetSecret("A").run() == TOKEN
        assert await GetSecret("A").run(name="B") == {"k": "v-json-1"}
    assert redact(TOKEN) == REDACTED


async def test_get_secret_without_a_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"GetSecret needs the secret's name.*name="):
        await GetSecret().run()


async def test_get_secret_missing_raises_secret_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFLOW__CONTEXT__SECRETS__MISSING_ONE", raising=False)
    with pytest.raises(SecretNotFound, match="AFLOW__CONTEXT__SECRETS__MISSING_ONE"):
        await GetSecret("MISSING_ONE").run()


async def test_get_secret_in_a_flow_feeds_a_downstream_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFLOW__CONTEXT__SECRETS__ENV_ONLY", "from-env-4242")

    @task
    async def use(token: str, other: str) -> str:
        return f"{len(token)}:{len(other)}"

    with Flow("secrets") as flow:
        a = GetSecret("API")
        b = GetSecret()(name="ENV_ONLY")
        out = use(a(), b)
    state = await run(flow, context={"secrets": {"API": TOKEN}})
    assert state.is_successful()
    assert state.result[out].result == f"{len(TOKEN)}:{len('from-env-4242')}"


async def test_get_secret_failure_in_a_flow() -> None:
    with Flow("missing") as flow:
        out = GetSecret("NOT_THERE_AT_ALL")()
    state = await run(flow, context={"secrets": {}})
    assert isinstance(state.result[out], Failed)
    assert isinstance(state.result[out].result, SecretNotFound)


# -- EnvVarSecret ---------------------------------------------------------------------------------


def test_env_var_secret_stores_its_settings() -> None:
    t = EnvVarSecret("HOME_TOKEN", cast=int, raise_if_missing=True)
    assert (t.env_var, t.cast, t.raise_if_missing, t.name) == ("HOME_TOKEN", int, True, "HOME_TOKEN")
    d = EnvVarSecret()
    assert (d.env_var, d.cast, d.raise_if_missing) == (None, None, False)


async def test_env_var_secret_reads_casts_and_the_call_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFLOW_T_A", "123")
    monkeypatch.setenv("AFLOW_T_B", '{"x": "json-val-1"}')
    t = EnvVarSecret("AFLOW_T_A")
    assert await t.run() == "123"  # no JSON decoding without a cast
    assert await EnvVarSecret("AFLOW_T_A", cast=int).run() == 123
    assert await t.run(name="AFLOW_T_B", cast=json.loads) == {"x": "json-val-1"}
    assert redact("json-val-1") == REDACTED


async def test_env_var_secret_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFLOW_T_MISSING", raising=False)
    assert await EnvVarSecret("AFLOW_T_MISSING").run() is None
    with pytest.raises(ValueError, match="Environment variable not set: AFLOW_T_MISSING"):
        await EnvVarSecret("AFLOW_T_MISSING", raise_if_missing=True).run()
    with pytest.raises(ValueError, match="Environment variable not set"):
        await EnvVarSecret("AFLOW_T_MISSING").run(raise_if_missing=True)


async def test_env_var_secret_without_a_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="EnvVarSecret needs the variable's name"):
        await EnvVarSecret().run()


async def test_env_var_secret_in_a_flow_fails_without_showing_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFLOW_T_NUM", TOKEN)
    monkeypatch.delenv("AFLOW_T_GONE", raising=False)
    with Flow("env") as flow:
        ok = EnvVarSecret("AFLOW_T_NUM")()
        bad_cast = EnvVarSecret("AFLOW_T_NUM", cast=int)()
        gone = EnvVarSecret("AFLOW_T_GONE", raise_if_missing=True)()
    state = await run(flow)
    assert state.result[ok].result == TOKEN
    cast_state = state.result[bad_cast]
    assert isinstance(cast_state, Failed)
    assert cast_state.message is not None
    assert "invalid literal for int()" in cast_state.message
    assert TOKEN not in cast_state.message
    assert REDACTED in cast_state.message
    assert isinstance(state.result[gone], Failed)


# -- never persisted ------------------------------------------------------------------------------


async def test_a_checkpointing_flow_writes_no_secret_result(tmp_path: Path) -> None:
    @task
    async def plain() -> str:
        return "ordinary value"

    with Flow("checkpointed", checkpoint=True, result=LocalResult(tmp_path)) as flow:
        secret = GetSecret("API")()
        from_env = EnvVarSecret("AFLOW_T_CKPT")()
        normal = plain()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AFLOW_T_CKPT", "env-ckpt-value")
        state = await run(flow, context={"secrets": {"API": TOKEN}})
    assert state.is_successful()
    assert state.result[secret].result == TOKEN
    assert state.result[from_env].result == "env-ckpt-value"
    assert isinstance(state.result[normal], Success)
    written = files(tmp_path)
    assert len(written) == 1
    assert written[0].startswith("checkpointed/plain.")
    blobs = b"".join((tmp_path / f).read_bytes() for f in written)
    assert TOKEN.encode() not in blobs
    assert b"env-ckpt-value" not in blobs


@pytest.mark.parametrize(
    "task_args",
    [
        {"checkpoint": True},
        {"result": MemoryResult()},
        {"target": "secret.pkl"},
        {"cache_for": timedelta(minutes=1)},
    ],
)
def test_secret_tasks_refuse_persistence(task_args: dict[str, Any]) -> None:
    (attr,) = task_args
    with pytest.raises(ValueError, match=f"{attr}"):
        GetSecret("API", **task_args)
    with pytest.raises(ValueError, match=f"{attr}"):
        EnvVarSecret("X", **task_args)
    with Flow("f"), pytest.raises(ValueError, match=f"{attr}"):
        GetSecret("API")(task_args=task_args)


def test_secret_base_forces_checkpoint_false() -> None:
    class Custom(SecretBase):
        async def run(self) -> str:
            return "x"

    assert Custom().checkpoint is False
    assert Custom(checkpoint=False).checkpoint is False
    assert GetSecret("A").copy(name="renamed").checkpoint is False
    t = GetSecret("A")
    with pytest.raises(ValueError, match="never checkpointed"):
        t.checkpoint = True
    with Flow("f"), pytest.raises(ValueError, match="checkpoint=None"):
        t(task_args={"checkpoint": None})  # None would let the flow's checkpoint=True apply
    assert t.checkpoint is False


async def test_secret_base_run_returns_none_as_in_prefect_1() -> None:
    assert SecretBase().run() is None

    class NoRun(SecretBase):  # a subclass that does not override run inherits it
        pass

    with Flow("base") as flow:
        base = SecretBase()()
        inherited = NoRun()()
    state = await run(flow)
    assert isinstance(state, Success)
    for t in (base, inherited):
        assert isinstance(state.result[t], Success)
        assert state.result[t].result is None
