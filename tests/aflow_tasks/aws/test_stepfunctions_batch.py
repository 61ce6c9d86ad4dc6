from __future__ import annotations

import functools
import json
import logging
import uuid
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from aflow import Flow, signals
from aflow_tasks.aws import AWSClientWait, BatchSubmit, StepActivate, aws_client

from .conftest import Moto
from .proxy import answers_held_back

ASSUME = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
PASS = {
    "StartAt": "Add",
    "States": {"Add": {"Type": "Pass", "Result": {"answer": 42}, "ResultPath": "$.out", "End": True}},
}
FAIL_DEF = {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "Kaboom", "Cause": "it broke"}}}


async def make_role(moto: Moto, name: str) -> str:
    async with aws_client("iam", **moto.settings) as iam:
        role = await iam.create_role(RoleName=name, AssumeRolePolicyDocument=ASSUME)
    return str(role["Role"]["Arn"])


async def state_machine(moto: Moto, name: str, definition: dict[str, Any]) -> str:
    role = await make_role(moto, f"{name}-role")
    async with aws_client("stepfunctions", **moto.settings) as sfn:
        created = await sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role)
    return str(created["stateMachineArn"])


def test_step_activate_init_defaults() -> None:
    step = StepActivate()
    assert (step.state_machine_arn, step.execution_name, step.execution_input) == (None, None, "{}")
    assert (step.wait, step.poll_interval) == (False, 5.0)
    with pytest.raises(ValueError, match="poll_interval must be positive"):
        StepActivate(poll_interval=0)


async def test_step_activate_needs_an_arn(moto: Moto) -> None:
    with pytest.raises(ValueError, match=r"StepActivate needs state_machine_arn"):
        await StepActivate(**moto.settings).run()


async def test_execution_runs_to_succeeded(moto: Moto) -> None:
    arn = await state_machine(moto, "adder", PASS)
    step = StepActivate(state_machine_arn=arn, execution_input={"x": 1}, wait=True, poll_interval=0.05, **moto.settings)
    assert await step.run() == {"x": 1, "out": {"answer": 42}}
    # the call's input wins over the init's
    assert await step.run(execution_input='{"y": 2}', execution_name="named-run") == {"y": 2, "out": {"answer": 42}}
    async with aws_client("stepfunctions", **moto.settings) as sfn:
        executions = (await sfn.list_executions(stateMachineArn=arn))["executions"]
    assert {e["status"] for e in executions} == {"SUCCEEDED"}
    assert len(executions) == 2


async def test_start_without_waiting_returns_the_execution(moto: Moto) -> None:
    arn = await state_machine(moto, "adder", PASS)
    started = await StepActivate(state_machine_arn=arn, **moto.settings).run()
    assert started["executionArn"].startswith(arn.replace(":stateMachine:", ":execution:"))


async def test_failed_execution_fails_with_its_error(moto: Moto) -> None:
    arn = await state_machine(moto, "breaker", FAIL_DEF)
    step = StepActivate(state_machine_arn=arn, wait=True, poll_interval=0.05, **moto.settings)
    with pytest.raises(signals.FAIL, match=r"ended FAILED: Kaboom: it broke") as info:
        await step.run()
    assert info.value.state.result["status"] == "FAILED"


async def test_missing_state_machine_fails(moto: Moto) -> None:
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:ghost"
    with pytest.raises(signals.FAIL, match=r"failed: StateMachineDoesNotExist"):
        await StepActivate(state_machine_arn=arn, **moto.settings).run()


async def test_step_activate_in_a_flow(moto: Moto) -> None:
    arn = await state_machine(moto, "adder", PASS)
    with Flow("sfn") as flow:
        out = StepActivate(wait=True, poll_interval=0.05, **moto.settings)(state_machine_arn=arn)
    state = await flow.run()
    assert state.is_successful(), state.message
    assert state.result[out].result == {"out": {"answer": 42}}


