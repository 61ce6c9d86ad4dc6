"""Databricks tasks: submit a run, run a job now, submit a multitask run, find a job's id.

Each run task starts a run through the Jobs API 2.1, then polls ``runs/get`` every
``polling_period_seconds`` (an ``anyio.sleep``: many runs poll at once from one event loop),
logging every change of the run's state and its run page URL to the task logger as the polls see
them. A run ending in a state other than SUCCESS fails the task with that state and its message
(`DatabricksRunFail`); a cancelled flow run or a task ``timeout`` cancels the run
(``runs/cancel``, shielded and bounded in time). Requests failing with a 5xx or a transport error
are tried ``databricks_retry_limit`` times in all, ``databricks_retry_delay`` seconds apart; a 4xx
fails at once. Every start request carries an idempotency token, stable across the retries of a
task run, so a retried request never starts a second run.
"""

from __future__ import annotations

from typing import Any

from aflow import Task, context, defaults_from_attrs

from ._api import DatabricksApi, deep_string_coerce, idempotency_token

__all__ = ("DatabricksGetJobID", "DatabricksRunNow", "DatabricksSubmitMultitaskRun", "DatabricksSubmitRun")

_CONN = "databricks_conn_secret"
_RETRY = ("polling_period_seconds", "databricks_retry_limit", "databricks_retry_delay")


def _as_dict(value: Any) -> Any:
    """A model object (pydantic's ``model_dump``/``dict``) as a plain dict; other values as they are."""
    for method in ("model_dump", "dict"):
        dump = getattr(value, method, None)
        if callable(dump) and not isinstance(value, dict):
            return _drop_none(dump())
    return value


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _poll_period(value: float | None) -> float:
    period = 30.0 if value is None else float(value)
    if period <= 0:
        raise ValueError(f"polling_period_seconds must be positive, got {value!r}")
    return period


async def _run(
    task: Task,
    conn: Any,
    endpoint: str,
    body: dict[str, Any],
    polling_period_seconds: float | None,
    retry_limit: int | None,
    retry_delay: float | None,
) -> int:
    """Start a run, wait for it (logging its states) and return its id."""
    period = _poll_period(polling_period_seconds)
    api = await DatabricksApi.connect(task, conn, retry_limit, retry_delay)
    body.setdefault("idempotency_token", idempotency_token(task))
    run_id = await api.start(endpoint, body)
    task.logger.info("Run submitted with config: %s", {k: v for k, v in body.items() if k != "idempotency_token"})
    await api.wait(run_id, period)
    return run_id


