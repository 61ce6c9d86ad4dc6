"""The BigQuery tasks against the fake BigQuery REST server (`fake_bigquery`), as an emulator."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import types
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import aflow
from aflow import Flow, Secret, signals
from aflow.secrets import redact
from aflow.states import Cancelled
from aflow_tasks.gcp import (
    BigQueryLoadFile,
    BigQueryLoadGoogleCloudStorage,
    BigQueryStreamingInsert,
    BigQueryTask,
    CreateBigQueryTable,
    _auth,
)

from .fake_bigquery import FakeBigQuery

PEOPLE = [
    {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "name", "type": "STRING", "mode": "NULLABLE"},
    {"name": "score", "type": "FLOAT", "mode": "NULLABLE"},
    {"name": "active", "type": "BOOLEAN", "mode": "NULLABLE"},
]
KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC-not-a-real-key\n-----END PRIVATE KEY-----\n"
SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "dev",
    "private_key_id": "0123456789abcdef0123456789abcdef",
    "private_key": KEY,
    "client_email": "tester@dev.iam.gserviceaccount.com",
    "token_uri": "http://127.0.0.1:9/token",
}


@pytest.fixture(scope="module")
def bq_server() -> Iterator[FakeBigQuery]:
    server = FakeBigQuery()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bq(bq_server: FakeBigQuery, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBigQuery]:
    """The fake, empty, with ``BIGQUERY_EMULATOR_HOST`` pointing at it for the test."""
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bq_server.host)
    for name in ("BIGQUERY_PROJECT_ID", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    bq_server.reset()
    yield bq_server
    bq_server.reset()


def people(fake: FakeBigQuery, count: int = 10, dataset: str = "ds") -> None:
    rows = [[i, None if i % 5 == 0 else f"p{i}", i / 2, i % 2 == 0] for i in range(1, count + 1)]
    fake.add_table("dev", dataset, "people", PEOPLE, rows)


def paths(fake: FakeBigQuery, method: str, fragment: str) -> list[str]:
    return [path for verb, path, _ in fake.requests if verb == method and fragment in path]


# --- BigQueryTask --------------------------------------------------------------------------------


async def test_query_returns_typed_rows_from_every_page(bq: FakeBigQuery) -> None:
    people(bq, 10)
    rows = await BigQueryTask(query="SELECT * FROM `dev.ds.people` ORDER BY id").run()
    assert len(rows) == 10  # pages of 4: three pages read
    assert len(paths(bq, "GET", "/queries/")) == 3
    assert rows[0] == {"id": 1, "name": "p1", "score": 0.5, "active": False}
    assert rows[4] == {"id": 5, "name": None, "score": 2.5, "active": False}
    assert rows[5]["active"] is True
    assert type(rows[1]["id"]) is int
    assert type(rows[1]["score"]) is float
    # the job was RUNNING on the first poll: the task waited for it
    assert len(paths(bq, "GET", "/jobs/")) >= 2
    (job,) = bq.jobs.values()
    assert job["configuration"]["query"]["useLegacySql"] is False
    assert job["jobReference"]["location"] == "US"


async def test_query_params_are_named_parameters(bq: FakeBigQuery) -> None:
    people(bq, 10)
    task = BigQueryTask(
        query="SELECT id FROM `ds.people` WHERE id > @low AND active = @flag AND score < @top ORDER BY id",
        query_params=[("low", "INT64", 3), ("flag", "BOOL", True), ("top", "FLOAT64", 4.5)],
    )
    assert await task.run() == [{"id": 4}, {"id": 6}, {"id": 8}]
    (job,) = bq.jobs.values()
    settings = job["configuration"]["query"]
    assert settings["parameterMode"] == "NAMED"
    assert settings["queryParameters"][1] == {
        "name": "flag",
        "parameterType": {"type": "BOOL"},
        "parameterValue": {"value": "true"},
    }


async def test_call_values_win_over_init(bq: FakeBigQuery) -> None:
    people(bq, 3)
    people(bq, 2, dataset="other")
    task = BigQueryTask(query="SELECT id FROM `ds.people`", project="elsewhere", location="EU")
    rows = await task.run(query="SELECT id FROM `other.people` ORDER BY id", project="dev", location="asia-east1")
    assert rows == [{"id": 1}, {"id": 2}]
    (job,) = bq.jobs.values()
    assert job["jobReference"]["location"] == "asia-east1"
    assert all("/projects/dev/" in path for _, path, _ in bq.requests)


async def test_dry_run_refuses_a_query_over_the_limit_before_running_it(bq: FakeBigQuery) -> None:
    people(bq, 10)
    task = BigQueryTask(query="SELECT * FROM `ds.people`", dry_run_max_bytes=100)
    with pytest.raises(
        ValueError, match=r"^Query will process 320 bytes which is above the set maximum of 100 for this task\.$"
    ):
        await task.run()
    assert bq.dry_runs == ["SELECT * FROM `ds.people`"]
    assert bq.queries == []
    assert bq.jobs == {}
    assert len(await task.run(dry_run_max_bytes=320)) == 10
    assert len(bq.dry_runs) == 2
    assert bq.queries == ["SELECT * FROM `ds.people`"]


async def test_destination_table_both_or_neither(bq: FakeBigQuery) -> None:
    people(bq, 5)
    task = BigQueryTask(query="SELECT id, name FROM `ds.people` WHERE id <= 2")
    for one in ({"dataset_dest": "ds"}, {"table_dest": "copy"}):
        kwargs: dict[str, Any] = one
        with pytest.raises(ValueError, match="Both `dataset_dest` and `table_dest` must be provided"):
            await task.run(**kwargs)
    assert bq.jobs == {}
    rows = await task.run(dataset_dest="ds", table_dest="copy")
    assert rows == [{"id": 1, "name": "p1"}, {"id": 2, "name": "p2"}]
    assert bq.rows("dev", "ds", "copy") == [(1, "p1"), (2, "p2")]
    (job,) = bq.jobs.values()
    assert job["configuration"]["query"]["destinationTable"] == {
        "projectId": "dev",
        "datasetId": "ds",
        "tableId": "copy",
    }


async def test_job_config_goes_to_the_rest_api_in_camel_case(bq: FakeBigQuery) -> None:
    people(bq, 2)
    config = {
        "use_query_cache": False,
        "maximum_bytes_billed": "1000",
        "labels": {"cost_center": "x1"},
        "priority": "BATCH",
    }
    await BigQueryTask(query="SELECT id FROM `ds.people`", job_config=config).run()
    (job,) = bq.jobs.values()
    settings = job["configuration"]["query"]
    assert settings["useQueryCache"] is False
    assert settings["maximumBytesBilled"] == "1000"
    assert settings["priority"] == "BATCH"
    assert job["configuration"]["labels"] == {"cost_center": "x1"}


async def test_a_missing_query_or_table_is_named(bq: FakeBigQuery) -> None:
    with pytest.raises(ValueError, match=r"^No query provided\.$"):
        await BigQueryTask().run()
    people(bq, 1)
    with Flow("missing") as flow:
        missing = BigQueryTask(query="SELECT * FROM `ds.nope`")()
        bad = BigQueryTask(query="SELECT missing_col FROM `ds.people`")()
        no_dataset = BigQueryTask(query="SELECT * FROM `void.people`")()
    state = await flow.run()
    assert state.is_failed()
    assert "Not found: Table dev:ds.nope was not found in location US" in state.result[missing].message
    assert "no such column: missing_col" in state.result[bad].message
    assert "Not found: Dataset dev:void" in state.result[no_dataset].message


async def test_to_dataframe(bq: FakeBigQuery, monkeypatch: pytest.MonkeyPatch) -> None:
    people(bq, 3)
    task = BigQueryTask(query="SELECT id, name FROM `ds.people` ORDER BY id", to_dataframe=True)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"needs pandas: pip install aflow-engine\[gcp\] pandas"):
        await task.run()
    assert bq.jobs == {}
    made: list[tuple[Any, Any]] = []
    stub = types.ModuleType("pandas")

    def frame(rows: Any, columns: Any) -> str:
        made.append((rows, columns))
        return "frame"

    stub.DataFrame = frame  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pandas", stub)
    assert await task.run() == "frame"
    assert made == [([{"id": 1, "name": "p1"}, {"id": 2, "name": "p2"}, {"id": 3, "name": "p3"}], ["id", "name"])]
    assert await task.run(to_dataframe=False) == made[0][0]


async def wait_for_poll(fake: FakeBigQuery) -> str:
    for _ in range(500):
        polled = paths(fake, "GET", "/jobs/")
        if polled:
            return polled[0].rsplit("/", 1)[1]
        await asyncio.sleep(0.01)
    raise AssertionError("the job was never polled")


async def test_cancelling_the_task_cancels_the_running_job(bq: FakeBigQuery) -> None:
    people(bq, 2)
    running = asyncio.ensure_future(BigQueryTask(query="SELECT /* hold */ id FROM `ds.people`").run())
    job_id = await wait_for_poll(bq)
    assert bq.jobs[job_id]["status"]["state"] == "RUNNING"
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert bq.cancelled == [job_id]
    assert bq.jobs[job_id]["status"]["errorResult"]["reason"] == "stopped"


async def test_a_cancellation_while_the_job_is_created_cancels_it_once_it_exists(bq: FakeBigQuery) -> None:
    people(bq, 2)
    bq.insert_delay = 0.5
    running = asyncio.ensure_future(BigQueryTask(query="SELECT /* hold */ id FROM `ds.people`").run())
    for _ in range(500):
        if bq.jobs:
            break
        await asyncio.sleep(0.01)
    (job_id,) = bq.jobs
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert bq.cancelled == [job_id]
    assert paths(bq, "GET", "/jobs/") == []  # never polled: cancelled as soon as its id came back


async def test_cancelling_the_flow_cancels_the_running_job(bq: FakeBigQuery) -> None:
    people(bq, 2)
    with Flow("held") as flow:
        BigQueryTask(query="SELECT /* hold */ id FROM `ds.people`")()
    handle = flow.start()
    job_id = await wait_for_poll(bq)
    handle.cancel()
    state = await handle
    assert isinstance(state, Cancelled)
    assert bq.cancelled == [job_id]


async def test_429_and_5xx_retry_then_fail(bq: FakeBigQuery) -> None:
    people(bq, 2)
    bq.faults.append(("/jobs", 503))
    with Flow("retried") as flow:
        rows = BigQueryTask(query="SELECT id FROM `ds.people`", max_retries=1, retry_delay=timedelta(0))()
    state = await flow.run()
    assert state.is_successful(), state.message
    assert state.result[rows].result == [{"id": 1}, {"id": 2}]
    bq.faults.append(("/jobs", 429))
    with Flow("failed") as flow:
        rows = BigQueryTask(query="SELECT id FROM `ds.people`")()
    state = await flow.run()
    assert state.is_failed()
    assert "BigQuery query failed: 429 fake fault 429" in state.result[rows].message


async def test_tasks_of_a_flow_run_share_one_session(bq: FakeBigQuery) -> None:
    people(bq, 2)
    opened: list[Any] = []

    @asynccontextmanager
    async def counting() -> AsyncIterator[Any]:
        async with _auth.sessions.opener() as session:
            opened.append(session)
            yield session

    with Flow("shared") as flow:
        results = [BigQueryTask(query=f"SELECT id FROM `ds.people` WHERE id = {i % 2 + 1}")() for i in range(20)]
        BigQueryStreamingInsert(dataset_id="ds", table="people")(records=[{"id": 99}])
    with _auth.sessions.override(counting):
        state = await flow.run()
    assert state.is_successful(), state.message
    assert [state.result[r].result for r in results[:2]] == [[{"id": 1}], [{"id": 2}]]
    assert len(opened) == 1
    assert opened[0].closed


# --- BigQueryStreamingInsert ---------------------------------------------------------------------


async def test_streaming_insert(bq: FakeBigQuery) -> None:
    bq.add_table("dev", "ds", "people", PEOPLE, [])
    task = BigQueryStreamingInsert(dataset_id="ds", table="people", location="EU")
    records: list[dict[str, Any]] = [{"id": 1, "name": "a", "score": 1.5, "active": True}, {"id": 2, "name": None}]
    assert await task.run(records) == []
    assert bq.rows("dev", "ds", "people") == [(1, "a", 1.5, 1), (2, None, None, None)]


async def test_streaming_insert_row_errors(bq: FakeBigQuery) -> None:
    bq.add_table("dev", "ds", "people", PEOPLE, [])
    task = BigQueryStreamingInsert(dataset_id="ds", table="people")
    records: list[dict[str, Any]] = [{"id": 1}, {"id": "x"}, {"name": "no id"}]
    with pytest.raises(ValueError, match="Could not parse 'x' as INT64 for field id") as caught:
        await task.run(records)
    errors = caught.value.args[0]
    assert [e["index"] for e in errors] == [1, 2, 0]
    assert errors[1]["errors"][0]["message"] == "Missing required field: id. for field id"
    assert bq.rows("dev", "ds", "people") == []
    # **kwargs go to gcloud-aio's Table.insert: skip_invalid keeps the good rows (errors still raise)
    with pytest.raises(ValueError, match="INT64"):
        await task.run(records, skip_invalid=True)
    assert bq.rows("dev", "ds", "people") == [(1, None, None, None)]
    with pytest.raises(ValueError, match=r"no such field: color\."):
        await task.run([{"id": 3, "color": "red"}], ignore_unknown=False)
    assert await task.run([{"id": 3, "color": "red"}]) == []


async def test_streaming_insert_needs_and_names(bq: FakeBigQuery) -> None:
    with pytest.raises(ValueError, match=r"BigQueryStreamingInsert needs dataset_id"):
        await BigQueryStreamingInsert(table="t").run([{"id": 1}])
    with pytest.raises(ValueError, match=r"BigQueryStreamingInsert needs table"):
        await BigQueryStreamingInsert().run([{"id": 1}], dataset_id="ds")
    bq.add_table("dev", "ds", "people", PEOPLE, [])
    task = BigQueryStreamingInsert(dataset_id="nope", table="nope")
    with pytest.raises(signals.FAIL, match=r"into ds.absent failed: 404 Not found: Table dev:ds.absent"):
        await task.run([{"id": 1}], dataset_id="ds", table="absent")
    assert await task.run([{"id": 1}], dataset_id="ds", table="people", project="dev") == []


# --- load jobs -----------------------------------------------------------------------------------

CSV = b"id,name,score,active\n1,a,0.5,true\n2,b,1.5,false\n3,,2.5,true\n"


async def test_load_from_gcs(bq: FakeBigQuery) -> None:
    bq.gcs["gs://bucket/people.csv"] = CSV
    bq.datasets[("dev", "ds")] = {"datasetReference": {"projectId": "dev", "datasetId": "ds"}}
    task = BigQueryLoadGoogleCloudStorage(uri="gs://bucket/people.csv", dataset_id="ds", table="people", schema=PEOPLE)
    job = await task.run(skip_leading_rows=1, write_disposition="WRITE_TRUNCATE")
    assert job["status"]["state"] == "DONE"
    load = job["configuration"]["load"]
    assert load["skipLeadingRows"] == 1
    assert load["writeDisposition"] == "WRITE_TRUNCATE"
    assert load["autodetect"] is True
    assert load["sourceUris"] == ["gs://bucket/people.csv"]
    assert load["schema"] == {"fields": PEOPLE}
    assert bq.rows("dev", "ds", "people") == [(1, "a", 0.5, 1), (2, "b", 1.5, 0), (3, None, 2.5, 1)]
    rows = await BigQueryTask(query="SELECT * FROM `ds.people` ORDER BY id").run()
    assert rows[2] == {"id": 3, "name": None, "score": 2.5, "active": True}


async def test_load_from_gcs_json_autodetected_and_call_values_win(bq: FakeBigQuery) -> None:
    bq.gcs["gs://b/rows.json"] = b'{"k": 1, "v": "x"}\n{"k": 2, "v": "y"}\n'
    bq.datasets[("dev", "ds")] = {"datasetReference": {"projectId": "dev", "datasetId": "ds"}}
    task = BigQueryLoadGoogleCloudStorage(uri="gs://b/none", dataset_id="no", table="no", location="EU")
    job = await task.run(
        uri="gs://b/rows.json",
        dataset_id="ds",
        table="kv",
        location="asia-east1",
        source_format="NEWLINE_DELIMITED_JSON",
    )
    assert job["jobReference"]["location"] == "asia-east1"
    assert job["configuration"]["load"]["sourceFormat"] == "NEWLINE_DELIMITED_JSON"
    assert bq.rows("dev", "ds", "kv") == [(1, "x"), (2, "y")]


async def test_a_failed_load_job_fails_with_bigquerys_message(bq: FakeBigQuery) -> None:
    bq.gcs["gs://b/bad.csv"] = b"1,a,0.5,true\nnope,b,1,false\n"
    bq.add_table("dev", "ds", "people", PEOPLE, [])
    task = BigQueryLoadGoogleCloudStorage(dataset_id="ds", table="people")
    with Flow("bad-load") as flow:
        bad = task(uri="gs://b/bad.csv")
        absent = task(uri="gs://b/absent.csv")
    state = await flow.run()
    message = state.result[bad].message
    assert message.startswith("BigQuery load job job_")
    assert "failed: Error while reading data, error message: Could not parse 'nope' as INT64 for field id" in message
    assert "Not found: URI gs://b/absent.csv" in state.result[absent].message
    with pytest.raises(ValueError, match="BigQueryLoadGoogleCloudStorage needs uri"):
        await task.run()


async def test_load_file_from_a_path_and_a_file_object(bq: FakeBigQuery, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(CSV)
    bq.add_table("dev", "ds", "people", PEOPLE, [])
    task = BigQueryLoadFile(file=path, dataset_id="ds", table="people", location="EU")
    job = await task.run(skip_leading_rows=1)
    assert job["status"]["state"] == "DONE"
    assert job["jobReference"]["location"] == "EU"
    assert bq.uploads == [CSV]
    assert len(paths(bq, "POST", "/upload/bigquery/v2/projects/dev/jobs")) == 1
    assert len(bq.rows("dev", "ds", "people")) == 3
    # a file object, rewound, and size: only the header and the first row
    handle = io.BytesIO(CSV)
    handle.read()
    job = await task.run(
        file=handle, rewind=True, size=len(b"id,name,score,active\n1,a,0.5,true\n"), skip_leading_rows=1
    )
    assert [r[0] for r in bq.rows("dev", "ds", "people")] == [1, 2, 3, 1]
    # the schema given to the call, to a new table, from a str path
    other = tmp_path / "other.csv"
    other.write_bytes(b"7,z,1,false\n")
    await task.run(file=str(other), table="fresh", schema=PEOPLE)
    assert bq.rows("dev", "ds", "fresh") == [(7, "z", 1.0, 0)]


async def test_load_file_retries_uploads_and_reports_failures(bq: FakeBigQuery, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(CSV)
    bq.add_table("dev", "ds", "people", PEOPLE, [])
    task = BigQueryLoadFile(file=path, dataset_id="ds", table="people")
    bq.faults += [("/upload/", 503), ("/upload/", 500)]
    assert (await task.run(skip_leading_rows=1))["status"]["state"] == "DONE"
    assert len(paths(bq, "POST", "/upload/")) == 3
    bq.faults += [("/upload/", 503)]
    with pytest.raises(signals.FAIL, match="503 fake fault 503"):
        await task.run(num_retries=0, skip_leading_rows=1)
    with pytest.raises(ValueError, match="does not exist"):
        await task.run(file=tmp_path / "absent.csv")
    with pytest.raises(ValueError, match="BigQueryLoadFile needs file"):
        await BigQueryLoadFile().run(dataset_id="ds", table="t")
    (tmp_path / "bad.csv").write_bytes(b"x,y\n")
    with pytest.raises(signals.FAIL, match="Could not parse 'x' as INT64"):
        await task.run(file=tmp_path / "bad.csv")


# --- CreateBigQueryTable -------------------------------------------------------------------------


async def test_create_table_creates_the_dataset_then_succeeds_as_existing(bq: FakeBigQuery) -> None:
    task = CreateBigQueryTable(
        dataset="ds",
        table="events",
        schema=PEOPLE,
        clustering_fields=["name"],
        time_partitioning={"type": "DAY"},
    )
    await task.run()
    assert ("dev", "ds") in bq.datasets
    table = bq.tables[("dev", "ds", "events")]
    assert table["schema"] == {"fields": PEOPLE}
    assert table["clustering"] == {"fields": ["name"]}
    assert table["timePartitioning"] == {"type": "DAY"}
    with pytest.raises(signals.SUCCESS, match=r"^ds.events already exists.$"):
        await task.run()
    with Flow("exists") as flow:
        again = task()
        task(table="other", schema=[{"name": "x", "type": "STRING"}])
    state = await flow.run()
    assert state.is_successful()
    assert state.result[again].message == "ds.events already exists."
    assert bq.tables[("dev", "ds", "other")]["schema"] == {"fields": [{"name": "x", "type": "STRING"}]}
    with pytest.raises(ValueError, match="CreateBigQueryTable needs table"):
        await CreateBigQueryTable(dataset="ds").run()


# --- credentials ---------------------------------------------------------------------------------


async def test_no_auth_against_the_emulator_and_credentials_never_shown(
    bq: FakeBigQuery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    people(bq, 2)
    with Flow("creds") as flow:
        fine = BigQueryTask(query="SELECT id FROM `ds.people`")(credentials=Secret("BQ_KEY"))
        bad = BigQueryTask(query="SELECT * FROM `ds.absent`")(credentials=json.dumps(SERVICE_ACCOUNT))
    state = await flow.run(context={"secrets": {"BQ_KEY": SERVICE_ACCOUNT}})
    assert state.result[fine].result == [{"id": 1}, {"id": 2}]
    assert state.result[bad].is_failed()
    assert all("Authorization" not in headers for _, _, headers in bq.requests)
    for text in (state.result[bad].message, caplog.text):
        assert KEY not in text
        assert SERVICE_ACCOUNT["private_key_id"] not in text
    assert redact(KEY) == "****"
    assert redact(SERVICE_ACCOUNT["private_key_id"]) == "****"
    with pytest.raises(ValueError, match="service account's JSON key") as caught:
        await BigQueryTask(query="SELECT 1").run(credentials="{not json " + KEY)
    assert KEY not in str(caught.value)


async def test_the_gcp_credentials_secret_is_the_default(bq: FakeBigQuery) -> None:
    people(bq, 1)
    with aflow.context.temporary(secrets={"GCP_CREDENTIALS": {**SERVICE_ACCOUNT, "private_key_id": "id-from-context"}}):
        assert await BigQueryTask(query="SELECT id FROM `ds.people`").run() == [{"id": 1}]
    assert redact("id-from-context") == "****"
