"""Airbyte: trigger a connection's sync and wait for its job (Prefect 1's `prefect.tasks.airbyte`).

`AirbyteConnectionTask` checks the server's health, reads the connection (removing its schedule,
as Prefect 1 did, so Airbyte does not also sync it on its own), starts a manual sync and polls the
job every ``poll_interval_s`` seconds, logging each change of the job's status to the task logger.
A failed job fails the task; a cancelled flow run or a task ``timeout`` cancels the job on the
server (``jobs/cancel``, shielded and bounded in time). Requests go through the flow run's shared
httpx client (`aflow_tasks.http.clients`); a 5xx is retried through the task's ``max_retries``.

Needs httpx: ``pip install aflow-engine[http]``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import anyio

from aflow import Task, defaults_from_attrs
from aflow.integration import cleanup, retry_or_fail, to_the_end
from aflow.signals import FAIL

from .http import send_request

__all__ = (
    "AirbyteConnectionTask",
    "AirbyteFail",
    "AirbyteServerNotHealthyException",
    "AirbyteSyncJobFailed",
    "ConnectionNotFoundException",
    "JobNotFoundException",
)

_CLEANUP_SECONDS = 30.0


class AirbyteFail(FAIL):
    """The `aflow.signals.FAIL` raised by the Airbyte task (the base of the ones below)."""


class ConnectionNotFoundException(AirbyteFail):
    """The connection does not exist on the server."""


class AirbyteServerNotHealthyException(AirbyteFail):
    """The server is unreachable or reports itself unhealthy."""


class JobNotFoundException(AirbyteFail):
    """The sync job vanished from the server."""


class AirbyteSyncJobFailed(AirbyteFail):
    """The sync job failed (or was cancelled on the server)."""


def _level(stream_output: bool | int | str) -> int | None:
    if stream_output is False or stream_output is None:
        return None
    if stream_output is True:
        return logging.INFO
    if isinstance(stream_output, str):
        level = logging.getLevelName(stream_output.upper())
        if not isinstance(level, int):
            raise TypeError(f"'stream_output': {stream_output} is not a valid log level")
        return level
    return int(stream_output)


class AirbyteConnectionTask(Task):
    """Trigger a sync of an Airbyte connection and wait for it to finish.

    Returns Prefect 1's dict: ``connection_id``, ``status`` (the connection's), ``job_status``,
    ``job_created_at`` and ``job_updated_at``. An inactive or deprecated connection fails the task.

    Args:
        airbyte_server_host: The Airbyte server's host (default ``"localhost"``).
        airbyte_server_port: Its port (default 8000).
        airbyte_api_version: The API version (default ``"v1"``).
        connection_id: The connection's id (a UUID); default None (give it to the call).
        stream_output: Log the API's answers as they come: True for INFO, or a level (number or
            name); False (default) logs only the job's status changes (at INFO).
        **kwargs: `aflow.Task` attributes (a ``timeout`` cancels the job).
    """

    CONNECTION_STATUS_ACTIVE = "active"
    CONNECTION_STATUS_INACTIVE = "inactive"
    CONNECTION_STATUS_DEPRECATED = "deprecated"
    JOB_STATUS_SUCCEEDED = "succeeded"
    JOB_STATUS_FAILED = "failed"
    JOB_STATUS_CANCELLED = "cancelled"
    JOB_STATUS_PENDING = "pending"

    def __init__(
        self,
        airbyte_server_host: str = "localhost",
        airbyte_server_port: int = 8000,
        airbyte_api_version: str = "v1",
        connection_id: str | None = None,
        stream_output: bool | int | str = False,
        **kwargs: Any,
    ) -> None:
        self.airbyte_server_host = airbyte_server_host
        self.airbyte_server_port = airbyte_server_port
        self.airbyte_api_version = airbyte_api_version
        self.connection_id = connection_id
        self.stream_output = _level(stream_output)
        super().__init__(**kwargs)

    async def _call(self, base: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One API call; None for a 404, a 5xx retried through the task's retries, a 4xx failing."""
        label = f"Airbyte {method} {path}"
        response = await send_request(
            self, method, f"{base}/{path}", json=body, raise_for_status=False, label=label, family="airbyte"
        )
        status = response.status_code
        if status == 404:
            raise _NotFound(label)
        if status >= 400:
            problem = f"{label} returned {status}: {response.text[:300]}"
            if status >= 500:
                raise retry_or_fail(problem, task=self, fail=AirbyteFail)
            raise AirbyteFail(problem)
        data = response.json() if response.content else {}
        if self.stream_output is not None:
            self.logger.log(self.stream_output, "%s: %s", label, data)
        return data if isinstance(data, dict) else {}

    async def _connection_status(self, base: str, connection_id: str) -> str:
        try:
            connection = await self._call(base, "POST", "connections/get/", {"connectionId": connection_id})
        except _NotFound:
            raise ConnectionNotFoundException(
                f"Connection {connection_id} not found, please double check the connection_id ..."
            ) from None
        if connection.get("schedule"):
            self.logger.warning("Found existing Connection schedule, removing ...")
            update = {
                "connectionId": connection_id,
                "syncCatalog": connection.get("syncCatalog"),
                "schedule": None,
                "status": connection.get("status"),
            }
            try:
                await self._call(base, "POST", "connections/update/", update)
                self.logger.info("Schedule removed ok.")
            except (AirbyteFail, _NotFound):
                self.logger.warning("Schedule not removed.")
        return str(connection.get("status"))

    async def _cancel(self, base: str, job_id: Any) -> None:
        async def call() -> None:
            await self._call(base, "POST", "jobs/cancel/", {"id": job_id})
            self.logger.info("Airbyte job %s cancelled", job_id)

        await cleanup(call, f"cancel Airbyte job {job_id}", self.logger, limit=_CLEANUP_SECONDS)

    async def _wait(self, base: str, job_id: Any, poll: float) -> tuple[str, Any, Any]:
        seen = None
        while True:
            try:
                job = (await self._call(base, "POST", "jobs/get/", {"id": job_id})).get("job") or {}
            except _NotFound:
                raise JobNotFoundException(f"Job {job_id} not found...") from None
            status = str(job.get("status"))
            if status != seen:
                seen = status
                self.logger.info("Airbyte job %s: %s", job_id, status)
            if status == self.JOB_STATUS_SUCCEEDED:
                self.logger.info("Job %s succeeded.", job_id)
                return status, job.get("createdAt"), job.get("updatedAt")
            if status in (self.JOB_STATUS_FAILED, self.JOB_STATUS_CANCELLED):
                self.logger.error("Job %s %s.", job_id, status)
                raise AirbyteSyncJobFailed(f"Job {job_id} {status}.")
            await anyio.sleep(poll)

    async def _checked(
        self, host: Any, port: Any, version: Any, connection_id: str | None, poll_interval_s: float
    ) -> str:
        """Check the arguments and the server's health; return the API's base URL."""
        if not connection_id:
            raise ValueError("Value for parameter `connection_id` *must* be provided.")
        try:
            uuid.UUID(str(connection_id))
        except ValueError:
            raise ValueError(
                "Parameter `connection_id` *must* be a valid UUID i.e. 32 hex characters, including hyphens."
            ) from None
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be positive, got {poll_interval_s!r}")
        base = f"http://{host}:{port}/api/{version}"
        try:
            health = await self._call(base, "GET", "health/")
        except (_NotFound, FAIL) as exc:
            raise AirbyteServerNotHealthyException(f"Airbyte Server at {base} is not reachable: {exc}") from None
        healthy = health.get("available" if "available" in health else "db")
        if not healthy:
            raise AirbyteServerNotHealthyException(f"Airbyte Server health status: {healthy}")
        return base

    @defaults_from_attrs("airbyte_server_host", "airbyte_server_port", "airbyte_api_version", "connection_id")
    async def run(
        self,
        airbyte_server_host: str | None = None,
        airbyte_server_port: int | None = None,
        airbyte_api_version: str | None = None,
        connection_id: str | None = None,
        poll_interval_s: float = 15,
    ) -> dict[str, Any]:
        """Sync the connection and wait for the job to succeed.

        Args:
            airbyte_server_host: Defaults to the task's.
            airbyte_server_port: Defaults to the task's.
            airbyte_api_version: Defaults to the task's.
            connection_id: Defaults to the task's.
            poll_interval_s: Seconds between job status polls (default 15).

        Returns:
            ``{"connection_id", "status", "job_status", "job_created_at", "job_updated_at"}``.

        Raises:
            ValueError: Without a connection id, or with one that is not a UUID.
            AirbyteFail: When the server is unhealthy, the connection missing, inactive or
                deprecated, or the job fails.
        """
        base = await self._checked(
            airbyte_server_host, airbyte_server_port, airbyte_api_version, connection_id, poll_interval_s
        )
        connection_id = str(connection_id)
        self.logger.info(
            "Getting Airbyte Connection %s, poll interval %s seconds, airbyte_base_url %s",
            connection_id,
            poll_interval_s,
            base,
        )
        connection_status = await self._connection_status(base, connection_id)
        if connection_status == self.CONNECTION_STATUS_INACTIVE:
            self.logger.error("Please enable the Connection %s in Airbyte Server.", connection_id)
            raise AirbyteFail(f"Please enable the Connection {connection_id} in Airbyte Server.")
        if connection_status == self.CONNECTION_STATUS_DEPRECATED:
            self.logger.error("Connection %s is deprecated.", connection_id)
            raise AirbyteFail(f"Connection {connection_id} is deprecated.")
        if connection_status != self.CONNECTION_STATUS_ACTIVE:
            raise AirbyteFail(f"Connection {connection_id} has an unknown status: {connection_status!r}")

        async def undo(answer: dict[str, Any]) -> None:
            job_id = (answer.get("job") or {}).get("id")
            if job_id is not None:
                await self._cancel(base, job_id)

        sync = self._call(base, "POST", "connections/sync/", {"connectionId": connection_id})
        try:
            started = await to_the_end(sync, undo, limit=_CLEANUP_SECONDS)
        except _NotFound:
            raise ConnectionNotFoundException(
                f"Connection {connection_id} not found, please double check the connection_id ..."
            ) from None
        job_id = (started.get("job") or {}).get("id")
        self.logger.info("Airbyte sync job %s started for connection %s", job_id, connection_id)
        try:
            job_status, created, updated = await self._wait(base, job_id, poll_interval_s)
        except AirbyteSyncJobFailed:
            raise
        except BaseException:
            await self._cancel(base, job_id)
            raise
        return {
            "connection_id": connection_id,
            "status": connection_status,
            "job_status": job_status,
            "job_created_at": created,
            "job_updated_at": updated,
        }


class _NotFound(Exception):
    """A 404 answer (turned into the named exception by the caller)."""
