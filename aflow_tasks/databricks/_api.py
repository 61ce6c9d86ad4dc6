"""The Databricks Jobs API 2.1 over the flow run's shared httpx client: requests, retries, polling."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import anyio

from aflow import context
from aflow.integration import cleanup, to_the_end
from aflow.secrets import register
from aflow.signals import FAIL

from ..http import redact_url, resolve_value, send_request

if TYPE_CHECKING:
    from aflow import Task

__all__ = (
    "DatabricksApi",
    "DatabricksFail",
    "DatabricksRunFail",
    "RunState",
    "deep_string_coerce",
    "idempotency_token",
)

TERMINAL_STATES = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
"""Life-cycle states after which a run does not change."""

_CLEANUP_SECONDS = 30.0


class DatabricksFail(FAIL):
    """The `aflow.signals.FAIL` raised when the Databricks API answers with an error.

    Args:
        message: The state's message.
        status_code: The HTTP status (None for a transport error).
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class DatabricksRunFail(FAIL):
    """The `aflow.signals.FAIL` raised when a run ends in a state other than SUCCESS.

    Args:
        message: The state's message (the run's terminal state and its state message).
        run_id: The run's id.
        run_state: The run's terminal state.
    """

    def __init__(self, message: str, *, run_id: int, run_state: RunState) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.run_state = run_state


@dataclass(frozen=True, slots=True)
class RunState:
    """The state of a Databricks run, as ``runs/get`` reports it.

    Args:
        life_cycle_state: ``PENDING``, ``RUNNING``, ``TERMINATING``, ``TERMINATED``, ``SKIPPED``...
        result_state: ``SUCCESS``, ``FAILED``, ``TIMEDOUT``, ``CANCELED`` (None until terminal).
        state_message: The service's description of the state.
    """

    life_cycle_state: str
    result_state: str | None = None
    state_message: str = ""

    @property
    def is_terminal(self) -> bool:
        """Whether the run has ended."""
        return self.life_cycle_state in TERMINAL_STATES

    @property
    def is_successful(self) -> bool:
        """Whether the run ended with SUCCESS."""
        return self.result_state == "SUCCESS"

    def __str__(self) -> str:
        text = self.life_cycle_state + (f"/{self.result_state}" if self.result_state else "")
        return f"{text}: {self.state_message}" if self.state_message else text


def deep_string_coerce(content: Any, json_path: str = "json") -> Any:
    """Coerce numbers (and enums) in ``content`` to strings, as Prefect 1 did before sending.

    Args:
        content: A JSON-like value.
        json_path: Where it is, for the error message.

    Raises:
        ValueError: For a value that is not a number, a string, a list, a dict or None.
    """
    if isinstance(content, str) or content is None:
        return content
    if isinstance(content, bool):
        return str(content).lower()
    if isinstance(content, int | float):
        return str(content)
    if isinstance(content, list | tuple):
        return [deep_string_coerce(item, f"{json_path}[{i}]") for i, item in enumerate(content)]
    if isinstance(content, dict):
        return {key: deep_string_coerce(value, f"{json_path}[{key}]") for key, value in content.items()}
    if isinstance(content, Enum):
        return str(content.value)
    raise ValueError(f"Type {type(content)} used for parameter {json_path} is not a number or a string")


def idempotency_token(task: Task) -> str:
    """A token stable across the retries of one task run (a new one outside a flow run).

    Args:
        task: The task sending the request.
    """
    flow_run, task_run = context.get("flow_run_id"), context.get("task_run_id")
    if flow_run is None or task_run is None:
        return uuid.uuid4().hex
    return uuid.uuid5(uuid.NAMESPACE_URL, f"aflow:{flow_run}:{task_run}:{task.slug}").hex


