"""What the BigQuery tasks share: the client settings, credentials, errors, job waits, row types."""

from __future__ import annotations

import asyncio
import base64
import datetime
import decimal
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aflow import Task
from aflow.integration import Failure, cleanup, map_errors, retry_after_seconds, to_the_end
from aflow.signals import FAIL

from .._auth import emulator_host, resolve_credentials, session, token_for

__all__ = (
    "EMULATOR_VARIABLE",
    "BigQuery",
    "bigquery",
    "bq_errors",
    "camel_case",
    "need",
    "rows_of",
    "wait_for_job",
)

EMULATOR_VARIABLE = "BIGQUERY_EMULATOR_HOST"
"""The context secret read when a task gets no ``credentials`` (as Prefect 1)."""
SCOPES = ["https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/cloud-platform"]
POLL_FIRST = 0.2
"""Seconds before the first look at a running job (then doubling, up to `POLL_MAX`)."""
POLL_MAX = 5.0


def require_gcloud() -> None:
    """Raise a helpful ImportError when gcloud-aio-bigquery is not installed."""
    try:
        import gcloud.aio.bigquery  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the extra brings it
        raise ImportError("the BigQuery tasks need gcloud-aio-bigquery: pip install aflow-engine[gcp]") from exc


def need(value: Any, task: str, arg: str) -> None:
    """Raise a ValueError naming ``arg`` when ``value`` is None."""
    if value is None:
        raise ValueError(
            f"{task} needs {arg}: give it at initialization ({task}({arg}=...)) or to the call ({arg}=...)"
        )


def camel_case(name: str) -> str:
    """``skip_leading_rows`` → ``skipLeadingRows`` (a name in camelCase already stays as it is)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_keys(value: Any, *, keep: frozenset[str] = frozenset({"labels"})) -> Any:
    """``value`` with the keys of its dicts in camelCase (not inside ``labels``: user keys)."""
    if isinstance(value, Mapping):
        return {camel_case(str(k)): v if str(k) in keep else camel_keys(v, keep=keep) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [camel_keys(v, keep=keep) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class BigQuery:
    """A BigQuery endpoint on the flow run's session: what the tasks call gcloud-aio with."""

    session: Any
    """The flow run's aiohttp session."""
    token: Any
    """A ``gcloud.aio.auth.Token``, or None against an emulator."""
    project: str
    api_root: str
    """``https://www.googleapis.com/bigquery/v2`` or the emulator's ``http://host/bigquery/v2``."""
    emulated: bool

    def job(self, job_id: str | None = None, location: str | None = None) -> Any:
        """A ``gcloud.aio.bigquery.Job`` on this endpoint."""
        from gcloud.aio.bigquery import Job

        return Job(
            job_id, project=self.project, session=self.session, token=self.token, api_root=self.api_root,
            location=location,
        )  # fmt: skip

    def table(self, dataset: str, table: str) -> Any:
        """A ``gcloud.aio.bigquery.Table`` on this endpoint."""
        from gcloud.aio.bigquery import Table

        return Table(
            dataset, table, project=self.project, session=self.session, token=self.token, api_root=self.api_root
        )

    def dataset(self, dataset: str) -> Any:
        """A ``gcloud.aio.bigquery.Dataset`` on this endpoint."""
        from gcloud.aio.bigquery import Dataset

        return Dataset(dataset, project=self.project, session=self.session, token=self.token, api_root=self.api_root)

    async def headers(self) -> dict[str, str]:
        """The authorization header (none against an emulator)."""
        if self.token is None:
            return {}
        return {"Authorization": f"Bearer {await self.token.get()}"}

    @property
    def upload_root(self) -> str:
        """The media upload root (``.../upload/bigquery/v2``)."""
        root = self.api_root.rstrip("/")
        head, sep, tail = root.rpartition("/bigquery/")
        return f"{head}/upload/bigquery/{tail}" if sep else f"{root}/upload"


@asynccontextmanager
async def bigquery(project: str | None, credentials: Any) -> AsyncIterator[BigQuery]:
    """The BigQuery endpoint for ``project`` on the flow run's session.

    ``BIGQUERY_EMULATOR_HOST`` is honoured, with no auth; the project defaults to the
    credentials' (or the emulator's ``dev``).
    """
    require_gcloud()
    from gcloud.aio.bigquery.bigquery import init_api_root

    credentials = await resolve_credentials(credentials)
    emulated = emulator_host(EMULATOR_VARIABLE) is not None
    is_dev, api_root = init_api_root(None)
    async with session() as client:
        token = token_for(credentials, client, emulated=emulated, scopes=SCOPES)
        if project is None:
            if emulated:
                project = "dev"
            elif isinstance(credentials, Mapping) and credentials.get("project_id"):
                project = str(credentials["project_id"])
            else:
                assert token is not None
                with map_errors(Exception, lambda exc: Failure(f"no BigQuery project given, and none found: {exc}")):
                    project = await token.get_project()
                if not project:
                    raise ValueError("no BigQuery project given, and none in the credentials: give project=...")
        yield BigQuery(client, token, project, api_root, emulated or is_dev)


def _service_message(body: str) -> str:
    try:
        error = json.loads(body)["error"]
        return str(error.get("message") or error)
    except (ValueError, KeyError, TypeError):
        return body.strip()[:500] or "no message"


