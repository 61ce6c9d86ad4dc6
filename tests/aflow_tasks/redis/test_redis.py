"""aflow_tasks.redis against real redis-server processes (see conftest.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

import aflow_tasks.redis as aredis
from aflow import Flow, Task
from aflow.states import Failed, Retrying, State, Success, TimedOut
from aflow_tasks.redis import RedisClient, RedisExecute, RedisGet, RedisSet
from tests.net import free_port

from .conftest import PASSWORD, Server, start_server

GUARD = 20
NO_RETRY = Retry(NoBackoff(), 0)


async def run(flow: Flow, **kwargs: Any) -> State:
    with anyio.fail_after(GUARD):
        return await flow.run(**kwargs)


def at(server: Server, **kwargs: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": server.port, **kwargs}


async def one(task: Task, **call: Any) -> State:
    """Run ``task`` alone in a flow; return its state."""
    with Flow("one") as flow:
        ref = task(**call)
    state = await run(flow)
    found: State = state.result[ref]
    return found


async def eventually(check: Any, what: str) -> None:
    with anyio.fail_after(GUARD):
        while not check():  # noqa: ASYNC110 (the server's state: nothing to wait on but polling)
            await anyio.sleep(0.02)


def clients_named(r: redis.Redis, name: str) -> list[dict[str, Any]]:
    return [c for c in r.client_list() if c.get("name") == name]


# --- arguments --------------------------------------------------------------------------------


def test_init_defaults_and_attributes() -> None:
    s = RedisSet()
    assert (s.host, s.port, s.db, s.password_secret, s.redis_connection_params) == (
        "localhost",
        6379,
        0,
        "REDIS_PASSWORD",
        {},
    )
    assert (s.redis_key, s.redis_val, s.ex, s.px, s.nx, s.xx) == (None, None, None, None, False, False)
    g = RedisGet(host="h", port=1, db=2, password_secret="P", redis_connection_params={"a": 1}, redis_key="k")
    assert (g.host, g.port, g.db, g.password_secret, g.redis_connection_params, g.redis_key) == (
        "h",
        1,
        2,
        "P",
        {"a": 1},
        "k",
    )
    e = RedisExecute(redis_cmd="PING", name="ping")
    assert (e.redis_cmd, e.name, e.host) == ("PING", "ping", "localhost")


async def test_required_values_are_value_errors_naming_them() -> None:
    with pytest.raises(ValueError, match="redis_key and redis_val must be provided: redis_val missing"):
        await RedisSet(redis_key="k").run()
    with pytest.raises(ValueError, match="redis_key missing"):
        await RedisSet(redis_val="v").run()
    with pytest.raises(ValueError, match="redis_key must be provided"):
        await RedisGet().run()
    with pytest.raises(ValueError, match="redis_cmd"):
        await RedisExecute().run()
    with pytest.raises(ValueError, match="redis_cmd cannot be split"):
        await RedisExecute(redis_cmd="SET k 'unclosed").run()
    state = await one(RedisGet())
    assert isinstance(state, Failed)
    assert "redis_key must be provided" in (state.message or "")


# --- RedisSet / RedisGet ----------------------------------------------------------------------


async def test_set_and_get_roundtrip(redis_server: Server, r: redis.Redis) -> None:
    with Flow("set-get") as flow:
        done = RedisSet(**at(redis_server), redis_key="k", redis_val="v1")()
        got = RedisGet(**at(redis_server))(redis_key="k", upstream_tasks=[done])
        missing = RedisGet(**at(redis_server), redis_key="nope")()
    state = await run(flow)
    assert state.is_successful()
    assert state.result[done].result is True
    assert state.result[got].result == b"v1"
    assert state.result[missing].result is None
    assert r.get("k") == b"v1"


async def test_call_values_win_over_init(redis_server: Server, r: redis.Redis) -> None:
    task = RedisSet(**at(redis_server), redis_key="init-key", redis_val="init-val")
    assert await task.run() is True
    assert await task.run(redis_key="call-key") is True
    assert await task.run(redis_val=7) is True
    assert (r.get("init-key"), r.get("call-key")) == (b"7", b"init-val")
    assert await RedisGet(**at(redis_server), redis_key="init-key").run(redis_key="call-key") == b"init-val"


async def test_ex_and_px_set_expiry(redis_server: Server, r: redis.Redis) -> None:
    task = RedisSet(**at(redis_server))
    assert await task.run(redis_key="ex", redis_val="v", ex=100) is True
    assert 90 <= r.ttl("ex") <= 100
    assert await task.run(redis_key="px", redis_val="v", px=50_000) is True
    assert 40_000 <= r.pttl("px") <= 50_000
    assert await task.run(redis_key="td", redis_val="v", ex=timedelta(minutes=5)) is True
    assert 290 <= r.ttl("td") <= 300
    assert await task.run(redis_key="plain", redis_val="v") is True
    assert r.ttl("plain") == -1
    init = RedisSet(**at(redis_server), redis_key="init-ex", redis_val="v", ex=200)
    assert await init.run() is True
    assert 190 <= r.ttl("init-ex") <= 200


async def test_nx_and_xx(redis_server: Server, r: redis.Redis) -> None:
    task = RedisSet(**at(redis_server))
    assert await task.run(redis_key="k", redis_val="1", xx=True) is None  # absent: xx prevents it
    assert r.get("k") is None
    assert await task.run(redis_key="k", redis_val="1", nx=True) is True
    assert await task.run(redis_key="k", redis_val="2", nx=True) is None  # present: nx prevents it
    assert r.get("k") == b"1"
    assert await task.run(redis_key="k", redis_val="3", xx=True) is True
    assert r.get("k") == b"3"
    assert await RedisSet(**at(redis_server), redis_key="k", redis_val="4", nx=True).run() is None
    state = await one(RedisSet(**at(redis_server), redis_key="k", redis_val="5", nx=True, xx=True))
    assert isinstance(state, Failed)
    assert "Redis said" in (state.message or "")
    assert r.get("k") == b"3"


async def test_decode_responses(redis_server: Server, r: redis.Redis) -> None:
    r.set("k", "héllo")
    params = {"decode_responses": True}
    assert await RedisGet(**at(redis_server), redis_connection_params=params, redis_key="k").run() == "héllo"
    assert await RedisGet(**at(redis_server), redis_key="k").run() == "héllo".encode()
    assert await RedisExecute(**at(redis_server), redis_connection_params=params).run("GET k") == "héllo"


async def test_db_selection(redis_server: Server, r: redis.Redis) -> None:
    assert await RedisSet(**at(redis_server, db=3), redis_key="k", redis_val="three").run() is True
    assert r.get("k") is None
    with redis_server.client(db=3) as r3:
        assert r3.get("k") == b"three"
    assert await RedisGet(**at(redis_server, db=3), redis_key="k").run() == b"three"
    assert await RedisGet(**at(redis_server), redis_key="k").run() is None


# --- RedisExecute -----------------------------------------------------------------------------


async def test_execute_returns_raw_replies(redis_server: Server, r: redis.Redis) -> None:
    task = RedisExecute(**at(redis_server))
    assert await task.run("INCR counter") == 1
    assert await task.run(redis_cmd="INCRBY counter 41") == 42
    assert await task.run("SET k v") == b"OK"  # the server's reply, not redis-py's True
    assert await task.run("get k") == b"v"
    assert await task.run("RPUSH l a b c") == 3
    assert await task.run("LRANGE l 0 -1") == [b"a", b"b", b"c"]
    assert await task.run("GET missing") is None
    assert await RedisExecute(**at(redis_server), redis_cmd="PING").run() == b"PONG"


async def test_execute_splits_like_a_shell(redis_server: Server, r: redis.Redis) -> None:
    task = RedisExecute(**at(redis_server))
    assert await task.run("""SET "key with spaces" 'a value; with spaces'""") == b"OK"
    assert r.get("key with spaces") == b"a value; with spaces"
    assert await task.run('HSET h "my field" "it\'s \\"quoted\\""') == 1
    assert r.hget("h", "my field") == b'it\'s "quoted"'


async def test_server_errors_fail_with_the_servers_message(redis_server: Server, r: redis.Redis) -> None:
    r.rpush("list", "x")
    state = await one(RedisGet(**at(redis_server), redis_key="list"))
    assert isinstance(state, Failed)
    assert "WRONGTYPE Operation against a key holding the wrong kind of value" in (state.message or "")
    state = await one(RedisExecute(**at(redis_server), redis_cmd="NOSUCHCOMMAND x"))
    assert isinstance(state, Failed)
    assert "unknown command" in (state.message or "")
    state = await one(RedisExecute(**at(redis_server), redis_cmd="INCR list"))
    assert isinstance(state, Failed)
    assert "WRONGTYPE" in (state.message or "")


# --- passwords --------------------------------------------------------------------------------


async def test_password_from_a_secret(
    redis_auth_server: Server, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    with Flow("auth") as flow:
        done = RedisSet(**at(redis_auth_server), redis_key="k", redis_val="v")()
        got = RedisGet(**at(redis_auth_server), redis_key="k")(upstream_tasks=[done])
    state = await run(flow, context={"secrets": {"REDIS_PASSWORD": PASSWORD}})
    assert state.is_successful(), state.result
    assert state.result[got].result == b"v"
    # another secret name, read from the environment
    monkeypatch.setenv("AFLOW__CONTEXT__SECRETS__OTHER_REDIS_PW", PASSWORD)
    assert await RedisGet(**at(redis_auth_server), password_secret="OTHER_REDIS_PW", redis_key="k").run() == b"v"
    assert PASSWORD not in caplog.text


async def test_missing_and_wrong_password(redis_auth_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    state = await one(RedisGet(**at(redis_auth_server), redis_key="k"))  # no secret: no password
    assert isinstance(state, Failed)
    # the server's words: NOAUTH "Authentication required", or HELLO's "...already authenticated"
    assert "Redis refused the credentials" in (state.message or "")
    assert "authenticat" in (state.message or "").lower()
    wrong = "a-wrong-password-42"
    with Flow("wrong") as flow:
        ref = RedisGet(**at(redis_auth_server), redis_key="k", max_retries=2)()
    state = await run(flow, context={"secrets": {"REDIS_PASSWORD": wrong}})
    task_state = state.result[ref]
    assert isinstance(task_state, Failed)
    assert not isinstance(task_state, Retrying)
    message = task_state.message or ""
    assert "invalid username-password pair" in message
    assert "retry" not in message  # a refused password is not retried
    assert wrong not in message
    assert wrong not in str(task_state.result)
    assert wrong not in caplog.text
    assert PASSWORD not in caplog.text


async def test_password_never_in_messages_or_logs(redis_auth_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """A command that echoes the password: its reply is redacted from the logs and the state."""
    caplog.set_level(logging.DEBUG)
    with Flow("echo") as flow:
        ref = RedisExecute(**at(redis_auth_server), redis_cmd=f"ECHO {PASSWORD}", max_retries=1)()
        bad = RedisExecute(**at(redis_auth_server), redis_cmd=f"NOSUCHCMD {PASSWORD}")()
    state = await run(flow, context={"secrets": {"REDIS_PASSWORD": PASSWORD}})
    assert state.result[ref].result == PASSWORD.encode()
    bad_state = state.result[bad]
    assert isinstance(bad_state, Failed)
    # the server echoes the argument back: "unknown command 'NOSUCHCMD', with args beginning with: '...'"
    assert "unknown command" in (bad_state.message or "")
    assert "****" in (bad_state.message or "")
    assert PASSWORD not in (bad_state.message or "")
    signal = bad_state.result
    assert isinstance(signal, BaseException)
    assert PASSWORD not in str(signal)
    assert PASSWORD not in str(signal.__cause__)
    assert PASSWORD not in caplog.text


# --- connections ------------------------------------------------------------------------------


async def test_a_secret_that_is_not_a_string_is_refused(redis_server: Server) -> None:
    with Flow("dict-secret") as flow:
        ref = RedisGet(**at(redis_server), redis_key="k")()
    state = await run(flow, context={"secrets": {"REDIS_PASSWORD": '{"user": "u", "password": "p-long"}'}})
    assert isinstance(state.result[ref], Failed)
    assert "must be a string" in (state.result[ref].message or "")
    # a number is a password too (a JSON-decoded secret "12345" is the int 12345)
    with Flow("int-secret") as flow:
        ok = RedisGet(**at(redis_server), redis_key="k")()
    state = await run(flow, context={"secrets": {"REDIS_PASSWORD": "12345"}})
    # sent as "12345"; the open server has no password and redis-py ignores its answer to AUTH
    assert isinstance(state.result[ok], Success)


async def test_a_numeric_password(tmp_path: Path) -> None:
    """A secret "123456" is JSON-decoded to an int by aflow.Secret: it is sent as the string."""
    with start_server(tmp_path, "123456") as server:
        task = RedisSet(**at(server), redis_key="k", redis_val="v")
        with Flow("numeric") as flow:
            ref = task()
        state = await run(flow, context={"secrets": {"REDIS_PASSWORD": "123456"}})
        assert state.result[ref].result is True
        with server.client() as client:
            assert client.get("k") == b"v"


async def test_connection_errors_are_transient(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    params = {"retry": NO_RETRY, "socket_connect_timeout": 2}
    with Flow("down") as flow:
        ref = RedisGet(
            host="127.0.0.1", port=port, redis_key="k", redis_connection_params=params, max_retries=2, retry_delay=0.01
        )()
    state = await run(flow)
    task_state = state.result[ref]
    assert isinstance(task_state, Failed)
    message = task_state.message or ""
    assert "could not talk to Redis" in message
    assert "no retries left after 3 attempts" in message


async def test_one_client_per_run_and_configuration(redis_server: Server, r: redis.Redis) -> None:
    opened: list[tuple[Any, ...]] = []

    @asynccontextmanager
    async def counting(
        host: str, port: int, db: int, password: str | None, params: Mapping[str, Any]
    ) -> AsyncIterator[RedisClient]:
        opened.append((host, port, db))
        async with aredis.clients.opener(host, port, db, password, params) as client:
            yield client

    name = "aflow-test-one-client"
    params = {"client_name": name}
    with Flow("shared") as flow:
        for i in range(20):
            RedisSet(**at(redis_server), redis_connection_params=params, redis_key=f"k{i}", redis_val=i)()
        RedisGet(**at(redis_server, db=1), redis_connection_params=params, redis_key="x")()
    with aredis.clients.override(counting):
        state = await run(flow)
        assert state.is_successful()
        assert sorted(opened) == [("127.0.0.1", redis_server.port, 0), ("127.0.0.1", redis_server.port, 1)]
        state = await run(flow)  # a new run, new clients
        assert len(opened) == 4
    # the run closed its clients
    await eventually(lambda: not clients_named(r, name), "the run's connections closed")


async def test_many_tasks_share_a_bounded_pool(redis_server: Server, r: redis.Redis) -> None:
    name = "aflow-test-bounded"
    seen: list[int] = []

    class Watch(Task):
        async def run(self) -> None:
            seen.append(len(clients_named(r, name)))

    before = int(r.info("stats")["total_connections_received"])
    params = {"client_name": name, "max_connections": 4}
    with Flow("many") as flow:
        sets = [
            RedisSet(**at(redis_server), redis_connection_params=params)(redis_key=f"k{i}", redis_val=i)
            for i in range(100)
        ]
        gets = [
            RedisExecute(**at(redis_server), redis_connection_params=params)(redis_cmd=f"GET k{i}", upstream_tasks=[s])
            for i, s in enumerate(sets)
        ]
        Watch()(upstream_tasks=gets)
    state = await run(flow)
    assert state.is_successful()
    assert [state.result[g].result for g in gets] == [str(i).encode() for i in range(100)]
    made = int(r.info("stats")["total_connections_received"]) - before
    assert 1 <= made <= 4 + 1  # the run's pool (at most 4) and nothing else but r's own
    assert seen
    assert 1 <= seen[0] <= 4


async def test_default_pool_is_bounded(redis_server: Server, r: redis.Redis) -> None:
    before = int(r.info("stats")["total_connections_received"])
    with Flow("default-bound") as flow:
        for i in range(aredis.DEFAULT_MAX_CONNECTIONS * 2):
            RedisExecute(**at(redis_server))(redis_cmd=f"SET k{i} {i}")
    state = await run(flow)
    assert state.is_successful()
    assert r.dbsize() == aredis.DEFAULT_MAX_CONNECTIONS * 2
    assert int(r.info("stats")["total_connections_received"]) - before <= aredis.DEFAULT_MAX_CONNECTIONS + 1


# --- cancellation -----------------------------------------------------------------------------


def blocked_in_blpop(r: redis.Redis, name: str) -> list[dict[str, Any]]:
    return [c for c in clients_named(r, name) if c.get("cmd") == "blpop"]


async def test_task_timeout_unblocks_blpop_on_the_server(redis_server: Server, r: redis.Redis) -> None:
    name = "aflow-test-timeout"
    params = {"client_name": name}
    with Flow("blocked") as flow:
        ref = RedisExecute(**at(redis_server), redis_connection_params=params, redis_cmd="BLPOP queue 0", timeout=0.5)()
        after = RedisExecute(**at(redis_server), redis_connection_params=params, redis_cmd="RPUSH done 1")()
    state = await run(flow)
    assert isinstance(state.result[ref], TimedOut)
    assert isinstance(state.result[after], Success)
    await eventually(lambda: not blocked_in_blpop(r, name), "no client blocked in blpop")
    await eventually(lambda: not clients_named(r, name), "the run's connections closed")
    r.rpush("queue", "x")  # nobody took it
    assert r.llen("queue") == 1


async def test_cancelled_flow_unblocks_blpop_on_the_server(redis_server: Server, r: redis.Redis) -> None:
    name = "aflow-test-cancel"
    params = {"client_name": name}
    with Flow("cancelled") as flow:
        for i in range(3):
            RedisExecute(**at(redis_server), redis_connection_params=params, redis_cmd=f"BLPOP q{i} 0")()
    with anyio.move_on_after(GUARD) as guard:
        async with anyio.create_task_group() as tg:
            tg.start_soon(flow.run)
            await eventually(lambda: len(blocked_in_blpop(r, name)) == 3, "three clients blocked")
            tg.cancel_scope.cancel()
    assert not guard.cancelled_caught
    await eventually(lambda: not clients_named(r, name), "no client of the run left")
    assert not blocked_in_blpop(r, name)
