"""resource_manager: setup before the block, cleanup after it whenever the setup succeeded."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from aflow import Flow, Parameter, case, resource_manager, task
from aflow.exceptions import TaskDefinitionError
from aflow.states import Cancelled, Failed, Skipped, State, Success, TriggerFailed

Log = list[tuple[str, Any]]


def make_resource(log: Log, fail_setup: bool = False) -> Any:
    @resource_manager
    class Conn:
        def __init__(self, url: str, retries: int = 0) -> None:
            log.append(("init", (url, retries)))
            self.url = url

        def setup(self) -> dict[str, Any]:
            log.append(("setup", self.url))
            if fail_setup:
                raise ConnectionError("no route")
            return {"url": self.url, "open": True}

        def cleanup(self, resource: dict[str, Any]) -> None:
            log.append(("cleanup", resource["url"]))
            resource["open"] = False

    return Conn


@task
async def use(conn: dict[str, Any], x: int = 1) -> str:
    assert conn["open"]
    return f"{conn['url']}:{x}"


@task
async def fail(conn: dict[str, Any]) -> None:
    raise RuntimeError("block task failed")


@task
async def free() -> str:
    return "free"


def by_name(flow: Flow, name: str) -> Any:
    (found,) = flow.get_tasks(name=name)
    return found


async def test_setup_result_is_passed_and_cleanup_runs_last() -> None:
    log: Log = []
    Conn = make_resource(log)
    with Flow("ok") as flow:
        with Conn("db://a", retries=2) as conn:
            a = use(conn, 1)
            b = use(conn, x=a)  # not a block root (a is upstream) but gets the resource as an argument
            c = free()
        after = use.copy(name="after")(Parameter("c", default={"url": "x", "open": True}))

    setup, cleanup = by_name(flow, "Conn.setup"), by_name(flow, "Conn.cleanup")
    assert conn is setup
    assert setup in flow.upstream_tasks(c)  # a block root with no argument from the resource
    assert {a, b, c} <= flow.upstream_tasks(cleanup)
    state = await flow.run()
    assert type(state) is Success
    assert state.result[a].result == "db://a:1"
    assert state.result[b].result == "db://a:db://a:1"
    assert state.result[c].result == "free"
    assert state.result[after].result == "x:1"
    assert type(state.result[cleanup]) is Success
    assert log[:2] == [("init", ("db://a", 2)), ("setup", "db://a")]
    assert log[-1] == ("cleanup", "db://a")
    # the resource's tasks are not reference tasks; the block's are
    assert not {setup, cleanup, by_name(flow, "Conn")} & flow.reference_tasks()


async def test_cleanup_runs_when_a_block_task_fails_and_the_flow_still_fails() -> None:
    log: Log = []
    Conn = make_resource(log)
    with Flow("block-fails") as flow, Conn("db://b") as conn:
        bad = fail(conn)
        good = use(conn)
        downstream = use.copy(name="downstream")(conn, x=bad)

    state = await flow.run()
    cleanup = by_name(flow, "Conn.cleanup")
    assert type(state.result[cleanup]) is Success
    assert ("cleanup", "db://b") in log
    assert isinstance(state.result[bad], Failed)
    assert type(state.result[downstream]) is TriggerFailed
    assert type(state.result[good]) is Success
    assert isinstance(state, Failed)  # a successful cleanup does not hide the failed block
    assert cleanup not in flow.reference_tasks()
    assert flow.reference_tasks() == {downstream, good}


async def test_cleanup_is_skipped_when_setup_fails() -> None:
    log: Log = []
    Conn = make_resource(log, fail_setup=True)
    with Flow("setup-fails") as flow, Conn("db://c") as conn:
        a = use(conn)

    state = await flow.run()
    setup, cleanup = by_name(flow, "Conn.setup"), by_name(flow, "Conn.cleanup")
    assert isinstance(state.result[setup], Failed)
    assert isinstance(state.result[setup].result, ConnectionError)
    assert type(state.result[a]) is TriggerFailed
    assert type(state.result[cleanup]) is Skipped
    assert not any(event == "cleanup" for event, _ in log)
    assert isinstance(state, Failed)


async def test_empty_block_with_failed_setup_fails_the_flow() -> None:
    log: Log = []
    Conn = make_resource(log, fail_setup=True)
    with Flow("empty") as flow, Conn("db://d"):
        pass
    state = await flow.run()
    # the cleanup is left out of the reference tasks, so the setup (now terminal) decides
    assert flow.reference_tasks() == {by_name(flow, "Conn.setup")}
    assert isinstance(state, Failed)
    assert type(state.result[by_name(flow, "Conn.cleanup")]) is Skipped


async def test_async_setup_and_cleanup() -> None:
    log: Log = []

    class _Pool:
        def __init__(self, size: int) -> None:
            self.size = size

        async def setup(self) -> list[int]:
            log.append(("setup", self.size))
            return list(range(self.size))

        async def cleanup(self, resource: list[int]) -> None:
            log.append(("cleanup", len(resource)))
            resource.clear()

    # applied as a call: mypy ignores what class decorators return
    Pool = resource_manager(name="pool")(_Pool)

    @task
    async def total(pool: list[int]) -> int:
        return sum(pool)

    with Flow("async") as flow, Pool(Parameter("size")) as pool:
        t = total(pool)

    state = await flow.run(size=4)
    assert type(state) is Success
    assert state.result[t].result == 6
    assert log == [("setup", 4), ("cleanup", 4)]
    assert {x.name for x in flow.tasks} >= {"pool", "pool.setup", "pool.cleanup"}


async def test_resource_inside_a_false_case_is_skipped_entirely() -> None:
    log: Log = []
    Conn = make_resource(log)
    with Flow("case") as flow, case(Parameter("go"), True), Conn("db://e") as conn:
        a = use(conn)

    state = await flow.run(go=False)
    assert type(state) is Success
    assert type(state.result[a]) is Skipped
    assert type(state.result[by_name(flow, "Conn.cleanup")]) is Skipped
    assert log == []
    state = await flow.run(go=True)
    assert state.result[a].result == "db://e:1"
    assert log[-1] == ("cleanup", "db://e")


async def test_errors() -> None:
    log: Log = []
    Conn = make_resource(log)
    with pytest.raises(ValueError, match="Could not infer an active Flow"):
        Conn("x")
    with Flow("bad"), pytest.raises(TaskDefinitionError, match="unexpected keyword argument 'nope'"):
        Conn("x", nope=1)
    with pytest.raises(TypeError, match=r"needs a cleanup\(\) method"):

        @resource_manager
        class NoCleanup:
            def setup(self) -> None:
                pass

    # explicit flow=, outside any `with Flow`
    flow = Flow("explicit")
    with Conn("db://f", flow=flow) as conn:
        t = use(conn, flow=flow)
    state: State = await flow.run()
    assert state.result[t].result == "db://f:1"
    assert log[-1] == ("cleanup", "db://f")


async def test_cancelled_run_still_cleans_up_a_resource_that_was_set_up() -> None:
    events: list[str] = []
    started = anyio.Event()

    class Conn:
        def setup(self) -> str:
            events.append("setup")
            return "conn"

        async def cleanup(self, resource: str) -> None:
            events.append(f"cleanup {resource}")

    Res = resource_manager(Conn)

    @task
    async def work(conn: str) -> None:
        started.set()
        await anyio.sleep_forever()

    with Flow("cancelled") as flow, Res() as conn:
        w = work(conn)

    handle = flow.start()
    await started.wait()
    handle.cancel()
    state = await handle
    assert isinstance(state, Cancelled)
    assert isinstance(state.result[w], Cancelled)
    assert events == ["setup", "cleanup conn"]
    cleanup_task = next(t for t in state.result if t.run_on_cancel)
    assert state.result[cleanup_task].is_successful()
