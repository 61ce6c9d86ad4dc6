"""Waiters that botocore lacks and Prefect 1 ships: AWS Batch's ``JobExists``, ``JobRunning``, ``JobComplete``.

The models are built here in botocore's waiter format (version 2) and run with aiobotocore's
waiter machinery, exactly as a botocore waiter or a ``waiter_definition`` would be. They poll
``DescribeJobs`` with ``waiter_kwargs={"jobs": [job_id]}``; each has Prefect 1's delay and number
of attempts. One deliberate difference (docs/prefect1.md): ``JobExists`` keeps polling while the
job is not listed yet, where Prefect 1's definition gives up on the first answer without it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ("shipped_waiter", "shipped_waiter_names")

_JOB_STATUS = "jobs[].status"
_BATCH_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


def _describe_jobs(
    description: str,
    *,
    delay: float,
    max_attempts: int,
    done_when_all: Iterable[str],
    failed_when_any: Iterable[str] = (),
    api_error_fails: bool = False,
) -> dict[str, Any]:
    """A ``DescribeJobs`` waiter: done when every job has one status, given up when any has another."""
    acceptors: list[dict[str, Any]] = [
        {"matcher": "pathAll", "argument": _JOB_STATUS, "expected": status, "state": "success"}
        for status in done_when_all
    ]
    acceptors += [
        {"matcher": "pathAny", "argument": _JOB_STATUS, "expected": status, "state": "failure"}
        for status in failed_when_any
    ]
    if api_error_fails:  # any AWS error code ends the wait at once
        acceptors.append({"matcher": "error", "expected": True, "state": "failure"})
    return {
        "description": description,
        "operation": "DescribeJobs",
        "delay": delay,
        "maxAttempts": max_attempts,
        "acceptors": acceptors,
    }


_SHIPPED: Mapping[str, Mapping[str, Any]] = {
    "batch": {
        "version": 2,
        "waiters": {
            "JobExists": _describe_jobs(
                "Wait until the job is listed, in any status",
                delay=2,
                max_attempts=100,
                done_when_all=_BATCH_STATUSES,
                api_error_fails=True,
            ),
            "JobRunning": _describe_jobs(
                "Wait until the job runs or has finished (SUCCEEDED or FAILED)",
                delay=5,
                max_attempts=100,
                done_when_all=("RUNNING", "SUCCEEDED", "FAILED"),
            ),
            "JobComplete": _describe_jobs(
                "Wait until the job SUCCEEDED; give up if it FAILED",
                delay=300,
                max_attempts=288,
                done_when_all=("SUCCEEDED",),
                failed_when_any=("FAILED",),
            ),
        },
    },
}


def shipped_waiter_names(client: str) -> list[str]:
    """The names of the waiters shipped for ``client`` (botocore's spelling: ``JobExists``)."""
    return list(_SHIPPED.get(client, {}).get("waiters", {}))


def shipped_waiter(client: str, waiter_name: str) -> tuple[str, Mapping[str, Any]] | None:
    """The waiter's model name and the whole model, for ``JobExists`` or ``job_exists``; None if not shipped."""
    for name in shipped_waiter_names(client):
        if waiter_name in (name, re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()):  # as botocore's spelling
            return name, _SHIPPED[client]
    return None
