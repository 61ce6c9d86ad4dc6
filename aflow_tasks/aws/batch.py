"""AWS Batch: `BatchSubmit` submits a job and can wait for it to finish."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import anyio

from aflow import defaults_from_attrs
from aflow.integration import to_the_end
from aflow.signals import FAIL

from ._client import AWSTask, aws_errors, cleanup

__all__ = ("BatchSubmit",)

_DONE = frozenset({"SUCCEEDED", "FAILED"})


class BatchSubmit(AWSTask):
    """Submit an AWS Batch job and return its id; optionally wait for SUCCEEDED or FAILED.

    With ``wait=True`` the job is polled every ``poll_interval`` seconds (and terminated if the
    task is cancelled or times out while waiting); a FAILED job fails the
    task with its status reason. Bound the wait with the task's ``timeout``.

    Args:
        job_name: The job's name (at least 2 characters). Defaults to None (give it to the call).
        job_definition: The job definition's name or ARN. Defaults to None (required).
        job_queue: The job queue's name or ARN. Defaults to None (required).
        batch_kwargs: More ``submit_job`` arguments (``containerOverrides``, ``parameters``...).
            Defaults to None.
        wait: Wait for the job to end. Defaults to False.
        poll_interval: Seconds between two status checks while waiting. Defaults to 5.0.
        credentials: See `aflow_tasks.aws.AWSTask` (also ``region_name``, ``endpoint_url``,
            ``client_kwargs``). Defaults to None.
        **kwargs: Client settings and `aflow.Task` arguments.
    """

    def __init__(
        self,
        job_name: str | None = None,
        job_definition: str | None = None,
        job_queue: str | None = None,
        batch_kwargs: Mapping[str, Any] | None = None,
        wait: bool = False,
        poll_interval: float = 5.0,
        credentials: Any = None,
        **kwargs: Any,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
        self.job_name = job_name
        self.job_definition = job_definition
        self.job_queue = job_queue
        self.batch_kwargs = dict(batch_kwargs or {})
        self.wait = wait
        self.poll_interval = poll_interval
        super().__init__(credentials=credentials, **kwargs)

    @defaults_from_attrs("job_name", "job_definition", "job_queue", "batch_kwargs", "wait", "credentials")
    async def run(
        self,
        job_name: str | None = None,
        job_definition: str | None = None,
        job_queue: str | None = None,
        batch_kwargs: Mapping[str, Any] | None = None,
        wait: bool | None = None,
        credentials: Any = None,
    ) -> str:
        """Submit the job (and wait for it if asked).

        Args:
            job_name: The job's name (default: the initialization's; required).
            job_definition: The job definition (default: the initialization's; required).
            job_queue: The job queue (default: the initialization's; required).
            batch_kwargs: More ``submit_job`` arguments (default: the initialization's).
            wait: Wait for the job to end (default: the initialization's).
            credentials: AWS credentials (default: the initialization's).

        Returns:
            The job id.

        Raises:
            ValueError: A required argument is missing.
            FAIL: The submission was refused, or the job FAILED.
        """
        for arg, value in (("job_name", job_name), ("job_definition", job_definition), ("job_queue", job_queue)):
            if not value:
                raise ValueError(
                    f"BatchSubmit needs {arg}: give it at initialization (BatchSubmit({arg}=...)) "
                    f"or to the call ({arg}=...)"
                )
        label = f"Batch job {job_name}"
        async with self._client("batch", credentials) as client, aws_errors(self, label):

            async def terminate(submitted: Mapping[str, Any]) -> None:
                job_id = submitted["jobId"]
                kill = functools.partial(client.terminate_job, jobId=job_id, reason="aflow task cancelled")
                await cleanup(kill, f"terminate Batch job {job_id}", self.logger)

            # the job's id comes with the answer: a cancellation landing meanwhile waits for it,
            # then terminates the job, so none is left running unknown
            submit = client.submit_job(
                jobName=job_name, jobDefinition=job_definition, jobQueue=job_queue, **dict(batch_kwargs or {})
            )
            response = await to_the_end(submit, terminate)
            job_id = str(response["jobId"])
            if not wait:
                return job_id
            try:
                while True:
                    jobs = (await client.describe_jobs(jobs=[job_id]))["jobs"]
                    if not jobs:
                        raise FAIL(f"{label} ({job_id}) is no longer known to Batch")
                    job = jobs[0]
                    if job["status"] in _DONE:
                        break
                    await anyio.sleep(self.poll_interval)
            except anyio.get_cancelled_exc_class():
                # cancelled or timed out while waiting: terminate the job, leave nothing running
                await terminate(response)
                raise
        if job["status"] == "FAILED":
            reason = job.get("statusReason") or "no reason given"
            raise FAIL(f"{label} ({job_id}) FAILED: {reason}", result=job)
        return job_id
