"""RunNamespacedJob against the fake API server, whose kubelet really runs each Job's command."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import anyio
import pytest

from aflow import Flow
from aflow.states import Cancelled, Failed, Success, TimedOut
from aflow_tasks.kubernetes import KubernetesFail, KubernetesJobFail, RunNamespacedJob
from tests.logwait import LineWaiter

from .conftest import kubeconfig
from .fake_api import FakeKube

GUARD = 60


def job(name: str, script: str, *, generate: bool = False) -> dict[str, Any]:
    meta = {"generateName": f"{name}-"} if generate else {"name": name}
    return {
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}],
                }
            },
        },
    }


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie is dead: this machine's init does not reap orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


async def assert_gone(pids: list[int]) -> None:
    """The processes end promptly (SIGKILL is quick, but the kernel needs a moment)."""
    with anyio.fail_after(10):
        while any(running(p) for p in pids):  # noqa: ASYNC110 - nothing signals a death in /proc
            await anyio.sleep(0.01)


@pytest.fixture
def config(fake: FakeKube) -> dict[str, Any]:
    return kubeconfig(fake.url)


async def test_success_streams_logs_while_the_job_runs(
    fake: FakeKube, config: dict[str, Any], lines: LineWaiter, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    script = f"echo started; while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.05; done; echo finished"
    with Flow("k8s-job-ok") as flow:
        t = RunNamespacedJob(body=job("hello", script), kube_config=config, job_status_poll_interval=1)()
    handle = flow.start()
    with anyio.fail_after(GUARD):
        # the job cannot finish before the test has seen its first line in the task logger
        (first,) = await lines.wait_for_text(": started")
        assert not handle.done()
        assert fake.objects_of("jobs")["hello"]["status"]["active"] == 1
        before = len(lines.messages)
        gate.touch()
        state = await handle
    assert isinstance(state, Success), state.result[t]
    pod = first.split(":")[0]
    assert pod.startswith("hello-")
    assert state.result[t].result == {pod: "started\nfinished\n"}
    assert f"{pod}: finished" in lines.messages[before:]
    assert lines.messages.index(f"{pod}: started") < lines.messages.index(f"{pod}: finished")
    # deleted after the success, with its pod (propagation policy Foreground)
    assert fake.objects_of("jobs") == {}
    assert fake.objects_of("pods") == {}
    assert ("jobs", "hello") in fake.deleted
    assert any("Job 'hello' in namespace 'default' deleted (after its success)" in m for m in lines.messages)


async def test_failure_gives_the_exit_code_and_the_log_tail(
    fake: FakeKube, config: dict[str, Any], lines: LineWaiter
) -> None:
    script = "for i in 1 2 3 4 5; do echo line-$i; done; echo boom >&2; exit 3"
    with Flow("k8s-job-fail") as flow:
        t = RunNamespacedJob(body=job("broken", script, generate=True), kube_config=config)
        t.log_tail_lines = 3
        called = t()
    with anyio.fail_after(GUARD):
        state = await flow.run()
    task_state = state.result[called]
    assert isinstance(state, Failed)
    assert isinstance(task_state, Failed)
    message = task_state.message or ""
    assert "exited with code 3 (Error)" in message
    assert message.endswith(
        "last 3 log line(s) of pod " + message.split("pod ")[-1].split(":")[0] + ":\nline-4\nline-5\nboom"
    )
    exc = task_state.result
    assert isinstance(exc, KubernetesJobFail)
    assert exc.exit_code == 3
    assert exc.job_name.startswith("broken-")
    assert list(exc.logs.values()) == ["line-1\nline-2\nline-3\nline-4\nline-5\nboom\n"]
    # kept for inspection by default
    assert list(fake.objects_of("jobs")) == [exc.job_name]


def retried(name: str, marker: Path, backoff: int, script: str) -> dict[str, Any]:
    """A Job whose first pod fails (it leaves ``marker``) and whose later pods run ``script``."""
    m = shlex.quote(str(marker))
    body = job(name, f"if [ -e {m} ]; then {script}; else touch {m}; echo first try; exit 3; fi")
    body["spec"]["backoffLimit"] = backoff
    return body


async def test_a_failed_pod_replaced_within_the_backoff_limit_still_succeeds(
    fake: FakeKube, config: dict[str, Any], lines: LineWaiter, tmp_path: Path
) -> None:
    task = RunNamespacedJob(body=retried("again", tmp_path / "tried", 1, "echo second try"), kube_config=config)
    with anyio.fail_after(GUARD):
        logs = await task.run()
    assert sorted(logs.values()) == ["first try\n", "second try\n"]  # one entry per pod
    streamed = {m.split(": ", 1)[1] for m in lines.messages if ": " in m}
    assert {"first try", "second try"} <= streamed  # both pods' logs reached the task logger
    assert fake.objects_of("jobs") == {}  # deleted after the success, with its pods
    assert fake.objects_of("pods") == {}


async def test_a_job_out_of_retries_fails_with_its_last_pod(
    fake: FakeKube, config: dict[str, Any], tmp_path: Path
) -> None:
    task = RunNamespacedJob(
        body=retried("done-for", tmp_path / "tried", 1, "echo still broken; exit 4"), kube_config=config
    )
    with pytest.raises(KubernetesJobFail) as info:
        with anyio.fail_after(GUARD):
            await task.run()
    assert info.value.exit_code == 4  # the last pod's code, not the first's
    assert "exited with code 4" in str(info.value)
    assert str(info.value).endswith(":\nstill broken")
    assert sorted(info.value.logs.values()) == ["first try\n", "still broken\n"]
    assert fake.objects_of("jobs")["done-for"]["status"]["failed"] == 2


async def test_failed_job_is_deleted_when_asked(fake: FakeKube, config: dict[str, Any]) -> None:
    task = RunNamespacedJob(body=job("bad", "exit 3"), kube_config=config, delete_job_after_failure=True)
    with pytest.raises(KubernetesJobFail, match="exited with code 3"):
        with anyio.fail_after(GUARD):
            await task.run()
    assert fake.objects_of("jobs") == {}
    assert fake.objects_of("pods") == {}


async def test_success_without_deletion_and_without_streaming(fake: FakeKube, config: dict[str, Any], lines) -> None:
    task = RunNamespacedJob(body=job("quiet", "echo hush"), kube_config=config, delete_job_after_completion=False)
    with anyio.fail_after(GUARD):
        logs = await task.run(log_level=None)
    assert list(logs.values()) == ["hush\n"]
    assert not any("hush" in m for m in lines.messages)
    assert list(fake.objects_of("jobs")) == ["quiet"]
    assert fake.objects_of("jobs")["quiet"]["status"]["succeeded"] == 1


async def test_the_watch_resumes_from_its_resource_version(fake: FakeKube, config: dict[str, Any]) -> None:
    # each watch request lasts 1 s (the fallback interval): a 2 s job needs the watch to resume
    task = RunNamespacedJob(body=job("longer", "sleep 2; echo late"), kube_config=config, job_status_poll_interval=1)
    with anyio.fail_after(GUARD):
        logs = await task.run()
    assert list(logs.values()) == ["late\n"]
    watches = [path for method, path, _ in fake.requests if "/jobs?" in path and "watch=" in path]
    assert len(watches) >= 2
    assert all("timeoutSeconds=1" in path and "resourceVersion=" in path for path in watches)


async def test_existing_job_name_is_a_named_conflict(fake: FakeKube, config: dict[str, Any]) -> None:
    task = RunNamespacedJob(body=job("twice", "true"), kube_config=config, delete_job_after_completion=False)
    with anyio.fail_after(GUARD):
        await task.run()
        with pytest.raises(KubernetesFail, match=r"creating Job 'twice'.*Conflict \(409\)"):
            await task.run()


async def test_cancelling_the_flow_deletes_the_job_and_kills_its_processes(
    fake: FakeKube, config: dict[str, Any], lines: LineWaiter
) -> None:
    # the container's shell starts a grandchild: the whole process group must go
    script = "sleep 300 & echo child=$!; echo running; wait"
    with Flow("k8s-job-cancel") as flow:
        t = RunNamespacedJob(body=job("forever", script), kube_config=config)()
    handle = flow.start()
    with anyio.fail_after(GUARD):
        await lines.wait_for_text(": running")
    (child_line,) = [m for m in lines.messages if ": child=" in m]
    pod = child_line.split(":")[0]
    pids = [fake.pids[pod], int(child_line.split("=")[1])]
    assert all(running(p) for p in pids)
    handle.cancel()
    with anyio.fail_after(GUARD):
        state = await handle
    assert isinstance(state, Cancelled)
    assert isinstance(state.result[t], Cancelled)
    # in the fake: the job and its pod were deleted, and the pod's process killed
    assert ("jobs", "forever") in fake.deleted
    assert ("pods", pod) in fake.deleted
    assert fake.objects_of("jobs") == {}
    assert fake.objects_of("pods") == {}
    assert fake.killed == [pod]
    # and in /proc: the container's shell and its grandchild are gone
    await assert_gone(pids)
    assert any("deleted (cancelled)" in m for m in lines.messages)


async def test_task_timeout_deletes_the_job(fake: FakeKube, config: dict[str, Any], lines: LineWaiter) -> None:
    with Flow("k8s-job-timeout") as flow:
        t = RunNamespacedJob(body=job("slow", "echo begun; sleep 300"), kube_config=config, timeout=1.5)()
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state.result[t], TimedOut)
    assert fake.objects_of("jobs") == {}
    assert fake.objects_of("pods") == {}
    await assert_gone(list(fake.pids.values()))


async def test_fifty_jobs_run_concurrently_from_one_loop(
    fake: FakeKube, config: dict[str, Any], tmp_path: Path
) -> None:
    # each job announces itself, then waits until all 50 have started: run one after another,
    # the first job would never finish (each job gives up after about 60 s: the guard)
    n = 50
    marks = tmp_path / "marks"
    marks.mkdir()
    d = shlex.quote(str(marks))
    tasks = []
    with Flow("k8s-fan-out") as flow:
        for i in range(n):
            script = (
                f"touch {d}/started-{i}; tries=0; "
                f'while set -- {d}/started-*; [ "$#" -lt {n} ]; do '
                f'tries=$((tries+1)); [ "$tries" -gt 300 ] && exit 9; sleep 0.2; done; '
                f"echo done-{i} saw $#"
            )
            tasks.append(RunNamespacedJob(body=job(f"fan-{i}", script), kube_config=config, name=f"job-{i}")())
    with anyio.fail_after(90):
        state = await flow.run()
    assert isinstance(state, Success), [state.result[t] for t in tasks if not isinstance(state.result[t], Success)]
    for i, t in enumerate(tasks):
        (log,) = state.result[t].result.values()
        assert log == f"done-{i} saw {n}\n"
    assert len(fake.pids) == n
    assert fake.objects_of("jobs") == {}


async def test_pod_log_lines_are_kept_in_the_run_store(fake: FakeKube, config: dict[str, Any], tmp_path: Path) -> None:
    from aflow.history import RunStore

    with Flow("k8s-job-logs") as flow:
        RunNamespacedJob(body=job("logged", "echo one; echo two"), kube_config=config, job_status_poll_interval=1)()
    with anyio.fail_after(GUARD):
        state = await flow.run(history=tmp_path / "runs.db")
    assert isinstance(state, Success)
    async with RunStore(tmp_path / "runs.db") as store:
        (run,) = await store.list_runs()
        logs = await store.task_logs(run.run_id)
    pod_lines = [r.message.split(": ", 1)[1] for r in logs if r.message.startswith("logged-")]
    assert pod_lines == ["one", "two"]
    assert {r.task_name for r in logs} == {"RunNamespacedJob"}
    assert all(r.level == "INFO" for r in logs)
