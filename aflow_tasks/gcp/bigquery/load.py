"""Writing to BigQuery tables: streaming inserts and load jobs.

`BigQueryStreamingInsert`, and the load jobs `BigQueryLoadGoogleCloudStorage` and `BigQueryLoadFile`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import anyio

from aflow import Task, defaults_from_attrs

from ._common import (
    BigQuery,
    bigquery,
    bq_errors,
    bq_failure,
    camel_keys,
    insert_job,
    need,
    require_gcloud,
    wait_for_job,
)

__all__ = ("BigQueryLoadFile", "BigQueryLoadGoogleCloudStorage", "BigQueryStreamingInsert")

_UPLOAD_BACKOFF_MAX = 8.0


class BigQueryStreamingInsert(Task):
    """Insert records into a BigQuery table through the streaming API (``tabledata.insertAll``).

    Every setting can also be given to the call, which wins.

    Args:
        dataset_id: The table's dataset. Defaults to None (give it to the call).
        table: The table. Defaults to None (give it to the call).
        project: The project. Defaults to None: the credentials' (``dev`` against an emulator).
        location: The dataset's location. Defaults to ``"US"``.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        dataset_id: str | None = None,
        table: str | None = None,
        project: str | None = None,
        location: str = "US",
        **kwargs: Any,
    ) -> None:
        require_gcloud()
        self.dataset_id = dataset_id
        self.table = table
        self.project = project
        self.location = location
        super().__init__(**kwargs)

    @defaults_from_attrs("dataset_id", "table", "project", "location")
    async def run(
        self,
        records: list[dict[str, Any]],
        dataset_id: str | None = None,
        table: str | None = None,
        project: str | None = None,
        location: str = "US",
        credentials: Any = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """Insert ``records``.

        Args:
            records: The rows, one dict (column name to value) each.
            dataset_id: The table's dataset (required).
            table: The table (required).
            project: The project.
            location: The dataset's location (kept for Prefect 1; insertAll does not take it).
            credentials: A service account's JSON key (a dict or its text, or a lazy value such as
                an `aflow.Secret`). Defaults to None: the ``GCP_CREDENTIALS`` secret if set, else
                Application Default Credentials.
            **kwargs: More ``gcloud.aio.bigquery.Table.insert`` arguments (``skip_invalid``,
                ``ignore_unknown``, ``template_suffix``, ``insert_id_fn``...).

        Returns:
            ``[]`` when every record was inserted.

        Raises:
            ValueError: A required value is missing, or some records were refused (the row
                errors: ``[{"index": ..., "errors": [...]}, ...]``).
            FAIL: The table or dataset is missing (named), or BigQuery refused the request.
            RETRY: A 429 or 5xx answer while the task has retries left.
        """
        need(dataset_id, "BigQueryStreamingInsert", "dataset_id")
        need(table, "BigQueryStreamingInsert", "table")
        assert dataset_id is not None
        assert table is not None
        label = f"BigQuery streaming insert into {dataset_id}.{table}"
        async with bigquery(project, credentials) as bq, bq_errors(self, label):
            response = await bq.table(dataset_id, table).insert(list(records), **kwargs)
        errors = list((response or {}).get("insertErrors") or [])
        if errors:
            raise ValueError(errors)
        return []


def _load_configuration(
    dataset_id: str, table: str, project: str, schema: list[dict[str, Any]] | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    options = dict(options)
    load: dict[str, Any] = {"autodetect": options.pop("autodetect", True)}
    load.update(camel_keys(options))
    if schema:
        load["schema"] = {"fields": list(schema)}
    load["destinationTable"] = {"projectId": project, "datasetId": dataset_id, "tableId": table}
    return load


class _LoadTask(Task):
    async def _finish(self, bq: BigQuery, job: dict[str, Any], location: str) -> dict[str, Any]:
        return await wait_for_job(bq, job, location, self.logger, what="load job")


class BigQueryLoadGoogleCloudStorage(_LoadTask):
    """Load a Google Cloud Storage object into a BigQuery table with a load job, and wait for it.

    Every setting can also be given to the call, which wins.

    Args:
        uri: The object (``gs://bucket/path``, wildcards allowed). Defaults to None.
        dataset_id: The table's dataset. Defaults to None.
        table: The table. Defaults to None.
        project: The project. Defaults to None: the credentials' (``dev`` against an emulator).
        schema: The table's schema, as a list of REST field dicts (``{"name": "id", "type":
            "INTEGER", "mode": "REQUIRED"}``). Defaults to None (detected).
        location: Where the job runs. Defaults to ``"US"``.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        uri: str | None = None,
        dataset_id: str | None = None,
        table: str | None = None,
        project: str | None = None,
        schema: list[dict[str, Any]] | None = None,
        location: str = "US",
        **kwargs: Any,
    ) -> None:
        require_gcloud()
        self.uri = uri
        self.dataset_id = dataset_id
        self.table = table
        self.project = project
        self.schema = schema
        self.location = location
        super().__init__(**kwargs)

    @defaults_from_attrs("uri", "dataset_id", "table", "project", "schema", "location")
    async def run(
        self,
        uri: str | None = None,
        dataset_id: str | None = None,
        table: str | None = None,
        project: str | None = None,
        schema: list[dict[str, Any]] | None = None,
        location: str = "US",
        credentials: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Load ``uri`` into the table.

        Args:
            uri: The object (required).
            dataset_id: The table's dataset (required).
            table: The table (required).
            project: The project.
            schema: The table's schema (REST field dicts).
            location: Where the job runs.
            credentials: A service account's JSON key (a dict or its text, or a lazy value such as
                an `aflow.Secret`). Defaults to None: the ``GCP_CREDENTIALS`` secret if set, else
                Application Default Credentials.
            **kwargs: Load job options named as the Python client's ``LoadJobConfig``
                (``source_format``, ``skip_leading_rows``, ``write_disposition``, ``autodetect``,
                default True...), sent in the REST API's camelCase.

        Returns:
            The finished job (the REST ``Job`` resource, ``status.state == "DONE"``).

        Raises:
            ValueError: A required value is missing.
            FAIL: The load job failed (BigQuery's message), or BigQuery refused it.
            RETRY: A 429 or 5xx answer while the task has retries left.
        """
        need(uri, "BigQueryLoadGoogleCloudStorage", "uri")
        need(dataset_id, "BigQueryLoadGoogleCloudStorage", "dataset_id")
        need(table, "BigQueryLoadGoogleCloudStorage", "table")
        assert uri is not None
        assert dataset_id is not None
        assert table is not None
        label = f"BigQuery load of {uri} into {dataset_id}.{table}"
        async with bigquery(project, credentials) as bq, bq_errors(self, label):
            load = _load_configuration(dataset_id, table, bq.project, schema, kwargs)
            load["sourceUris"] = [uri]
            body = {"configuration": {"load": load}, "jobReference": {"projectId": bq.project, "location": location}}
            job = await insert_job(bq, body, location, self.logger)
            return await self._finish(bq, job, location)


async def _read(file: str | os.PathLike[str] | IO[bytes], rewind: bool, size: int | None) -> bytes:
    if isinstance(file, str | os.PathLike):
        path = Path(file)
        if not await anyio.Path(path).is_file():
            raise ValueError(f"File {path.as_posix()} does not exist.")
        try:
            data = await anyio.Path(path).read_bytes()
        except OSError as exc:
            raise OSError(f"Can't open and read from {path.as_posix()}.") from exc
        return data if size is None else data[:size]
    if rewind:
        file.seek(0)
    data = file.read() if size is None else file.read(size)
    return data if isinstance(data, bytes) else str(data).encode()


class BigQueryLoadFile(_LoadTask):
    """Load a local file into a BigQuery table (a multipart upload starting a load job), and wait.

    Every setting can also be given to the call, which wins.

    Args:
        file: The file: a path, or a binary file object. Defaults to None.
        rewind: Seek a file object to its start before reading it. Defaults to False.
        size: Read at most this many bytes. Defaults to None (all).
        num_retries: How many times a failed upload (a 429, a 5xx, a dropped connection) is
            tried again, with backoff. Defaults to 6.
        dataset_id: The table's dataset. Defaults to None.
        table: The table. Defaults to None.
        project: The project. Defaults to None: the credentials' (``dev`` against an emulator).
        schema: The table's schema, as a list of REST field dicts. Defaults to None (detected).
        location: Where the job runs. Defaults to ``"US"``.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        file: str | os.PathLike[str] | IO[bytes] | None = None,
        rewind: bool = False,
        size: int | None = None,
        num_retries: int = 6,
        dataset_id: str | None = None,
        table: str | None = None,
        project: str | None = None,
        schema: list[dict[str, Any]] | None = None,
        location: str = "US",
        **kwargs: Any,
    ) -> None:
        require_gcloud()
        self.file = file
        self.rewind = rewind
        self.size = size
        self.num_retries = num_retries
        self.dataset_id = dataset_id
        self.table = table
        self.project = project
        self.schema = schema
        self.location = location
        super().__init__(**kwargs)

    @defaults_from_attrs(
        "file", "rewind", "size", "num_retries", "dataset_id", "table", "project", "schema", "location"
    )
    async def run(
        self,
        file: str | os.PathLike[str] | IO[bytes] | None = None,
        rewind: bool = False,
        size: int | None = None,
        num_retries: int = 6,
        dataset_id: str | None = None,
        table: str | None = None,
        project: str | None = None,
        schema: list[dict[str, Any]] | None = None,
        location: str = "US",
        credentials: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Upload ``file`` and load it into the table.

        Args:
            file: A path or a binary file object (required).
            rewind: Seek a file object to its start first.
            size: Read at most this many bytes.
            num_retries: How many times a failed upload is tried again.
            dataset_id: The table's dataset (required).
            table: The table (required).
            project: The project.
            schema: The table's schema (REST field dicts).
            location: Where the job runs.
            credentials: A service account's JSON key (a dict or its text, or a lazy value such as
                an `aflow.Secret`). Defaults to None: the ``GCP_CREDENTIALS`` secret if set, else
                Application Default Credentials.
            **kwargs: Load job options named as the Python client's ``LoadJobConfig``
                (``source_format``, ``skip_leading_rows``, ``write_disposition``, ``autodetect``,
                default True...), sent in the REST API's camelCase.

        Returns:
            The finished job (the REST ``Job`` resource, ``status.state == "DONE"``).

        Raises:
            ValueError: A required value is missing, or the file does not exist.
            OSError: The file cannot be read.
            FAIL: The load job failed (BigQuery's message), or BigQuery refused it.
            RETRY: A 429 or 5xx answer while the task has retries left.
        """
        need(file, "BigQueryLoadFile", "file")
        need(dataset_id, "BigQueryLoadFile", "dataset_id")
        need(table, "BigQueryLoadFile", "table")
        assert file is not None
        assert dataset_id is not None
        assert table is not None
        data = await _read(file, rewind, size)
        label = f"BigQuery load of a file into {dataset_id}.{table}"
        async with bigquery(project, credentials) as bq, bq_errors(self, label):
            load = _load_configuration(dataset_id, table, bq.project, schema, kwargs)
            body = {"configuration": {"load": load}, "jobReference": {"projectId": bq.project, "location": location}}
            job = await self._upload(bq, body, data, num_retries, label)
            return await self._finish(bq, job, location)

    async def _upload(
        self, bq: BigQuery, body: dict[str, Any], data: bytes, num_retries: int, label: str
    ) -> dict[str, Any]:
        import aiohttp

        url = f"{bq.upload_root}/projects/{bq.project}/jobs"
        attempt = 0
        while True:
            with aiohttp.MultipartWriter("related") as parts:
                parts.append_json(body)
                parts.append(data, {"Content-Type": "application/octet-stream"})
            try:
                return await insert_job(bq, body, None, self.logger, call=self._post(bq, url, parts))
            except (TimeoutError, aiohttp.ClientError) as exc:
                if attempt >= num_retries or not bq_failure(exc, label).transient:
                    raise
                attempt += 1
                delay = min(0.1 * 2**attempt, _UPLOAD_BACKOFF_MAX)
                self.logger.debug("upload failed (%s); try %d of %d in %gs", exc, attempt, num_retries, delay)
                await asyncio.sleep(delay)

    @staticmethod
    async def _post(bq: BigQuery, url: str, parts: Any) -> dict[str, Any]:
        import aiohttp

        headers = await bq.headers()
        async with bq.session.post(url, data=parts, params={"uploadType": "multipart"}, headers=headers) as response:
            text = await response.text()
            if response.status >= 400:
                raise aiohttp.ClientResponseError(
                    response.request_info,
                    response.history,
                    status=response.status,
                    message=f"{response.reason}: {text}",
                    headers=response.headers,
                )
            job: dict[str, Any] = json.loads(text)
            return job
