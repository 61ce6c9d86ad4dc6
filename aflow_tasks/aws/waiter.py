"""`AWSClientWait`: wait with any botocore waiter, without blocking the event loop."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aflow import defaults_from_attrs
from aflow.signals import FAIL

from ._client import AWSTask, aws_errors
from ._waiters import shipped_waiter, shipped_waiter_names

__all__ = ("AWSClientWait",)


class AWSClientWait(AWSTask):
    """Wait for an AWS resource with a botocore waiter (``bucket_exists``, ``function_active``...).

    The waiter polls with aiobotocore, so the loop is never blocked. A waiter that gives up (too
    many attempts, or a failure state reached) fails the task with the waiter's reason.

    Besides botocore's own waiters, the three AWS Batch waiters Prefect 1 ships are built in (give
    them ``waiter_kwargs={"jobs": [job_id]}``): ``"JobExists"`` (the job is listed, in any status;
    polls every 2 s, 100 attempts), ``"JobRunning"`` (RUNNING, SUCCEEDED or FAILED; every 5 s, 100
    attempts) and ``"JobComplete"`` (SUCCEEDED, giving up at once on FAILED; every 300 s, 288
    attempts). Their snake_case spellings (``"job_complete"``...) work too.

    Args:
        client: The botocore service name (``"s3"``, ``"batch"``...). Defaults to None (required).
        waiter_name: The waiter's name (``"bucket_exists"``, ``"JobComplete"``...). Defaults to
            None (required).
        waiter_definition: A custom waiter model (a dict in botocore's waiter JSON format, with
            ``version`` and ``waiters``) in which ``waiter_name`` is looked up instead of the
            service's own waiters. Defaults to None.
        max_attempts: Override of the waiter's number of attempts. Defaults to None.
        delay: Override of the waiter's seconds between attempts. Defaults to None.
        credentials: See `aflow_tasks.aws.AWSTask` (also ``region_name``, ``endpoint_url``,
            ``client_kwargs``). Defaults to None.
        **kwargs: Client settings and `aflow.Task` arguments.
    """

    def __init__(
        self,
        client: str | None = None,
        waiter_name: str | None = None,
        waiter_definition: Mapping[str, Any] | None = None,
        max_attempts: int | None = None,
        delay: float | None = None,
        credentials: Any = None,
        **kwargs: Any,
    ) -> None:
        self.client = client
        self.waiter_name = waiter_name
        self.waiter_definition = waiter_definition
        self.max_attempts = max_attempts
        self.delay = delay
        super().__init__(credentials=credentials, **kwargs)

    @defaults_from_attrs("client", "waiter_name", "max_attempts", "delay", "credentials")
    async def run(
        self,
        client: str | None = None,
        waiter_name: str | None = None,
        waiter_kwargs: Mapping[str, Any] | None = None,
        max_attempts: int | None = None,
        delay: float | None = None,
        credentials: Any = None,
    ) -> None:
        """Wait.

        Args:
            client: The service name (default: the initialization's; required).
            waiter_name: The waiter's name (default: the initialization's; required).
            waiter_kwargs: The waiter's arguments (``{"Bucket": "b"}``...).
            max_attempts: Attempts (default: the initialization's, else the waiter's).
            delay: Seconds between attempts (default: the initialization's, else the waiter's).
            credentials: AWS credentials (default: the initialization's).

        Raises:
            ValueError: No client or waiter name, or an unknown waiter.
            FAIL: The waiter gave up, or AWS refused a call.
        """
        from botocore.exceptions import WaiterError  # type: ignore[import-untyped]

        if not client:
            raise ValueError("AWSClientWait needs client (a service name such as 's3'): at initialization or the call")
        if not waiter_name:
            raise ValueError("AWSClientWait needs waiter_name (such as 'bucket_exists'): at initialization or the call")
        kwargs = dict(waiter_kwargs or {})
        config: dict[str, Any] = {}
        if max_attempts is not None:
            config["MaxAttempts"] = max_attempts
        if delay is not None:
            config["Delay"] = delay
        if config:
            kwargs["WaiterConfig"] = config
        label = f"{client} waiter {waiter_name}"
        async with self._client(client, credentials) as aws, aws_errors(self, label):
            if self.waiter_definition is not None:
                from aiobotocore.waiter import create_waiter_with_client  # type: ignore[import-untyped]
                from botocore.waiter import WaiterModel  # type: ignore[import-untyped]

                model = WaiterModel(dict(self.waiter_definition))
                if waiter_name not in model.waiter_names:
                    raise ValueError(f"waiter_definition has no waiter {waiter_name!r}: it has {model.waiter_names}")
                waiter = create_waiter_with_client(waiter_name, model, aws)
            elif waiter_name in aws.waiter_names:
                waiter = aws.get_waiter(waiter_name)
            elif (shipped := shipped_waiter(client, waiter_name)) is not None:
                from aiobotocore.waiter import create_waiter_with_client
                from botocore.waiter import WaiterModel

                name, definition = shipped
                waiter = create_waiter_with_client(name, WaiterModel(dict(definition)), aws)
            else:
                known = sorted([*aws.waiter_names, *shipped_waiter_names(client)])
                raise ValueError(f"{client} has no waiter {waiter_name!r}: it has {known}")
            try:
                await waiter.wait(**kwargs)
            except WaiterError as exc:
                raise FAIL(f"{label} gave up: {exc}") from exc