async def batch_queue(moto: Moto) -> tuple[str, str]:
    """An unmanaged compute environment, a queue and a job definition (moto runs jobs without Docker)."""
    role = await make_role(moto, "batch-role")
    async with aws_client("ec2", **moto.settings) as ec2:
        vpc = (await ec2.create_vpc(CidrBlock="10.0.0.0/16"))["Vpc"]["VpcId"]
        subnet = (await ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24"))["Subnet"]["SubnetId"]
        group = (await ec2.create_security_group(GroupName="sg", Description="batch", VpcId=vpc))["GroupId"]
    assert subnet
    assert group
    async with aws_client("batch", **moto.settings) as batch:
        env = await batch.create_compute_environment(
            computeEnvironmentName="env", type="UNMANAGED", state="ENABLED", serviceRole=role
        )
        queue = await batch.create_job_queue(
            jobQueueName="queue",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
        )
        definition = await batch.register_job_definition(
            jobDefinitionName="echo",
            type="container",
            containerProperties={"image": "busybox", "vcpus": 1, "memory": 128, "command": ["echo", "hi"]},
        )
    return str(queue["jobQueueArn"]), str(definition["jobDefinitionArn"])


def test_batch_submit_init_defaults() -> None:
    submit = BatchSubmit()
    assert (submit.job_name, submit.job_definition, submit.job_queue, submit.batch_kwargs) == (None, None, None, {})
    assert (submit.wait, submit.poll_interval) == (False, 5.0)


async def test_batch_submit_needs_its_arguments(moto: Moto) -> None:
    with pytest.raises(ValueError, match=r"BatchSubmit needs job_name"):
        await BatchSubmit(**moto.settings).run()
    with pytest.raises(ValueError, match=r"BatchSubmit needs job_queue"):
        await BatchSubmit(job_name="jj", job_definition="d", **moto.settings).run()


async def test_batch_job_runs_to_succeeded(moto: Moto) -> None:
    queue, definition = await batch_queue(moto)
    submit = BatchSubmit(job_name="wrong", job_definition=definition, job_queue=queue, **moto.settings)
    job_id = await submit.run(job_name="job-ok", wait=True)
    async with aws_client("batch", **moto.settings) as batch:
        (job,) = (await batch.describe_jobs(jobs=[job_id]))["jobs"]
    assert (job["jobName"], job["status"]) == ("job-ok", "SUCCEEDED")
    # without waiting: the id comes back at once
    assert await submit.run(batch_kwargs={"parameters": {"a": "b"}}) != job_id


async def test_failed_batch_job_fails_the_task(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    queue, definition = await batch_queue(moto)
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # moto (in this process) fails every job
    submit = BatchSubmit(job_name="job-bad", job_definition=definition, job_queue=queue, wait=True, **moto.settings)
    with pytest.raises(signals.FAIL, match=r"^Batch job job-bad \(.+\) FAILED: ") as info:
        await submit.run()
    assert info.value.state.result["status"] == "FAILED"


async def test_batch_submit_to_a_missing_queue_fails(moto: Moto) -> None:
    submit = BatchSubmit(job_name="jj", job_definition="nope", job_queue="nope", **moto.settings)
    with pytest.raises(signals.FAIL, match=r"^Batch job jj failed: ClientException: "):
        await submit.run()


async def test_batch_submit_in_a_flow(moto: Moto) -> None:
    queue, definition = await batch_queue(moto)
    with Flow("batch") as flow:
        job = BatchSubmit(job_definition=definition, job_queue=queue, wait=True, poll_interval=0.05, **moto.settings)(
            job_name="in-flow"
        )
    state = await flow.run()
    assert state.is_successful(), state.message
    assert isinstance(state.result[job].result, str)


def test_client_wait_init_defaults() -> None:
    wait = AWSClientWait()
    assert (wait.client, wait.waiter_name, wait.waiter_definition, wait.max_attempts, wait.delay) == (None,) * 5


async def test_client_wait_success_and_failure(moto: Moto) -> None:
    async with aws_client("s3", **moto.settings) as s3:
        await s3.create_bucket(Bucket="waited-bucket")
    wait = AWSClientWait(client="s3", waiter_name="bucket_exists", delay=0, max_attempts=2, **moto.settings)
    await wait.run(waiter_kwargs={"Bucket": "waited-bucket"})
    with pytest.raises(signals.FAIL, match=r"^s3 waiter bucket_exists gave up: Waiter BucketExists failed"):
        await wait.run(waiter_kwargs={"Bucket": "no-such-bucket"})
    with pytest.raises(ValueError, match="s3 has no waiter 'bucket_gone'"):
        await wait.run(waiter_name="bucket_gone", waiter_kwargs={"Bucket": "waited-bucket"})
    with pytest.raises(ValueError, match="AWSClientWait needs client"):
        await AWSClientWait(**moto.settings).run()


async def test_client_wait_with_a_custom_waiter(moto: Moto) -> None:
    async with aws_client("s3", **moto.settings) as s3:
        await s3.create_bucket(Bucket="custom-bucket")
        await s3.put_object(Bucket="custom-bucket", Key="k", Body=b"1")
    definition = {
        "version": 2,
        "waiters": {
            "HasKeys": {
                "operation": "ListObjectsV2",
                "delay": 0,
                "maxAttempts": 2,
                "acceptors": [{"matcher": "path", "argument": "KeyCount > `0`", "expected": True, "state": "success"}],
            }
        },
    }
    wait = AWSClientWait(client="s3", waiter_name="HasKeys", waiter_definition=definition, **moto.settings)
    await wait.run(waiter_kwargs={"Bucket": "custom-bucket"})
    with pytest.raises(signals.FAIL, match="gave up"):
        await wait.run(waiter_kwargs={"Bucket": "custom-bucket", "Prefix": "none/"})


async def test_batch_job_waiters_as_prefect_1_ships_them(moto: Moto) -> None:
    queue, definition = await batch_queue(moto)
    submit = BatchSubmit(job_definition=definition, job_queue=queue, **moto.settings)
    job_id = await submit.run(job_name="waited-job")  # not waiting: the waiters do
    wait = AWSClientWait(client="batch", delay=0.05, max_attempts=400, **moto.settings)
    with anyio.fail_after(30):
        await wait.run(waiter_name="JobExists", waiter_kwargs={"jobs": [job_id]})
        await wait.run(waiter_name="JobRunning", waiter_kwargs={"jobs": [job_id]})
        async with aws_client("batch", **moto.settings) as batch:
            (job,) = (await batch.describe_jobs(jobs=[job_id]))["jobs"]
        assert job["status"] in ("RUNNING", "SUCCEEDED")
        await wait.run(waiter_name="JobComplete", waiter_kwargs={"jobs": [job_id]})
        async with aws_client("batch", **moto.settings) as batch:
            (job,) = (await batch.describe_jobs(jobs=[job_id]))["jobs"]
        assert job["status"] == "SUCCEEDED"
        await wait.run(waiter_name="job_complete", waiter_kwargs={"jobs": [job_id]})  # botocore's spelling
    with pytest.raises(ValueError, match=r"batch has no waiter 'JobGone': it has \[.*'JobComplete', 'JobExists'"):
        await wait.run(waiter_name="JobGone", waiter_kwargs={"jobs": [job_id]})


async def test_job_complete_gives_up_when_the_job_failed(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    queue, definition = await batch_queue(moto)
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # moto (in this process) fails every job
    job_id = await BatchSubmit(job_definition=definition, job_queue=queue, **moto.settings).run(job_name="job-bad")
    with Flow("wait-batch") as flow:
        done = AWSClientWait(client="batch", waiter_name="JobComplete", delay=0.05, max_attempts=400, **moto.settings)(
            waiter_kwargs={"jobs": [job_id]}
        )
    with anyio.fail_after(30):
        state = await flow.run()
    assert not state.is_successful()
    message = state.result[done].message or ""
    assert message.startswith("batch waiter JobComplete gave up: Waiter JobComplete failed: ")
    assert "terminal failure state" in message  # FAILED ends the wait at once, not after 400 attempts


async def test_job_exists_keeps_polling_until_the_job_is_listed(moto: Moto) -> None:
    wait = AWSClientWait(client="batch", waiter_name="JobExists", delay=0, max_attempts=3, **moto.settings)
    # an id nobody submitted: the waiter polls all its attempts (Prefect 1's definition gives up at once)
    with pytest.raises(signals.FAIL, match=r"^batch waiter JobExists gave up: .*Max attempts exceeded"):
        await wait.run(waiter_kwargs={"jobs": [str(uuid.uuid4())]})


async def test_a_timed_out_wait_stops_the_execution(moto: Moto) -> None:
    long_wait = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 600, "End": True}}}
    arn = await state_machine(moto, "napper", long_wait)
    with Flow("sfn-timeout") as flow:
        out = StepActivate(wait=True, poll_interval=0.05, timeout=2, **moto.settings)(state_machine_arn=arn)
    state = await flow.run()
    assert state.result[out].is_timed_out()
    async with aws_client("stepfunctions", **moto.settings) as sfn:
        (execution,) = (await sfn.list_executions(stateMachineArn=arn))["executions"]
    assert execution["status"] == "ABORTED"  # stopped, not left running for ten minutes


