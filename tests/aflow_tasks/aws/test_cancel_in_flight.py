"""Cancelling AWS tasks at any moment leaves nothing started behind, even while a start is in flight.

A proxy in front of moto answers the starting call late (moto has done the work; the task hears
of it only later), so cancellations land before, during and after it. Each test cancels flows at
growing points (event-loop iterations, then delays), both through the run's handle and by
cancelling the coroutine awaiting ``flow.run()``, and checks that what each start created was
undone: no unfinished multipart upload; every submitted Batch job terminated.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import anyio
import pytest

from aflow import Flow
from aflow.states import Cancelled
from aflow_tasks.aws import BatchSubmit, S3Upload, aws_client

from .conftest import Moto
from .proxy import late_answers
from .test_s3 import BUCKET, MiB, make_bucket
from .test_stepfunctions_batch import batch_queue

GUARD = 60
POINTS = [("iterations", n) for n in (0, 1, 3, 8, 20, 40)] + [("seconds", d) for d in (0.0, 0.05, 0.2, 0.4, 0.8)]


async def cancel_at(flow: Flow, point: tuple[str, float], how: str) -> None:
    """Start ``flow``, cancel it at ``point`` (through its handle or its caller), wait for its end."""
    kind, amount = point
    handle = flow.start() if how == "handle" else None
    run = None if handle else asyncio.ensure_future(flow.run())
    if kind == "iterations":
        for _ in range(int(amount)):
            await asyncio.sleep(0)
    else:
        await asyncio.sleep(amount)
    with anyio.fail_after(GUARD):
        if handle is not None:
            finished = handle.done()
            handle.cancel()
            state = await handle
            assert isinstance(state, Cancelled) or (finished and state.is_successful()), state.result
        else:
            assert run is not None
            if run.done():  # it ended before the cancellation
                assert run.result().is_successful()
                return
            run.cancel()
            with pytest.raises(asyncio.CancelledError):
                await run


@pytest.mark.parametrize("how", ["handle", "caller"])
async def test_cancelled_multipart_uploads_leave_no_unfinished_upload(moto: Moto, tmp_path: Path, how: str) -> None:
    await make_bucket(moto)
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * (6 * MiB))  # two parts of 5 MiB at most

    def late_create(method: str, op: str, query: Any) -> float:
        return 0.3 if method == "POST" and "uploads" in query else 0.0

    async with late_answers(moto, late_create) as (proxy, calls):
        up = S3Upload(
            bucket=BUCKET,
            multipart_threshold=5 * MiB,
            multipart_chunksize=5 * MiB,
            **{**moto.settings, "endpoint_url": proxy},
        )
        with Flow("s3-cancel-points") as flow:
            for i in range(3):
                up(source, key=f"k{i}", task_args={"name": f"up-{i}"})
        left = {}
        for point in POINTS:
            await cancel_at(flow, point, how)
            async with aws_client("s3", **moto.settings) as s3:
                uploads = (await s3.list_multipart_uploads(Bucket=BUCKET)).get("Uploads", [])
            if uploads:
                left[point] = [u["UploadId"] for u in uploads]
    assert left == {}
    assert any(op.startswith(f"/{BUCKET}/k") for op, _, _ in calls)  # uploads were started


@pytest.mark.parametrize("how", ["handle", "caller"])
async def test_cancelled_batch_submits_terminate_every_submitted_job(moto: Moto, how: str) -> None:
    queue, definition = await batch_queue(moto)

    def late_submit(method: str, op: str, query: Any) -> float:
        if op == "/v1/describejobs":
            return math.inf  # the task waits for its job for ever: only a cancellation ends it
        return 0.3 if op == "/v1/submitjob" else 0.0

    async with late_answers(moto, late_submit) as (proxy, calls):
        submit = BatchSubmit(
            job_definition=definition, job_queue=queue, wait=True, **{**moto.settings, "endpoint_url": proxy}
        )
        with Flow("batch-cancel-points") as flow:
            for i in range(3):
                submit(job_name=f"job-{i}", task_args={"name": f"submit-{i}"})
        for point in POINTS:
            await cancel_at(flow, point, how)
        await asyncio.sleep(0.5)  # terminations still on their way to moto through the proxy
    submitted = {json.loads(answer)["jobId"] for op, _, answer in calls if op == "/v1/submitjob"}
    terminated = {json.loads(body)["jobId"] for op, body, _ in calls if op == "/v1/terminatejob"}
    assert submitted  # jobs were submitted
    assert submitted - terminated == set()