def bq_failure(exc: BaseException, action: str) -> Failure:
    """What an error of a BigQuery call means: transient for 429, 5xx and connection errors."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientResponseError):
        # gcloud-aio puts "<reason>: <body>" in the message
        reason, _, body = str(exc.message).partition(": ")
        message = _service_message(body) if body else reason
        retry_after = retry_after_seconds(exc.headers.get("Retry-After")) if exc.headers else None
        transient = exc.status == 429 or exc.status >= 500
        return Failure(f"{action} failed: {exc.status} {message}", transient=transient, retry_after=retry_after)
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | TimeoutError):
        return Failure(f"{action} failed: {type(exc).__name__}: {exc}", transient=True)
    return Failure(f"{action} failed: {type(exc).__name__}: {exc}")


def bq_errors(task: Task | None, action: str) -> map_errors:
    """Turn the errors of BigQuery calls in the block into `FAIL`/`RETRY` (``with`` or ``async with``)."""
    import aiohttp

    return map_errors((aiohttp.ClientError, asyncio.TimeoutError), lambda exc: bq_failure(exc, action), task=task)


def job_failure(job: Mapping[str, Any]) -> str | None:
    """The error of a finished job (BigQuery's messages), or None when it succeeded."""
    status = job.get("status") or {}
    error = status.get("errorResult")
    if not error:
        return None
    messages = [str(error.get("message") or error.get("reason") or error)]
    for other in status.get("errors") or []:
        text = str(other.get("message") or "")
        if text and text not in messages:
            messages.append(text)
    return "; ".join(messages)


async def insert_job(
    bq: BigQuery, body: dict[str, Any], location: str | None, logger: Any, *, call: Awaitable[Any] | None = None
) -> dict[str, Any]:
    """Insert a job (or await ``call``, which starts one).

    A job whose start a cancellation interrupted is cancelled once it exists.
    """

    async def cancel_started(job: dict[str, Any]) -> None:
        job_id = (job.get("jobReference") or {}).get("jobId")
        if job_id and not (job.get("configuration") or {}).get("dryRun"):
            await cancel_job(bq, job_id, location, logger)

    job: dict[str, Any] = await to_the_end(call or bq.job(location=location).insert(body), cancel_started)
    return job


async def cancel_job(bq: BigQuery, job_id: str, location: str | None, logger: logging.Logger | Any) -> None:
    """Cancel a job: shielded, bounded, never raising (`aflow.integration.cleanup`)."""

    async def call() -> None:
        await bq.job(job_id, location=location).cancel()

    await cleanup(call, f"cancel BigQuery job {job_id}", logger)


async def wait_for_job(
    bq: BigQuery, job: dict[str, Any], location: str | None, logger: Any, *, what: str = "job"
) -> dict[str, Any]:
    """Poll ``job`` until it is DONE and return it; a cancellation meanwhile cancels the job.

    Raises:
        FAIL: The job failed (BigQuery's message).
    """
    reference = job.get("jobReference") or {}
    job_id = str(reference.get("jobId"))
    location = reference.get("location") or location
    delay = POLL_FIRST
    try:
        while (job.get("status") or {}).get("state") != "DONE":
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)
            job = await bq.job(job_id, location=location).get_job()
    except BaseException:
        # a cancellation (or an error while polling) leaves no job running behind the task
        await cancel_job(bq, job_id, location, logger)
        raise
    failed = job_failure(job)
    if failed is not None:
        raise FAIL(f"BigQuery {what} {job_id} failed: {failed}")
    return job


# --- typed rows --------------------------------------------------------------------------------


def _timestamp(value: str) -> datetime.datetime:
    try:
        return datetime.datetime.fromtimestamp(float(value), tz=datetime.UTC)
    except ValueError:
        return datetime.datetime.fromisoformat(value)


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "INTEGER": int,
    "INT64": int,
    "FLOAT": float,
    "FLOAT64": float,
    "BOOLEAN": lambda v: v in (True, "true", "TRUE", "True", "1"),
    "BOOL": lambda v: v in (True, "true", "TRUE", "True", "1"),
    "NUMERIC": decimal.Decimal,
    "BIGNUMERIC": decimal.Decimal,
    "STRING": str,
    "BYTES": base64.b64decode,
    "DATE": datetime.date.fromisoformat,
    "DATETIME": datetime.datetime.fromisoformat,
    "TIME": datetime.time.fromisoformat,
    "TIMESTAMP": _timestamp,
}
_RECORD = frozenset({"RECORD", "STRUCT"})


def _value(field: Mapping[str, Any], cell: Any) -> Any:
    value = cell.get("v") if isinstance(cell, Mapping) else cell
    if value is None:
        return None
    kind = str(field.get("type", "STRING")).upper()
    if field.get("mode") == "REPEATED":
        return [_value({**field, "mode": "NULLABLE"}, item) for item in value]
    if kind in _RECORD:
        cells = value.get("f", []) if isinstance(value, Mapping) else value
        return {sub["name"]: _value(sub, c) for sub, c in zip(field.get("fields", []), cells, strict=False)}
    convert = _CONVERT.get(kind)
    return value if convert is None else convert(value)


def rows_of(schema: Mapping[str, Any] | None, rows: list[Any] | None) -> list[dict[str, Any]]:
    """The REST rows (``{"f": [{"v": ...}]}``) as dicts of typed values (NULL → None)."""
    fields = list((schema or {}).get("fields", []))
    return [
        {field["name"]: _value(field, cell) for field, cell in zip(fields, row.get("f", []), strict=False)}
        for row in rows or []
    ]