class DatabricksSubmitRun(Task):
    """Submit a one-time run (``api/2.1/jobs/runs/submit``), wait for it and return its run id.

    The named parameters are merged over ``json`` (they win on conflicts), as in Prefect 1, and
    numbers are sent as strings. The run's state changes and run page URL are logged while it runs.

    Args:
        databricks_conn_secret: ``{"host": ..., "token": ...}`` or ``{"host": ..., "login": ...,
            "password": ...}`` (may be lazy, e.g. ``Secret("DATABRICKS_CONNECTION_STRING")``); a
            host without a scheme gets ``https://``.
        json: The ``runs/submit`` body; the named parameters below are merged over it.
        spark_jar_task: The main class and parameters of a JAR task.
        notebook_task: The notebook path and parameters of a notebook task.
        new_cluster: The spec of a new cluster for the run.
        existing_cluster_id: The id of an existing cluster to run on.
        libraries: Libraries the run uses.
        run_name: The run's name (default ``"Run Submitted by aflow"``).
        timeout_seconds: The run's timeout on Databricks (default none).
        polling_period_seconds: Seconds between status polls (default 30).
        databricks_retry_limit: Attempts of a request failing with a 5xx or a transport error
            (default 3, at least 1).
        databricks_retry_delay: Seconds between those attempts (default 1).
        **kwargs: `aflow.Task` attributes (a ``timeout`` cancels the run).
    """

    def __init__(
        self,
        databricks_conn_secret: Any = None,
        json: dict[str, Any] | None = None,
        spark_jar_task: dict[str, Any] | None = None,
        notebook_task: dict[str, Any] | None = None,
        new_cluster: dict[str, Any] | None = None,
        existing_cluster_id: str | None = None,
        libraries: list[dict[str, Any]] | None = None,
        run_name: str | None = None,
        timeout_seconds: int | None = None,
        polling_period_seconds: float = 30,
        databricks_retry_limit: int = 3,
        databricks_retry_delay: float = 1,
        **kwargs: Any,
    ) -> None:
        self.databricks_conn_secret = databricks_conn_secret
        self.json = json or {}
        self.spark_jar_task = spark_jar_task
        self.notebook_task = notebook_task
        self.new_cluster = new_cluster
        self.existing_cluster_id = existing_cluster_id
        self.libraries = libraries
        self.run_name = run_name
        self.timeout_seconds = timeout_seconds
        self.polling_period_seconds = polling_period_seconds
        self.databricks_retry_limit = databricks_retry_limit
        self.databricks_retry_delay = databricks_retry_delay
        super().__init__(**kwargs)

    @defaults_from_attrs(
        _CONN,
        "json",
        "spark_jar_task",
        "notebook_task",
        "new_cluster",
        "existing_cluster_id",
        "libraries",
        "run_name",
        "timeout_seconds",
        *_RETRY,
    )
    async def run(
        self,
        databricks_conn_secret: Any = None,
        json: dict[str, Any] | None = None,
        spark_jar_task: dict[str, Any] | None = None,
        notebook_task: dict[str, Any] | None = None,
        new_cluster: dict[str, Any] | None = None,
        existing_cluster_id: str | None = None,
        libraries: list[dict[str, Any]] | None = None,
        run_name: str | None = None,
        timeout_seconds: int | None = None,
        polling_period_seconds: float | None = None,
        databricks_retry_limit: int | None = None,
        databricks_retry_delay: float | None = None,
    ) -> int:
        """Submit the run and wait for it to succeed.

        Args:
            databricks_conn_secret: Defaults to the task's.
            json: Defaults to the task's.
            spark_jar_task: Defaults to the task's.
            notebook_task: Defaults to the task's.
            new_cluster: Defaults to the task's.
            existing_cluster_id: Defaults to the task's.
            libraries: Defaults to the task's.
            run_name: Defaults to the task's.
            timeout_seconds: Defaults to the task's.
            polling_period_seconds: Defaults to the task's.
            databricks_retry_limit: Defaults to the task's.
            databricks_retry_delay: Defaults to the task's.

        Returns:
            The run id.

        Raises:
            ValueError: Without a valid ``databricks_conn_secret``.
            DatabricksRunFail: When the run ends in a state other than SUCCESS.
            DatabricksFail: When the API answers with an error.
        """
        body = dict(json or {})
        named = {
            "spark_jar_task": spark_jar_task,
            "notebook_task": notebook_task,
            "new_cluster": new_cluster,
            "existing_cluster_id": existing_cluster_id,
            "libraries": libraries,
            "run_name": run_name,
            "timeout_seconds": timeout_seconds,
        }
        body.update({k: v for k, v in named.items() if v is not None})
        body.setdefault("run_name", "Run Submitted by aflow")
        body = deep_string_coerce(body)
        return await _run(
            self,
            databricks_conn_secret,
            "api/2.1/jobs/runs/submit",
            body,
            polling_period_seconds,
            databricks_retry_limit,
            databricks_retry_delay,
        )


