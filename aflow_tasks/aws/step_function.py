"""AWS Step Functions: `StepActivate` starts an execution and can wait for its end."""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any

import anyio

from aflow import defaults_from_attrs
from aflow.signals import FAIL

from ._client import AWSTask, aws_errors, cleanup

__all__ = ("StepActivate",)

_RUNNING = frozenset({"RUNNING", "PENDING_REDRIVE"})


class StepActivate(AWSTask):
    """Start a Step Functions execution; optionally wait for its end and return its output.

    Without ``wait`` the task returns the API's answer (``executionArn``, ``startDate``). With
    ``wait=True`` it polls the execution every ``poll_interval`` seconds and returns the
    execution's output decoded from JSON when it SUCCEEDED; FAILED, TIMED_OUT and ABORTED fail
    the task with the execution's error and cause. Bound the wait with the task's ``timeout``.
    If the task is cancelled or times out while starting the execution or waiting for it, the
    execution is stopped: nothing is left running. (An unnamed execution gets a UUID name here,
    as AWS would give it, so that it can be stopped even when the start's answer never arrived.)

    Args:
        state_machine_arn: The state machine's ARN. Defaults to None (give it to the call).
        execution_name: A name for the execution (unique for 90 days). Defaults to None (a
            UUID).
        execution_input: The input: a JSON string or a JSON-able value. Defaults to ``"{}"``.
        wait: Wait for the execution to end. Defaults to False.
        poll_interval: Seconds between two status checks while waiting. Defaults to 5.0.
        credentials: See `aflow_tasks.aws.AWSTask` (also ``region_name``, ``endpoint_url``,
            ``client_kwargs``). Defaults to None.
        **kwargs: Client settings and `aflow.Task` arguments.
    """

    def __init__(
        self,
        state_machine_arn: str | None = None,
        execution_name: str | None = None,
        execution_input: Any = "{}",
        wait: bool = False,
        poll_interval: float = 5.0,
        credentials: Any = None,
        **kwargs: Any,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
        self.state_machine_arn = state_machine_arn
        self.execution_name = execution_name
        self.execution_input = execution_input
        self.wait = wait
        self.poll_interval = poll_interval
        super().__init__(credentials=credentials, **kwargs)

    @defaults_from_attrs("state_machine_arn", "execution_name", "execution_input", "wait", "credentials")
    async def run(
        self,
        state_machine_arn: str | None = None,
        execution_name: str | None = None,
        execution_input: Any = None,
        wait: bool | None = None,
        credentials: Any = None,
    ) -> Any:
        """Start the execution (and wait for it if asked).

        Args:
            state_machine_arn: The state machine's ARN (default: the initialization's; required).
            execution_name: The execution's name (default: the initialization's).
            execution_input: The input (default: the initialization's).
            wait: Wait for the end (default: the initialization's).
            credentials: AWS credentials (default: the initialization's).

        Returns:
            Without waiting, ``{"executionArn": ..., "startDate": ...}``; with it, the output.

        Raises:
            ValueError: No state machine ARN.
            FAIL: The start was refused, or the execution did not succeed.
        """
        if not state_machine_arn:
            raise ValueError(
                "StepActivate needs state_machine_arn: give it at initialization "
                "(StepActivate(state_machine_arn=...)) or to the call (state_machine_arn=...)"
            )
        if execution_input is None:
            execution_input = "{}"
        args: dict[str, Any] = {
            "stateMachineArn": state_machine_arn,
            "input": execution_input if isinstance(execution_input, str) else json.dumps(execution_input),
        }
        args["name"] = execution_name or str(uuid.uuid4())
        # the execution's ARN, known before the start answers: a cancelled start can stop it too
        arn = f"{state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{args['name']}"
        label = f"Step Functions execution of {state_machine_arn}"
        async with self._client("stepfunctions", credentials) as client, aws_errors(self, label):
            try:
                started = await client.start_execution(**args)
                arn = started["executionArn"]
                if not wait:
                    return {"executionArn": arn, "startDate": started.get("startDate")}
                self.logger.debug("started %s; waiting for it to end", arn)
                while True:
                    execution = await client.describe_execution(executionArn=arn)
                    if execution["status"] not in _RUNNING:
                        break
                    await anyio.sleep(self.poll_interval)
            except anyio.get_cancelled_exc_class():
                # cancelled or timed out: stop the execution (if the start got through), leave nothing running
                stop = functools.partial(
                    client.stop_execution, executionArn=arn, error="aflow.Cancelled", cause="task cancelled"
                )
                await cleanup(stop, f"stop {arn}", self.logger, expected=("ExecutionDoesNotExist",))
                raise
        status = execution["status"]
        if status != "SUCCEEDED":
            error = execution.get("error") or "no error"
            cause = execution.get("cause") or "no cause given"
            raise FAIL(f"{label} ended {status}: {error}: {cause} ({arn})", result=execution)
        output = execution.get("output")
        if output is None:
            return None
        try:
            return json.loads(output)
        except ValueError:
            return output