async def test_a_start_cut_short_by_the_timeout_is_stopped_too(moto: Moto) -> None:
    long_wait = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 600, "End": True}}}
    arn = await state_machine(moto, "napper", long_wait)
    async with answers_held_back(moto, "StartExecution") as (proxy, calls):
        settings = {**moto.settings, "endpoint_url": proxy}
        with Flow("sfn-start-timeout") as flow:
            # room for the client to be made and the call to be sent on a loaded machine
            out = StepActivate(wait=True, timeout=3, **settings)(state_machine_arn=arn)
        state = await flow.run()
    assert state.result[out].is_timed_out()
    assert "StartExecution" in [op for op, *_ in calls]  # the timeout hit while the start was in flight
    async with aws_client("stepfunctions", **moto.settings) as sfn:
        (execution,) = (await sfn.list_executions(stateMachineArn=arn))["executions"]
    assert execution["status"] == "ABORTED"  # started by the call whose answer never came, then stopped
    uuid.UUID(execution["name"])  # unnamed: it got a UUID name, as AWS gives


async def test_a_failed_cleanup_is_logged_and_never_replaces_the_cancellation(
    moto: Moto, caplog: pytest.LogCaptureFixture
) -> None:
    from aflow_tasks.aws._client import cleanup

    logger = logging.getLogger("test.cleanup")
    arn = await state_machine(moto, "adder", PASS)
    never = arn.replace(":stateMachine:", ":execution:") + ":never"
    async with aws_client("stepfunctions", **moto.settings) as sfn:
        stop = functools.partial(sfn.stop_execution, executionArn=never)
        with caplog.at_level(logging.DEBUG, logger="test.cleanup"):
            with anyio.CancelScope() as scope:
                scope.cancel()  # as in a cancelled task: the cleanup still runs, shielded
                await cleanup(stop, "stop it", logger, expected=("ExecutionDoesNotExist",))
                await cleanup(stop, "stop it again", logger)
                await anyio.lowlevel.checkpoint()
            assert scope.cancelled_caught  # the cancellation went on, no botocore error instead
    logged = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in logged] == [logging.DEBUG, logging.WARNING]  # nothing to stop: only DEBUG
    assert logged[0][1].startswith("could not stop it: ")
    assert "ExecutionDoesNotExist" in logged[1][1]


async def test_a_batch_wait_cut_short_terminates_the_job(moto: Moto) -> None:
    queue, definition = await batch_queue(moto)
    # moto's simple backend ends jobs at once: holding back the status makes the task wait forever
    async with answers_held_back(moto, "/v1/describejobs") as (proxy, calls):
        settings = {**moto.settings, "endpoint_url": proxy}
        with Flow("batch-timeout") as flow:
            out = BatchSubmit(job_definition=definition, job_queue=queue, wait=True, timeout=3, **settings)(
                job_name="waits"
            )
        state = await flow.run()
    assert state.result[out].is_timed_out()
    ops = [op for op, *_ in calls]
    assert ops == ["/v1/submitjob", "/v1/describejobs", "/v1/terminatejob"]
    async with aws_client("batch", **moto.settings) as batch:
        (job,) = (await batch.list_jobs(jobQueue=queue, jobStatus="SUCCEEDED"))["jobSummaryList"]
    terminate = json.loads(calls[2][1])
    assert terminate == {"jobId": job["jobId"], "reason": "aflow task cancelled"}