class DatabricksRunNow(Task):
    """Run an existing job now (``api/2.1/jobs/run-now``), wait for it and return its run id.

    The named parameters are merged over ``json`` (they win; ``notebook_params`` are merged key
    by key), as in Prefect 1.

    Args:
        databricks_conn_secret: The connection (see `DatabricksSubmitRun`).
        job_id: The id of the job to run.
        json: The ``run-now`` body; the named parameters below are merged over it.
        notebook_params: Parameters of a notebook task (``{"name": "value"}``).
        python_params: Parameters of a Python task.
        spark_submit_params: Parameters of a spark-submit task.
        jar_params: Parameters of a JAR task.
        polling_period_seconds: Seconds between status polls (default 30).
        databricks_retry_limit: Attempts of a request failing with a 5xx or a transport error
            (default 3).
        databricks_retry_delay: Seconds between those attempts (default 1).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        databricks_conn_secret: Any = None,
        job_id: str | int | None = None,
        json: dict[str, Any] | None = None,
        notebook_params: dict[str, Any] | None = None,
        python_params: list[str] | None = None,
        spark_submit_params: list[str] | None = None,
        jar_params: list[str] | None = None,
        polling_period_seconds: float = 30,
        databricks_retry_limit: int = 3,
        databricks_retry_delay: float = 1,
        **kwargs: Any,
    ) -> None:
        self.databricks_conn_secret = databricks_conn_secret
        self.json = json or {}
        self.job_id = job_id
        self.notebook_params = notebook_params
        self.python_params = python_params
        self.spark_submit_params = spark_submit_params
        self.jar_params = jar_params
        self.polling_period_seconds = polling_period_seconds
        self.databricks_retry_limit = databricks_retry_limit
        self.databricks_retry_delay = databricks_retry_delay
        super().__init__(**kwargs)

    @defaults_from_attrs(
        _CONN, "job_id", "json", "notebook_params", "python_params", "spark_submit_params", "jar_params", *_RETRY
    )
    async def run(
        self,
        databricks_conn_secret: Any = None,
        job_id: str | int | None = None,
        json: dict[str, Any] | None = None,
        notebook_params: dict[str, Any] | None = None,
        python_params: list[str] | None = None,
        spark_submit_params: list[str] | None = None,
        jar_params: list[str] | None = None,
        polling_period_seconds: float | None = None,
        databricks_retry_limit: int | None = None,
        databricks_retry_delay: float | None = None,
    ) -> int:
        """Run the job and wait for the run to succeed.

        Args:
            databricks_conn_secret: Defaults to the task's.
            job_id: Defaults to the task's.
            json: Defaults to the task's.
            notebook_params: Defaults to the task's.
            python_params: Defaults to the task's.
            spark_submit_params: Defaults to the task's.
            jar_params: Defaults to the task's.
            polling_period_seconds: Defaults to the task's.
            databricks_retry_limit: Defaults to the task's.
            databricks_retry_delay: Defaults to the task's.

        Returns:
            The run id.

        Raises:
            ValueError: Without a valid ``databricks_conn_secret``, or without a job id.
            DatabricksRunFail: When the run ends in a state other than SUCCESS.
        """
        body = dict(json or {})
        if job_id is not None:
            body["job_id"] = job_id
        if "job_id" not in body:
            raise ValueError("DatabricksRunNow needs job_id (or json={'job_id': ...})")
        if notebook_params is not None:
            body["notebook_params"] = {**(body.get("notebook_params") or {}), **notebook_params}
        for key, value in (
            ("python_params", python_params),
            ("spark_submit_params", spark_submit_params),
            ("jar_params", jar_params),
        ):
            if value is not None:
                body[key] = value
        body = deep_string_coerce(body)
        return await _run(
            self,
            databricks_conn_secret,
            "api/2.1/jobs/run-now",
            body,
            polling_period_seconds,
            databricks_retry_limit,
            databricks_retry_delay,
        )


class DatabricksSubmitMultitaskRun(Task):
    """Submit a one-time run of several Databricks tasks (``api/2.1/jobs/runs/submit``) and wait.

    ``tasks`` are dicts in the API's shape (``JobTaskSettings`` objects of Prefect 1's models, or
    any object with ``model_dump()``/``dict()``, are turned into dicts).

    Args:
        databricks_conn_secret: The connection (see `DatabricksSubmitRun`).
        tasks: The Databricks tasks of the run (at least one).
        run_name: The run's name (default ``"Job run created by aflow flow run <flow_run_name>"``).
        timeout_seconds: The run's timeout on Databricks (default none).
        idempotency_token: The request's idempotency token (default: one per task run, the same
            for its retries).
        access_control_list: Permissions to set on the run.
        polling_period_seconds: Seconds between status polls (default 30).
        databricks_retry_limit: Attempts of a request failing with a 5xx or a transport error
            (default 3).
        databricks_retry_delay: Seconds between those attempts (default 1).
        git_source: The git source of the tasks' code.
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        databricks_conn_secret: Any = None,
        tasks: list[Any] | None = None,
        run_name: str | None = None,
        timeout_seconds: int | None = None,
        idempotency_token: str | None = None,
        access_control_list: list[Any] | None = None,
        polling_period_seconds: float = 30,
        databricks_retry_limit: int = 3,
        databricks_retry_delay: float = 1,
        git_source: Any = None,
        **kwargs: Any,
    ) -> None:
        self.databricks_conn_secret = databricks_conn_secret
        self.tasks = tasks
        self.run_name = run_name
        self.timeout_seconds = timeout_seconds
        self.idempotency_token = idempotency_token
        self.access_control_list = access_control_list
        self.polling_period_seconds = polling_period_seconds
        self.databricks_retry_limit = databricks_retry_limit
        self.databricks_retry_delay = databricks_retry_delay
        self.git_source = git_source
        super().__init__(**kwargs)

    @staticmethod
    def convert_dict_to_kwargs(input: dict[str, Any]) -> dict[str, Any]:
        """Turn a dict in the API's shape into the task's keyword arguments (plain dicts here).

        Args:
            input: A ``runs/submit`` body with ``tasks``.

        Raises:
            ValueError: Without ``tasks``.
        """
        if not input.get("tasks"):
            raise ValueError("convert_dict_to_kwargs needs 'tasks'")
        return {**input, "tasks": [dict(t) for t in input["tasks"]]}

    @defaults_from_attrs(
        _CONN, "tasks", "run_name", "timeout_seconds", "idempotency_token", "access_control_list", *_RETRY, "git_source"
    )
    async def run(
        self,
        databricks_conn_secret: Any = None,
        tasks: list[Any] | None = None,
        run_name: str | None = None,
        timeout_seconds: int | None = None,
        idempotency_token: str | None = None,
        access_control_list: list[Any] | None = None,
        polling_period_seconds: float | None = None,
        databricks_retry_limit: int | None = None,
        databricks_retry_delay: float | None = None,
        git_source: Any = None,
    ) -> int:
        """Submit the multitask run and wait for it to succeed.

        Args:
            databricks_conn_secret: Defaults to the task's.
            tasks: Defaults to the task's.
            run_name: Defaults to the task's.
            timeout_seconds: Defaults to the task's.
            idempotency_token: Defaults to the task's.
            access_control_list: Defaults to the task's.
            polling_period_seconds: Defaults to the task's.
            databricks_retry_limit: Defaults to the task's.
            databricks_retry_delay: Defaults to the task's.
            git_source: Defaults to the task's.

        Returns:
            The run id.

        Raises:
            ValueError: Without a valid ``databricks_conn_secret`` or without tasks.
            DatabricksRunFail: When the run ends in a state other than SUCCESS.
        """
        if not tasks:
            raise ValueError("DatabricksSubmitMultitaskRun needs tasks: at least one Databricks task to run")
        body: dict[str, Any] = {
            "tasks": [_as_dict(t) for t in tasks],
            "run_name": run_name or f"Job run created by aflow flow run {context.get('flow_run_name')}",
            "timeout_seconds": timeout_seconds,
            "idempotency_token": idempotency_token,
            "access_control_list": [_as_dict(e) for e in access_control_list or []] or None,
            "git_source": _as_dict(git_source) if git_source is not None else None,
        }
        body = deep_string_coerce({k: v for k, v in body.items() if v is not None})
        return await _run(
            self,
            databricks_conn_secret,
            "api/2.1/jobs/runs/submit",
            body,
            polling_period_seconds,
            databricks_retry_limit,
            databricks_retry_delay,
        )