class DatabricksApi:
    """One task run's access to the Jobs API (its requests go through the run's shared client).

    Args:
        task: The task (its logger and name).
        host: The workspace URL (``https://`` added when it has no scheme).
        auth: A bearer token or a ``(login, password)`` pair.
        retry_limit: Attempts of a request failing with a 5xx or a transport error (at least 1).
        retry_delay: Seconds between them.
    """

    def __init__(self, task: Task, host: str, auth: str | tuple[str, str], retry_limit: int, retry_delay: float):
        if retry_limit < 1:
            raise ValueError("databricks_retry_limit must be at least 1")
        host = host.rstrip("/")
        self.base = host if "://" in host else f"https://{host}"
        self.task = task
        self.auth = auth
        self.retry_limit = int(retry_limit)
        self.retry_delay = float(retry_delay)
        self.secrets = [auth] if isinstance(auth, str) else [auth[1]]

    @classmethod
    async def connect(cls, task: Task, conn: Any, retry_limit: int | None, retry_delay: float | None) -> DatabricksApi:
        """Check ``databricks_conn_secret`` (resolving a lazy one) and make the API object.

        Args:
            task: The task.
            conn: ``{"host", "token"}`` or ``{"host", "login", "password"}`` (may be lazy).
            retry_limit: ``databricks_retry_limit`` (None for 3).
            retry_delay: ``databricks_retry_delay`` (None for 1).
        """
        conn = await resolve_value(conn)
        if conn is None:
            raise ValueError(
                "databricks_conn_secret is required: a dictionary such as {'host': ..., 'token': ...} "
                "or a Secret holding one"
            )
        if not isinstance(conn, Mapping):
            raise ValueError("`databricks_conn_secret` must be supplied as a valid dictionary.")
        host = conn.get("host")
        if not host:
            raise ValueError("databricks_conn_secret needs a 'host'")
        auth: str | tuple[str, str]
        if conn.get("token"):
            auth = str(await resolve_value(conn["token"]))
        elif conn.get("login") and conn.get("password"):
            auth = (str(conn["login"]), str(await resolve_value(conn["password"])))
        else:
            raise ValueError("databricks_conn_secret needs a 'token', or a 'login' and a 'password'")
        register(auth if isinstance(auth, str) else auth[1])
        return cls(
            task,
            str(host),
            auth,
            3 if retry_limit is None else retry_limit,
            1.0 if retry_delay is None else retry_delay,
        )

    async def call(self, method: str, endpoint: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call ``endpoint`` (``"api/2.1/jobs/runs/get"``), retrying 5xx and transport errors.

        Args:
            method: ``GET`` (the body goes into the query) or ``POST``.
            endpoint: The path under the host.
            body: The request's parameters.

        Raises:
            DatabricksFail: On a 4xx, or once the attempts are used up.
        """
        url = f"{self.base}/{endpoint}"
        label = f"Databricks {method} {endpoint}"
        params = body if method == "GET" else None
        json_body = body if method != "GET" else None
        problem = ""
        for attempt in range(1, self.retry_limit + 1):
            try:
                response = await send_request(
                    self.task,
                    method,
                    url,
                    params=params,
                    json=json_body,
                    auth=self.auth,
                    raise_for_status=False,
                    label=label,
                    secrets=self.secrets,
                    family="databricks",
                )
            except FAIL as exc:  # a transport error: retried like a 5xx
                problem = str(exc)
            else:
                status = response.status_code
                if status < 400:
                    data = response.json() if response.content else {}
                    return data if isinstance(data, dict) else {}
                problem = f"{label} returned {status}: {_error_text(response)}"
                if status < 500:
                    raise DatabricksFail(problem, status_code=status)
            if attempt < self.retry_limit:
                self.task.logger.warning(
                    "%s (attempt %d of %d); retrying in %gs", problem, attempt, self.retry_limit, self.retry_delay
                )
                await anyio.sleep(self.retry_delay)
        raise DatabricksFail(f"{problem} (gave up after {self.retry_limit} attempt(s))")

    async def start(self, endpoint: str, body: dict[str, Any]) -> int:
        """Start a run (``runs/submit`` or ``run-now``) and return its id.

        A cancellation arriving while the request is on its way waits for the answer, then
        cancels the run it started, so no run is left unknown.
        """

        async def undo(data: dict[str, Any]) -> None:
            if "run_id" in data:
                await self.cancel(int(data["run_id"]))

        data = await to_the_end(self.call("POST", endpoint, body), undo, limit=_CLEANUP_SECONDS)
        if "run_id" not in data:
            raise DatabricksFail(f"Databricks POST {endpoint} answered without a run_id: {data}")
        return int(data["run_id"])

    async def cancel(self, run_id: int) -> None:
        """Cancel a run: shielded from cancellation, bounded in time, never raising."""

        async def call() -> None:
            await self.call("POST", "api/2.1/jobs/runs/cancel", {"run_id": run_id})
            self.task.logger.info("Databricks run %s cancelled", run_id)

        await cleanup(call, f"cancel Databricks run {run_id}", self.task.logger, limit=_CLEANUP_SECONDS)

    async def wait(self, run_id: int, polling_period_seconds: float) -> dict[str, Any]:
        """Poll the run until it ends, logging each change of state; cancel it if interrupted.

        Returns:
            The run's last ``runs/get`` answer (when it succeeded).

        Raises:
            DatabricksRunFail: When it ends in a state other than SUCCESS.
        """
        logger, name = self.task.logger, self.task.name
        logger.info("Run submitted with run_id: %s", run_id)
        seen: RunState | None = None
        page: str | None = None
        try:
            while True:
                run = await self.call("GET", "api/2.1/jobs/runs/get", {"run_id": run_id})
                if run.get("run_page_url") and run["run_page_url"] != page:
                    page = str(run["run_page_url"])
                    logger.info("View run status, Spark UI, and logs at %s", page)
                raw = run.get("state") or {}
                state = RunState(
                    str(raw.get("life_cycle_state") or "PENDING"),
                    raw.get("result_state"),
                    str(raw.get("state_message") or ""),
                )
                if state != seen:
                    seen = state
                    logger.info("%s (run %s) in run state: %s", name, run_id, state)
                if state.is_terminal:
                    break
                await anyio.sleep(polling_period_seconds)
        except BaseException:
            await self.cancel(run_id)
            raise
        if not state.is_successful:
            raise DatabricksRunFail(f"{name} failed with terminal state: {state}", run_id=run_id, run_state=state)
        logger.info("%s completed successfully (run %s).", name, run_id)
        return run

    def __repr__(self) -> str:
        return f"DatabricksApi({redact_url(self.base)!r})"


def _error_text(response: Any) -> str:
    try:
        data = response.json()
    except ValueError:
        return str(response.text)[:300] or "<empty body>"
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error_code") or data)[:300]
    return str(data)[:300]
