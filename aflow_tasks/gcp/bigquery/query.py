"""`BigQueryTask`: run a standard SQL query and return its rows."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from aflow import Task, defaults_from_attrs

from ._common import bigquery, bq_errors, camel_keys, insert_job, require_gcloud, rows_of, wait_for_job

__all__ = ("BigQueryTask",)

# QueryJobConfig names that belong to the job's configuration, not to its query part
_JOB_LEVEL = {"dry_run": "dryRun", "labels": "labels", "job_timeout_ms": "jobTimeoutMs"}


def _parameter(param: Sequence[Any]) -> dict[str, Any]:
    if len(param) != 3:
        raise ValueError(f"query_params holds 3-tuples (name, type, value), got {tuple(param)!r}")
    name, kind, value = param
    if value is None:
        text = None
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    return {
        "name": name,
        "parameterType": {"type": str(kind).upper()},
        "parameterValue": {} if text is None else {"value": text},
    }


def _dataset_reference(value: Any, project: str) -> Any:
    if isinstance(value, str):
        head, _, tail = value.rpartition(".")
        return {"projectId": head or project, "datasetId": tail}
    return camel_keys(value)


def _table_reference(value: Any, project: str) -> Any:
    if isinstance(value, str):
        parts = value.split(".")
        if len(parts) == 2:
            parts.insert(0, project)
        if len(parts) != 3:
            raise ValueError(f"a table reference is 'dataset.table' or 'project.dataset.table', got {value!r}")
        return {"projectId": parts[0], "datasetId": parts[1], "tableId": parts[2]}
    return camel_keys(value)


def query_body(
    query: str,
    query_params: Sequence[Sequence[Any]] | None,
    job_config: Mapping[str, Any],
    project: str,
    destination: tuple[str, str] | None,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """The ``jobs.insert`` body of a query job (``job_config`` in the Python client's snake_case)."""
    configuration: dict[str, Any] = {}
    settings: dict[str, Any] = {"query": query, "useLegacySql": False}
    for key, value in job_config.items():
        if key in _JOB_LEVEL:
            configuration[_JOB_LEVEL[key]] = value if key == "labels" else camel_keys(value)
        elif key == "default_dataset":
            settings["defaultDataset"] = _dataset_reference(value, project)
        elif key in ("destination", "destination_table"):
            settings["destinationTable"] = _table_reference(value, project)
        else:
            settings[camel_keys({key: None}).popitem()[0]] = camel_keys(value)
    if query_params is not None:
        settings["parameterMode"] = "NAMED"
        settings["queryParameters"] = [_parameter(p) for p in query_params]
    if destination is not None:
        settings["destinationTable"] = {"projectId": project, "datasetId": destination[0], "tableId": destination[1]}
    if dry_run:
        configuration["dryRun"] = True
        settings["useQueryCache"] = False
    configuration["query"] = settings
    return {"configuration": configuration}


def _pandas() -> Any:
    try:
        return importlib.import_module("pandas")
    except ImportError as exc:
        raise ImportError("BigQueryTask(to_dataframe=True) needs pandas: pip install aflow-engine[gcp] pandas") from exc


def _dataframe(rows: list[dict[str, Any]], schema: Mapping[str, Any]) -> Any:
    pd = _pandas()
    columns = [field["name"] for field in schema.get("fields", [])]
    return pd.DataFrame(rows, columns=columns)


class BigQueryTask(Task):
    """Run a query on Google BigQuery (standard SQL) and return its rows.

    The query runs as a job: the task waits for it (polling ``jobs.get``) and reads every page of
    its results. A cancellation of the task while the job runs cancels the job (``jobs.cancel``).
    Every setting can also be given to the call, which wins.

    Args:
        query: The query (standard SQL). Defaults to None (give it to the call).
        query_params: Named query parameters: 3-tuples ``(name, type, value)``, such as
            ``("min", "INT64", 3)``, used in the query as ``@min``. Defaults to None.
        project: The project that runs the job. Defaults to None: the credentials' project
            (``dev`` against an emulator).
        location: Where the job runs. Defaults to ``"US"``.
        dry_run_max_bytes: The most bytes the query may process: a dry run first measures it,
            and a query over it is refused (ValueError) before it runs. Defaults to None.
        dataset_dest: A dataset to write the results to (with ``table_dest``). Defaults to None.
        table_dest: A table to write the results to (with ``dataset_dest``). Defaults to None.
        to_dataframe: Return a ``pandas.DataFrame`` (pandas must be installed). Defaults to False.
        job_config: More query job settings, named as the Python client's ``QueryJobConfig``
            (``use_query_cache``, ``maximum_bytes_billed``, ``write_disposition``, ``labels``,
            ``priority``, ``default_dataset``...), sent in the REST API's camelCase. Defaults to {}.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        query: str | None = None,
        query_params: list[tuple[Any, ...]] | None = None,
        project: str | None = None,
        location: str = "US",
        dry_run_max_bytes: int | None = None,
        dataset_dest: str | None = None,
        table_dest: str | None = None,
        to_dataframe: bool = False,
        job_config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        require_gcloud()
        self.query = query
        self.query_params = query_params
        self.project = project
        self.location = location
        self.dry_run_max_bytes = dry_run_max_bytes
        self.dataset_dest = dataset_dest
        self.table_dest = table_dest
        self.to_dataframe = to_dataframe
        self.job_config = dict(job_config or {})
        super().__init__(**kwargs)

    @defaults_from_attrs(
        "query",
        "query_params",
        "project",
        "location",
        "dry_run_max_bytes",
        "dataset_dest",
        "table_dest",
        "to_dataframe",
        "job_config",
    )
    async def run(
        self,
        query: str | None = None,
        query_params: list[tuple[Any, ...]] | None = None,
        project: str | None = None,
        location: str = "US",
        dry_run_max_bytes: int | None = None,
        credentials: Any = None,
        dataset_dest: str | None = None,
        table_dest: str | None = None,
        to_dataframe: bool = False,
        job_config: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run the query.

        Args:
            query: The query (default: the initialization's; required).
            query_params: Named parameters as ``(name, type, value)`` 3-tuples.
            project: The project that runs the job.
            location: Where the job runs.
            dry_run_max_bytes: The most bytes the query may process (checked by a dry run).
            credentials: A service account's JSON key (a dict or its text, or a lazy value such as
                an `aflow.Secret`). Defaults to None: the ``GCP_CREDENTIALS`` secret if set, else
                Application Default Credentials. Never shown in messages or logs.
            dataset_dest: A dataset to write the results to (with ``table_dest``).
            table_dest: A table to write the results to (with ``dataset_dest``).
            to_dataframe: Return a ``pandas.DataFrame`` instead of a list.
            job_config: More query job settings (``QueryJobConfig`` names, snake_case).

        Returns:
            A list with one dict per row (column name to a typed value: INTEGER as int, FLOAT as
            float, BOOLEAN as bool, NULL as None...), or a DataFrame with ``to_dataframe``.

        Raises:
            ValueError: No query, only one of ``dataset_dest``/``table_dest``, or a query over
                ``dry_run_max_bytes``.
            ImportError: ``to_dataframe`` without pandas.
            FAIL: BigQuery refused or failed the query (its message), or a table or dataset is
                missing (named).
            RETRY: A 429 or 5xx answer while the task has retries left.
        """
        if query is None:
            raise ValueError("No query provided.")
        if (dataset_dest is None) != (table_dest is None):
            raise ValueError("Both `dataset_dest` and `table_dest` must be provided if writing to a destination table.")
        if to_dataframe:
            _pandas()  # fail before running anything when pandas is missing
        destination = None if dataset_dest is None or table_dest is None else (dataset_dest, table_dest)
        config = dict(job_config or {})
        async with bigquery(project, credentials) as bq, bq_errors(self, "BigQuery query"):
            if dry_run_max_bytes is not None:
                self.logger.debug("Performing a dry run...")
                body = query_body(query, query_params, config, bq.project, destination, dry_run=True)
                body["jobReference"] = {"projectId": bq.project, "location": location}
                dry = await bq.job(location=location).insert(body)
                processed = int((dry.get("statistics") or {}).get("totalBytesProcessed") or 0)
                if processed > dry_run_max_bytes:
                    raise ValueError(
                        f"Query will process {processed} bytes which is above the set maximum of "
                        f"{dry_run_max_bytes} for this task."
                    )
            body = query_body(query, query_params, config, bq.project, destination)
            body["jobReference"] = {"projectId": bq.project, "location": location}
            job = await insert_job(bq, body, location, self.logger)
            job = await wait_for_job(bq, job, location, self.logger, what="query job")
            if (job.get("configuration") or {}).get("dryRun"):
                return []
            rows, schema = await self._results(bq, job, location)
        return _dataframe(rows, schema) if to_dataframe else rows

    async def _results(
        self, bq: Any, job: Mapping[str, Any], location: str | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        reference = job.get("jobReference") or {}
        reader = bq.job(reference.get("jobId"), location=reference.get("location") or location)
        rows: list[dict[str, Any]] = []
        params: dict[str, Any] = {}
        while True:
            page = await reader.get_query_results(params=params)
            if not page.get("jobComplete", True):  # pragma: no cover - the job is DONE already
                continue
            schema = page.get("schema") or {}
            rows.extend(rows_of(schema, page.get("rows")))
            token = page.get("pageToken")
            if not token:
                return rows, schema
            params = {"pageToken": token}