class DatabricksGetJobID(Task):
    """Find the id of the job named ``job_name`` (``api/2.1/jobs/list``, read page by page).

    Args:
        databricks_conn_secret: The connection (see `DatabricksSubmitRun`).
        search_limit: Jobs per page (1 to 25 on Databricks; default 25).
        polling_period_seconds: Kept for Prefect 1's signature (unused: nothing is polled).
        databricks_retry_limit: Attempts of a request failing with a 5xx or a transport error
            (default 3).
        databricks_retry_delay: Seconds between those attempts (default 1).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        databricks_conn_secret: Any = None,
        search_limit: int = 25,
        polling_period_seconds: float = 30,
        databricks_retry_limit: int = 3,
        databricks_retry_delay: float = 1,
        **kwargs: Any,
    ) -> None:
        self.databricks_conn_secret = databricks_conn_secret
        self.search_limit = search_limit
        self.polling_period_seconds = polling_period_seconds
        self.databricks_retry_limit = databricks_retry_limit
        self.databricks_retry_delay = databricks_retry_delay
        super().__init__(**kwargs)

    @defaults_from_attrs(_CONN, "search_limit", *_RETRY)
    async def run(
        self,
        job_name: str | None = None,
        databricks_conn_secret: Any = None,
        search_limit: int | None = None,
        polling_period_seconds: float | None = None,
        databricks_retry_limit: int | None = None,
        databricks_retry_delay: float | None = None,
    ) -> int:
        """Return the id of the job named ``job_name``.

        Args:
            job_name: The job's name (required).
            databricks_conn_secret: Defaults to the task's.
            search_limit: Defaults to the task's.
            polling_period_seconds: Unused (Prefect 1's signature).
            databricks_retry_limit: Defaults to the task's.
            databricks_retry_delay: Defaults to the task's.

        Returns:
            The job's id.

        Raises:
            ValueError: Without a job name, when no job or several jobs have that name.
        """
        if not job_name:
            raise ValueError("DatabricksGetJobID needs job_name")
        limit = int(search_limit or 25)
        if not 0 < limit <= 25:
            raise ValueError(f"search_limit must be between 1 and 25, got {search_limit!r}")
        api = await DatabricksApi.connect(self, databricks_conn_secret, databricks_retry_limit, databricks_retry_delay)
        self.logger.info("Searching for job_ids with name: %s", job_name)
        matching: list[int] = []
        offset = 0
        page_token: str | None = None
        while True:
            query: dict[str, Any] = {"limit": limit}
            if page_token:
                query["page_token"] = page_token
            else:
                query["offset"] = offset
            page = await api.call("GET", "api/2.1/jobs/list", query)
            for job in page.get("jobs") or ():
                if (job.get("settings") or {}).get("name") == job_name:
                    matching.append(int(job["job_id"]))
            if not page.get("has_more"):
                break
            page_token = page.get("next_page_token")
            offset += limit
        if len(matching) > 1:
            raise ValueError(
                f"Job with name '{job_name}' is duplicated. Please make sure job names are unique in Databricks."
            )
        if not matching:
            raise ValueError(f"Job with name '{job_name}' not found")
        return matching[0]
