"""The container tasks against the session's real engine (see conftest.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import pytest

from aflow import Flow
from aflow.states import Cancelled, Failed, Success, TimedOut
from aflow_tasks.docker import (
    CreateContainer,
    DockerFail,
    GetContainerLogs,
    ListContainers,
    RemoveContainer,
    StartContainer,
    StopContainer,
    WaitOnContainer,
    clients,
)
from tests.logwait import LineWaiter

from .conftest import Engine

GUARD = 60
NO_NET = {"NetworkMode": "none"}


def label() -> str:
    return f"aflow-test-{uuid.uuid4().hex[:8]}"


async def started(engine: Engine, script: str, **extra: Any) -> str:
    """Create and start a container running ``sh -c script`` (loopback only); return its id."""
    cid = await CreateContainer(
        image_name=engine.image, command=["sh", "-c", script], docker_server_url=engine.url, host_config=NO_NET
    ).run(**extra)
    await StartContainer(docker_server_url=engine.url).run(container_id=cid)
    return cid


async def gone(engine: Engine, cid: str) -> bool:
    """Whether the engine no longer has the container (its removal may land a moment later)."""
    for _ in range(200):
        if not engine.container_exists(cid):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_container_lifecycle_through_one_flow_run_shares_one_client(engine: Engine) -> None:
    tag = label()
    opened: list[str] = []

    def counting(url: str) -> AbstractAsyncContextManager[Any]:
        opened.append(url)
        return clients.opener(url)

    create = CreateContainer(
        image_name="no-such-image-at-init",  # the call's value wins
        command="sh -c 'echo hello $WHO; echo oops >&2'",
        environment={"WHO": "docker"},
        docker_server_url=engine.url,
        host_config=NO_NET,
        extra_docker_kwargs={"Labels": {"aflow.test": tag}, "WorkingDir": "/tmp"},
    )
    with Flow("docker-lifecycle") as flow:
        cid = create(image_name=engine.image, container_name=tag)
        start = StartContainer(docker_server_url=engine.url)(container_id=cid)
        wait = WaitOnContainer(docker_server_url=engine.url)(container_id=cid, upstream_tasks=[start])
        logs = GetContainerLogs(docker_server_url=engine.url)(container_id=cid, upstream_tasks=[wait])
        listed = ListContainers(
            all_containers=True, filters={"label": [f"aflow.test={tag}"]}, docker_server_url=engine.url
        )(upstream_tasks=[logs])
        running = ListContainers(filters={"label": [f"aflow.test={tag}"]}, docker_server_url=engine.url)(
            upstream_tasks=[logs]
        )
        RemoveContainer(docker_server_url=engine.url)(container_id=cid, upstream_tasks=[listed, running])
    with clients.override(counting), anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state, Success), state.result
    container_id = state.result[cid].result
    assert state.result[wait].result == {"StatusCode": 0, "Error": None}
    # stdout and stderr both (the engine may interleave the two streams in either order)
    assert sorted(state.result[logs].result.splitlines(keepends=True)) == ["hello docker\n", "oops\n"]
    (found,) = state.result[listed].result
    assert found["Id"] == container_id
    assert found["Names"] == [f"/{tag}"]
    assert found["State"] == "exited"
    assert state.result[running].result == []  # only running ones without all_containers
    assert not engine.container_exists(container_id)
    assert opened == [engine.url]  # one client for the whole flow run


async def test_create_maps_prefect_arguments_to_the_engine_api(engine: Engine) -> None:
    cid = await CreateContainer(
        image_name=engine.image,
        command="echo hi",
        entrypoint=["/bin/sh", "-c"],
        environment=["A=1", "B=two"],
        volumes="/data",
        detach=True,
        docker_server_url=engine.url,
        host_config={**NO_NET, "Memory": 64 * 1024 * 1024},
        extra_docker_kwargs={"User": "nobody"},
    ).run()
    try:
        status, info = engine.call("GET", f"/containers/{cid}/json")
        assert status == 200
        config = info["Config"]
        assert config["Cmd"] == ["echo", "hi"]
        assert config["Entrypoint"] == ["/bin/sh", "-c"]
        assert {"A=1", "B=two"} <= set(config["Env"])
        assert config["Volumes"] == {"/data": {}}
        assert config["User"] == "nobody"
        assert config["AttachStdout"] is False
        assert info["HostConfig"]["NetworkMode"] == "none"
        assert info["HostConfig"]["Memory"] == 64 * 1024 * 1024
    finally:
        await RemoveContainer(docker_server_url=engine.url, extra_docker_kwargs={"force": True, "v": True}).run(cid)


async def test_stop_and_remove_a_running_container(engine: Engine) -> None:
    cid = await started(engine, "sleep 300")
    _, info = engine.call("GET", f"/containers/{cid}/json")
    assert info["State"]["Running"] is True
    # a running container cannot be removed without force
    with pytest.raises(DockerFail, match="You cannot remove a running container") as caught:
        await RemoveContainer(cid, docker_server_url=engine.url).run()
    assert caught.value.status == 409
    await StopContainer(cid, docker_server_url=engine.url, extra_docker_kwargs={"t": 0}).run()
    _, info = engine.call("GET", f"/containers/{cid}/json")
    assert info["State"]["Running"] is False
    await StopContainer(docker_server_url=engine.url).run(container_id=cid)  # stopped already: fine
    await RemoveContainer(docker_server_url=engine.url).run(container_id=cid)
    assert not engine.container_exists(cid)


async def test_wait_streams_the_output_while_the_container_runs(
    engine: Engine, lines: LineWaiter, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    script = "echo started; while [ ! -e /gate/open ]; do sleep 0.05; done; echo finished >&2"
    cid = await CreateContainer(
        image_name=engine.image,
        command=["sh", "-c", script],
        docker_server_url=engine.url,
        host_config={**NO_NET, "Binds": [f"{gate}:/gate"]},
    ).run()
    await StartContainer(cid, docker_server_url=engine.url).run()
    with Flow("docker-wait-streams") as flow:
        w = WaitOnContainer(cid, docker_server_url=engine.url)()
    handle = flow.start()
    try:
        with anyio.fail_after(GUARD):
            # the container cannot finish before the test saw its first line in the task logger
            await lines.wait_for_text(f"{cid[:12]}: started")
            assert not handle.done()
            assert engine.container_exists(cid)
            (gate / "open").touch()
            state = await handle
        assert isinstance(state, Success), state.result[w]
        assert state.result[w].result == {"StatusCode": 0, "Error": None}
        assert lines.info.index(f"{cid[:12]}: started") < lines.info.index(f"{cid[:12]}: finished")
    finally:
        await RemoveContainer(cid, docker_server_url=engine.url, extra_docker_kwargs={"force": True}).run()


async def test_a_non_zero_exit_code_fails_with_the_id_the_code_and_the_log_tail(engine: Engine) -> None:
    cid = await started(engine, "echo one; echo two; exit 3")
    try:
        with Flow("docker-wait-fails") as flow:
            w = WaitOnContainer(cid, docker_server_url=engine.url)()
            quiet = WaitOnContainer(cid, docker_server_url=engine.url, stream_logs=False)()
            lenient = WaitOnContainer(cid, docker_server_url=engine.url, raise_on_exit_code=False)()
        with anyio.fail_after(GUARD):
            state = await flow.run()
        assert isinstance(state, Failed)
        for failing in (w, quiet):
            task_state = state.result[failing]
            assert isinstance(task_state, Failed)
            assert task_state.message == f"{cid} failed with exit code 3: None\nlast 2 log line(s):\none\ntwo"
            assert isinstance(task_state.result, DockerFail)
        assert state.result[lenient].result == {"StatusCode": 3, "Error": None}
    finally:
        await RemoveContainer(cid, docker_server_url=engine.url).run()


@pytest.mark.parametrize("how", ["handle", "caller"])
async def test_cancelling_the_flow_stops_and_removes_the_container(engine: Engine, lines: LineWaiter, how: str) -> None:
    cid = await started(engine, "echo begun; sleep 300")
    with Flow("docker-wait-cancel") as flow:
        WaitOnContainer(cid, docker_server_url=engine.url, stop_timeout=1)()
    with anyio.fail_after(GUARD):
        if how == "handle":
            handle = flow.start()
        else:
            run = asyncio.ensure_future(flow.run())
        await lines.wait_for_text(f"{cid[:12]}: begun")
        assert engine.container_exists(cid)
        if how == "handle":
            handle.cancel()
            assert isinstance(await handle, Cancelled)
        else:
            run.cancel()
            with pytest.raises(asyncio.CancelledError):
                await run
    assert await gone(engine, cid)
    assert any(f"Container {cid} stopped and removed" in m for m in lines.messages)


async def test_a_task_timeout_stops_and_removes_the_container(engine: Engine) -> None:
    cid = await started(engine, "sleep 300")
    with Flow("docker-wait-timeout") as flow:
        w = WaitOnContainer(cid, docker_server_url=engine.url, stop_timeout=0, timeout=1.0)()
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state.result[w], TimedOut)
    assert await gone(engine, cid)


async def test_engine_errors_fail_naming_what_was_done(engine: Engine) -> None:
    with Flow("docker-errors") as flow:
        start = StartContainer("no-such-container", docker_server_url=engine.url)()
        create = CreateContainer(image_name="no-such-image:1", docker_server_url=engine.url)()
        logs = GetContainerLogs("no-such-container", docker_server_url=engine.url)()
        down = ListContainers(docker_server_url="unix:///nonexistent/docker.sock")()
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state, Failed)
    msg: Callable[[Any], str] = lambda t: state.result[t].message or ""  # noqa: E731
    assert msg(start).startswith("Docker engine error while starting container 'no-such-container': HTTP 404")
    assert "No such container" in msg(start)
    assert msg(create).startswith("Docker engine error while creating a container from image 'no-such-image:1'")
    assert "No such image" in msg(create)
    assert "HTTP 404" in msg(logs)
    assert msg(down).startswith("Docker engine unreachable while listing containers")


@pytest.mark.parametrize(
    ("task", "name"),
    [
        (CreateContainer(), "image_name"),
        (StartContainer(), "container_id"),
        (StopContainer(), "container_id"),
        (RemoveContainer(), "container_id"),
        (GetContainerLogs(), "container_id"),
        (WaitOnContainer(), "container_id"),
    ],
)
async def test_a_missing_required_value_is_a_value_error_naming_it(task: Any, name: str) -> None:
    with pytest.raises(ValueError, match=f"needs {name}"):
        await task.run()


async def test_containers_are_waited_on_concurrently_in_one_flow_run(engine: Engine, tmp_path: Path) -> None:
    # each container announces itself, then waits until all have started: waited on one after
    # another, the first would never finish (it gives up after about 30 s and fails)
    n = 5
    shared = tmp_path / "shared"
    shared.mkdir()
    script = (
        f"touch /shared/started-$NAME; i=0; "
        f'while set -- /shared/started-*; [ "$#" -lt {n} ]; do '
        f"i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.05; done; echo all {n} started"
    )
    ids = [
        await CreateContainer(
            image_name=engine.image,
            command=["sh", "-c", script],
            environment={"NAME": str(i)},
            docker_server_url=engine.url,
            host_config={**NO_NET, "Binds": [f"{shared}:/shared"]},
        ).run()
        for i in range(n)
    ]
    opened: list[str] = []

    def counting(url: str) -> AbstractAsyncContextManager[Any]:
        opened.append(url)
        return clients.opener(url)

    with Flow("docker-concurrent") as flow:
        waits = []
        for cid in ids:
            start = StartContainer(cid, docker_server_url=engine.url)()
            waits.append(WaitOnContainer(cid, docker_server_url=engine.url)(upstream_tasks=[start]))
        logs = [GetContainerLogs(cid, docker_server_url=engine.url)(upstream_tasks=waits) for cid in ids]
    try:
        with clients.override(counting), anyio.fail_after(GUARD):
            state = await flow.run()
        assert isinstance(state, Success), state.result
        assert [state.result[w].result["StatusCode"] for w in waits] == [0] * n
        assert [state.result[t].result for t in logs] == [f"all {n} started\n"] * n
        assert opened == [engine.url]
    finally:
        for cid in ids:
            await RemoveContainer(cid, docker_server_url=engine.url, extra_docker_kwargs={"force": True}).run()
