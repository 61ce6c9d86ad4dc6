"""`CreateBigQueryTable`: make sure a table exists (and its dataset)."""

from __future__ import annotations

from typing import Any

from aflow import Task, defaults_from_attrs
from aflow.signals import SUCCESS

from ._common import bigquery, bq_errors, need, require_gcloud

__all__ = ("CreateBigQueryTable",)


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


class CreateBigQueryTable(Task):
    """Make sure a BigQuery table exists.

    Creates it (and its dataset when missing), or ends in Success with
    ``"{dataset}.{table} already exists."`` when it does (as Prefect 1).

    Every setting but ``clustering_fields`` and ``time_partitioning`` can also be given to the
    call, which wins.

    Args:
        project: The project. Defaults to None: the credentials' (``dev`` against an emulator).
        dataset: The dataset. Defaults to None (give it to the call).
        table: The table. Defaults to None (give it to the call).
        schema: The schema, as a list of REST field dicts (``{"name": "id", "type": "INTEGER",
            "mode": "REQUIRED"}``). Defaults to None.
        clustering_fields: Columns to cluster the table by. Defaults to None.
        time_partitioning: The REST ``TimePartitioning`` dict (``{"type": "DAY", "field":
            "created"}``). Defaults to None.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        project: str | None = None,
        dataset: str | None = None,
        table: str | None = None,
        schema: list[dict[str, Any]] | None = None,
        clustering_fields: list[str] | None = None,
        time_partitioning: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        require_gcloud()
        self.project = project
        self.dataset = dataset
        self.table = table
        self.schema = schema
        self.clustering_fields = clustering_fields
        self.time_partitioning = time_partitioning
        super().__init__(**kwargs)

    @defaults_from_attrs("project", "dataset", "table", "schema")
    async def run(
        self,
        project: str | None = None,
        credentials: Any = None,
        dataset: str | None = None,
        table: str | None = None,
        schema: list[dict[str, Any]] | None = None,
    ) -> None:
        """Create the table unless it exists.

        Args:
            project: The project.
            credentials: A service account's JSON key (a dict or its text, or a lazy value such as
                an `aflow.Secret`). Defaults to None: the ``GCP_CREDENTIALS`` secret if set, else
                Application Default Credentials.
            dataset: The dataset (required; created when missing).
            table: The table (required).
            schema: The schema (REST field dicts).

        Raises:
            SUCCESS: The table exists already (``"{dataset}.{table} already exists."``).
            ValueError: A required value is missing.
            FAIL: BigQuery refused a call (its message).
            RETRY: A 429 or 5xx answer while the task has retries left.
        """
        import aiohttp

        need(dataset, "CreateBigQueryTable", "dataset")
        need(table, "CreateBigQueryTable", "table")
        assert dataset is not None
        assert table is not None
        async with bigquery(project, credentials) as bq:
            async with bq_errors(self, f"BigQuery dataset {dataset}"):
                try:
                    await bq.dataset(dataset).get()
                except aiohttp.ClientResponseError as exc:
                    if exc.status != 404:
                        raise
                    self.logger.debug("Dataset %s not found, creating...", dataset)
                    body = {"datasetReference": {"projectId": bq.project, "datasetId": dataset}}
                    try:
                        await bq.dataset(dataset).insert(body)
                    except aiohttp.ClientResponseError as again:
                        if again.status != 409:  # created meanwhile by someone else
                            raise
            async with bq_errors(self, f"BigQuery table {dataset}.{table}"):
                try:
                    await bq.table(dataset, table).get()
                except aiohttp.ClientResponseError as exc:
                    if exc.status != 404:
                        raise
                else:
                    raise SUCCESS(f"{dataset}.{table} already exists.")
                self.logger.debug("Table %s not found, creating...", table)
                resource: dict[str, Any] = {
                    "tableReference": {"projectId": bq.project, "datasetId": dataset, "tableId": table}
                }
                if schema:
                    resource["schema"] = {"fields": list(schema)}
                if self.time_partitioning:
                    resource["timePartitioning"] = dict(self.time_partitioning)
                if self.clustering_fields:
                    resource["clustering"] = {"fields": list(self.clustering_fields)}
                try:
                    await bq.table(dataset, table).create(resource)
                except aiohttp.ClientResponseError as exc:
                    if exc.status == 409:
                        raise SUCCESS(f"{dataset}.{table} already exists.") from None
                    raise
