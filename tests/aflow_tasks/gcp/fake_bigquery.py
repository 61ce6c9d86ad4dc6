"""A small fake of BigQuery's REST API (v2) for the BigQuery task tests, SQLite-backed.

It serves what the tasks call: datasets (get/insert), tables (get/insert), tabledata.insertAll
(row errors for rows that do not fit the schema), jobs.insert (query jobs, load jobs from gs://
objects the test puts in `FakeBigQuery.gcs`, and the multipart upload), jobs.query, jobs.get (a
job is RUNNING on its first poll and DONE after; a query holding the comment ``/* hold */`` stays
RUNNING until cancelled), jobs.getQueryResults (paginated: ``maxResults``, ``pageToken``; pages of
`FakeBigQuery.page_size` rows by default), jobs.cancel (recorded), and dry runs
(``totalBytesProcessed``). Queries are SQLite SQL: backticked table names (``project.dataset.table``
or ``dataset.table``) become SQLite tables and ``@name`` parameters bind as SQLite's.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import sqlite3
import threading
import uuid
from typing import Any

from aiohttp import web

_TABLE_REF = re.compile(r"`([^`]+)`")
_SQL_TYPES = {"INTEGER": "INTEGER", "INT64": "INTEGER", "FLOAT": "REAL", "FLOAT64": "REAL", "BOOLEAN": "INTEGER"}
_TYPE_NAMES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN"}


class JobError(Exception):
    """A job's failure: becomes its ``status.errorResult``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _error(status: int, message: str, reason: str = "invalid") -> web.Response:
    names = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED"}
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": names.get(status, "INTERNAL"),
        }
    }
    return web.json_response(body, status=status)


def _kind(field: dict[str, Any]) -> str:
    kind = str(field.get("type", "STRING")).upper()
    return _TYPE_NAMES.get(kind, kind)


def _convert(kind: str, value: Any) -> Any:
    """A value for a column of type ``kind``, or ValueError."""
    if value is None or value == "":
        return None
    if kind == "INTEGER":
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"Could not parse '{value}' as INT64")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"Could not parse '{value}' as INT64") from None
    if kind == "FLOAT":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"Could not parse '{value}' as DOUBLE") from None
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return int(value)
        if str(value).lower() in ("true", "false", "1", "0"):
            return int(str(value).lower() in ("true", "1"))
        raise ValueError(f"Could not parse '{value}' as BOOL")
    return str(value)


def _cell(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "BOOLEAN":
        return "true" if value else "false"
    return str(value)


def _guess(values: list[Any]) -> str:
    present = [v for v in values if v not in (None, "")]
    for kind in ("INTEGER", "FLOAT", "BOOLEAN"):
        try:
            for v in present:
                _convert(kind, v)
        except ValueError:
            continue
        if present:
            return kind
    return "STRING"


class FakeBigQuery:
    """The fake server: `start` serves it in a thread with its own event loop, on a free port."""

    def __init__(self) -> None:
        self.page_size = 4
        self.gcs: dict[str, bytes] = {}
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.host = ""
        self.reset()

    # --- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every dataset, table, job and recorded request."""
        with self._lock:
            for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
                self._db.execute(f'DROP TABLE "{name}"')
        self.datasets: dict[tuple[str, str], dict[str, Any]] = {}
        self.tables: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self._results: dict[str, tuple[list[dict[str, Any]], list[list[Any]]]] = {}
        self._polls: dict[str, int] = {}
        self._held: set[str] = set()
        self.cancelled: list[str] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.queries: list[str] = []
        self.dry_runs: list[str] = []
        self.uploads: list[bytes] = []
        self.insert_delay = 0.0
        """Seconds jobs.insert waits before answering (the job exists meanwhile)."""
        self.faults: list[tuple[str, int]] = []
        """(path fragment, status): the next request whose path holds the fragment gets the status."""
        self.gcs.clear()

    def rows(self, project: str, dataset: str, table: str) -> list[tuple[Any, ...]]:
        """The rows of a table, in insertion order."""
        with self._lock:
            return self._db.execute(f'SELECT * FROM "{project}.{dataset}.{table}" ORDER BY rowid').fetchall()

    def add_table(
        self, project: str, dataset: str, table: str, fields: list[dict[str, Any]], rows: list[list[Any]]
    ) -> None:
        """Create a dataset (if needed) and a table with rows (test setup)."""
        self.datasets.setdefault((project, dataset), {"datasetReference": {"projectId": project, "datasetId": dataset}})
        self._create_table(project, dataset, table, fields)
        self._append(
            project,
            dataset,
            table,
            [[_convert(_kind(f), v) for f, v in zip(fields, row, strict=False)] for row in rows],
        )

    def _create_table(self, project: str, dataset: str, table: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
        resource = {
            "kind": "bigquery#table",
            "id": f"{project}:{dataset}.{table}",
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table},
            "schema": {"fields": fields},
        }
        columns = ", ".join(f'"{f["name"]}" {_SQL_TYPES.get(str(f.get("type")).upper(), "TEXT")}' for f in fields)
        with self._lock:
            self._db.execute(f'DROP TABLE IF EXISTS "{project}.{dataset}.{table}"')
            self._db.execute(f'CREATE TABLE "{project}.{dataset}.{table}" ({columns})')
        self.tables[(project, dataset, table)] = resource
        return resource

    def _append(self, project: str, dataset: str, table: str, rows: list[list[Any]]) -> None:
        if not rows:
            return
        marks = ", ".join("?" for _ in rows[0])
        with self._lock:
            self._db.executemany(f'INSERT INTO "{project}.{dataset}.{table}" VALUES ({marks})', rows)

    # --- serving -------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve on 127.0.0.1 and a free port, in a thread; `host` is then ``127.0.0.1:<port>``."""
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application(middlewares=[self._record], client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{path:.*}", self._dispatch)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.host = f"127.0.0.1:{port}"
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-bigquery", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        """Stop serving."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.headers)))
        for fault in self.faults:
            if fault[0] in request.path:
                self.faults.remove(fault)
                return _error(fault[1], f"fake fault {fault[1]}", "backendError")
        response: web.StreamResponse = await handler(request)
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        method = request.method
        routes: list[tuple[str, str, Any]] = [
            ("POST", r"/upload/bigquery/v2/projects/([^/]+)/jobs", self._upload),
            ("GET", r"/bigquery/v2/projects/([^/]+)/datasets/([^/]+)", self._get_dataset),
            ("POST", r"/bigquery/v2/projects/([^/]+)/datasets", self._insert_dataset),
            ("GET", r"/bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)", self._get_table),
            ("POST", r"/bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables", self._insert_table),
            ("POST", r"/bigquery/v2/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)/insertAll", self._insert_all),
            ("POST", r"/bigquery/v2/projects/([^/]+)/jobs", self._insert_job),
            ("POST", r"/bigquery/v2/projects/([^/]+)/queries", self._query),
            ("GET", r"/bigquery/v2/projects/([^/]+)/jobs/([^/]+)", self._get_job),
            ("POST", r"/bigquery/v2/projects/([^/]+)/jobs/([^/]+)/cancel", self._cancel),
            ("GET", r"/bigquery/v2/projects/([^/]+)/queries/([^/]+)", self._results_page),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and verb == method:
                result: web.StreamResponse = await handler(request, *match.groups())
                return result
        return _error(404, f"no such route: {method} {path}")

    # --- datasets and tables -------------------------------------------------------------------

    async def _get_dataset(self, request: web.Request, project: str, dataset: str) -> web.Response:
        found = self.datasets.get((project, dataset))
        if found is None:
            return _error(404, f"Not found: Dataset {project}:{dataset}", "notFound")
        return web.json_response(found)

    async def _insert_dataset(self, request: web.Request, project: str) -> web.Response:
        body = await request.json()
        dataset = body["datasetReference"]["datasetId"]
        if (project, dataset) in self.datasets:
            return _error(409, f"Already Exists: Dataset {project}:{dataset}", "duplicate")
        resource = {"kind": "bigquery#dataset", "id": f"{project}:{dataset}", **body}
        self.datasets[(project, dataset)] = resource
        return web.json_response(resource)

    async def _get_table(self, request: web.Request, project: str, dataset: str, table: str) -> web.Response:
        found = self.tables.get((project, dataset, table))
        if found is None:
            return _error(404, f"Not found: Table {project}:{dataset}.{table}", "notFound")
        return web.json_response(found)

    async def _insert_table(self, request: web.Request, project: str, dataset: str) -> web.Response:
        body = await request.json()
        table = body["tableReference"]["tableId"]
        if (project, dataset) not in self.datasets:
            return _error(404, f"Not found: Dataset {project}:{dataset}", "notFound")
        if (project, dataset, table) in self.tables:
            return _error(409, f"Already Exists: Table {project}:{dataset}.{table}", "duplicate")
        resource = self._create_table(project, dataset, table, body.get("schema", {}).get("fields", []))
        resource.update({k: v for k, v in body.items() if k not in ("schema", "tableReference")})
        return web.json_response(resource)

    async def _insert_all(self, request: web.Request, project: str, dataset: str, table: str) -> web.Response:
        found = self.tables.get((project, dataset, table))
        if found is None:
            return _error(404, f"Not found: Table {project}:{dataset}.{table}", "notFound")
        body = await request.json()
        fields = found["schema"]["fields"]
        names = {f["name"] for f in fields}
        good: list[list[Any]] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(body.get("rows", [])):
            row = item["json"]
            problems = []
            if not body.get("ignoreUnknownValues"):
                problems += [f"no such field: {k}." for k in row if k not in names]
            values = []
            for field in fields:
                try:
                    if field.get("mode") == "REQUIRED" and row.get(field["name"]) is None:
                        raise ValueError(f"Missing required field: {field['name']}.")
                    values.append(_convert(_kind(field), row.get(field["name"])))
                except ValueError as exc:
                    problems.append(f"{exc} for field {field['name']}")
            if problems:
                errors.append(
                    {"index": index, "errors": [{"reason": "invalid", "location": "", "message": p} for p in problems]}
                )
            else:
                good.append(values)
        if errors and not body.get("skipInvalidRows"):
            failed = {e["index"] for e in errors}
            stopped = [{"index": i, "errors": [{"reason": "stopped", "location": "", "message": ""}]}
                       for i in range(len(body.get("rows", []))) if i not in failed]  # fmt: skip
            return web.json_response({"kind": "bigquery#tableDataInsertAllResponse", "insertErrors": errors + stopped})
        self._append(project, dataset, table, good)
        response: dict[str, Any] = {"kind": "bigquery#tableDataInsertAllResponse"}
        if errors:
            response["insertErrors"] = errors
        return web.json_response(response)

    # --- jobs ----------------------------------------------------------------------------------

    def _new_job(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        reference = dict(body.get("jobReference") or {})
        job_id = reference.get("jobId") or f"job_{uuid.uuid4().hex[:12]}"
        reference.update({"projectId": project, "jobId": job_id, "location": reference.get("location", "US")})
        job = {
            "kind": "bigquery#job",
            "id": f"{project}:{reference['location']}.{job_id}",
            "jobReference": reference,
            "configuration": body.get("configuration", {}),
            "status": {"state": "RUNNING"},
            "statistics": {},
        }
        self.jobs[job_id] = job
        self._polls[job_id] = 0
        return job

    def _finish(self, job: dict[str, Any], error: JobError | None = None) -> None:
        job["status"] = {"state": "DONE"}
        if error is not None:
            failure = {"reason": error.reason, "message": error.message}
            job["status"].update({"errorResult": failure, "errors": [failure]})

    async def _insert_job(self, request: web.Request, project: str) -> web.Response:
        body = await request.json()
        job = self._start(project, body, None)
        await asyncio.sleep(self.insert_delay)  # the job exists; its creator hears of it later
        return web.json_response(job)

    async def _upload(self, request: web.Request, project: str) -> web.Response:
        if request.query.get("uploadType") != "multipart":
            return _error(400, "uploadType=multipart expected")
        reader = await request.multipart()
        meta_part = await reader.next()
        assert meta_part is not None
        meta = json.loads(await meta_part.read())  # type: ignore[union-attr]
        data_part = await reader.next()
        assert data_part is not None
        data = bytes(await data_part.read())  # type: ignore[union-attr]
        self.uploads.append(data)
        return web.json_response(self._start(project, meta, data))

    def _start(self, project: str, body: dict[str, Any], data: bytes | None) -> dict[str, Any]:
        job = self._new_job(project, body)
        configuration = job["configuration"]
        job_id = job["jobReference"]["jobId"]
        try:
            if "query" in configuration:
                sql = configuration["query"]["query"]
                if configuration.get("dryRun"):
                    self.dry_runs.append(sql)
                    processed = self._bytes(project, sql)
                    job["statistics"] = {
                        "totalBytesProcessed": str(processed),
                        "query": {"totalBytesProcessed": str(processed)},
                    }
                    self._finish(job)
                    del self.jobs[job_id]  # a dry run leaves no job
                    return job
                if "/* hold */" in sql:
                    self._held.add(job_id)
                self.queries.append(sql)
                self._run_query(project, job)
            elif "load" in configuration:
                self._load(project, configuration["load"], data)
            else:
                raise JobError("invalid", "unsupported job configuration")
        except JobError as exc:
            self._results.pop(job_id, None)
            job["error"] = exc  # kept until the job's first poll
        return {k: v for k, v in job.items() if k != "error"}

    async def _get_job(self, request: web.Request, project: str, job_id: str) -> web.Response:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, f"Not found: Job {project}:{job_id}", "notFound")
        self._polls[job_id] += 1
        if job["status"]["state"] != "DONE" and self._polls[job_id] >= 2 and job_id not in self._held:
            self._finish(job, job.pop("error", None))
        return web.json_response({k: v for k, v in job.items() if k != "error"})

    async def _cancel(self, request: web.Request, project: str, job_id: str) -> web.Response:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, f"Not found: Job {project}:{job_id}", "notFound")
        self.cancelled.append(job_id)
        self._held.discard(job_id)
        if job["status"]["state"] != "DONE":
            self._finish(job, JobError("stopped", "Job execution was cancelled: User requested cancellation"))
        return web.json_response({"kind": "bigquery#jobCancelResponse", "job": job})

    async def _results_page(self, request: web.Request, project: str, job_id: str) -> web.Response:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, f"Not found: Job {project}:{job_id}", "notFound")
        if job["status"]["state"] != "DONE":
            return web.json_response({"kind": "bigquery#getQueryResultsResponse", "jobComplete": False,
                                      "jobReference": job["jobReference"]})  # fmt: skip
        if "errorResult" in job["status"]:
            return _error(400, job["status"]["errorResult"]["message"])
        return web.json_response(self._page(job, request.query.get("pageToken"), request.query.get("maxResults")))

    def _page(self, job: dict[str, Any], token: str | None, size: str | None) -> dict[str, Any]:
        fields, rows = self._results.get(job["jobReference"]["jobId"], ([], []))
        start = int(token or 0)
        end = start + int(size or self.page_size)
        kinds = [_kind(f) for f in fields]
        page = {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": job["jobReference"],
            "jobComplete": True,
            "schema": {"fields": fields},
            "totalRows": str(len(rows)),
            "rows": [{"f": [{"v": _cell(k, v)} for k, v in zip(kinds, row, strict=False)]} for row in rows[start:end]],
        }
        if end < len(rows):
            page["pageToken"] = str(end)
        return page

    async def _query(self, request: web.Request, project: str) -> web.Response:
        """jobs.query: run a query and answer with its first page."""
        body = await request.json()
        configuration = {"query": {k: v for k, v in body.items() if k not in ("dryRun", "maxResults")}}
        job = self._start(project, {"configuration": {**configuration, "dryRun": body.get("dryRun", False)}}, None)
        if body.get("dryRun"):
            return web.json_response(
                {"totalBytesProcessed": job["statistics"]["totalBytesProcessed"], "jobComplete": True}
            )
        stored = self.jobs[job["jobReference"]["jobId"]]
        if "error" in stored:
            return _error(400, stored.pop("error").message)
        self._finish(stored)
        return web.json_response(self._page(stored, None, body.get("maxResults")))

    # --- SQL -----------------------------------------------------------------------------------

    def _refs(self, project: str, sql: str) -> list[tuple[str, str, str]]:
        refs = []
        for name in _TABLE_REF.findall(sql):
            parts = name.split(".")
            if len(parts) == 2:
                parts.insert(0, project)
            if len(parts) != 3:
                raise JobError("invalidQuery", f"Syntax error: bad table name `{name}`")
            refs.append((parts[0], parts[1], parts[2]))
        return refs

    def _translate(self, project: str, sql: str) -> tuple[str, list[tuple[str, str, str]]]:
        refs = self._refs(project, sql)
        for ref in refs:
            if ref[:2] not in self.datasets:
                raise JobError("notFound", f"Not found: Dataset {ref[0]}:{ref[1]} was not found in location US")
            if ref not in self.tables:
                raise JobError("notFound", f"Not found: Table {ref[0]}:{ref[1]}.{ref[2]} was not found in location US")
        names = iter(refs)
        return _TABLE_REF.sub(lambda m: '"{}.{}.{}"'.format(*next(names)), sql), refs

    def _bytes(self, project: str, sql: str) -> int:
        total = 0
        for ref in self._translate(project, sql)[1]:
            total += 8 * len(self.tables[ref]["schema"]["fields"]) * len(self.rows(*ref))
        return total

    def _run_query(self, project: str, job: dict[str, Any]) -> None:
        settings = job["configuration"]["query"]
        if settings.get("useLegacySql", True):
            raise JobError("invalidQuery", "the fake speaks standard SQL only (useLegacySql: false)")
        sql, refs = self._translate(project, settings["query"])
        params: dict[str, Any] = {}
        for param in settings.get("queryParameters", []):
            kind = _TYPE_NAMES.get(param["parameterType"]["type"], param["parameterType"]["type"])
            params[param["name"]] = _convert(kind, param.get("parameterValue", {}).get("value"))
        known = {f["name"]: _kind(f) for ref in refs for f in self.tables[ref]["schema"]["fields"]}
        try:
            with self._lock:
                cursor = self._db.execute(sql, params)
                rows = [list(r) for r in cursor.fetchall()]
                names = [d[0] for d in cursor.description or []]
        except sqlite3.Error as exc:
            raise JobError("invalidQuery", str(exc)) from None
        fields = []
        for i, name in enumerate(names):
            kind = known.get(name) or _guess([r[i] for r in rows])
            fields.append({"name": name, "type": kind, "mode": "NULLABLE"})
        destination = settings.get("destinationTable")
        if destination:
            ref = (destination["projectId"], destination["datasetId"], destination["tableId"])
            self._write(ref, fields, rows, settings.get("writeDisposition", "WRITE_EMPTY"))
        self._results[job["jobReference"]["jobId"]] = (fields, rows)
        job["statistics"] = {"totalBytesProcessed": str(sum(8 * len(r) for r in rows))}

    def _write(
        self, ref: tuple[str, str, str], fields: list[dict[str, Any]], rows: list[list[Any]], disposition: str
    ) -> None:
        if ref[:2] not in self.datasets:
            raise JobError("notFound", f"Not found: Dataset {ref[0]}:{ref[1]}")
        exists = ref in self.tables
        if exists and disposition == "WRITE_EMPTY" and self.rows(*ref):
            raise JobError("duplicate", f"Already Exists: Table {ref[0]}:{ref[1]}.{ref[2]}")
        if not exists or disposition == "WRITE_TRUNCATE":
            self._create_table(*ref, fields if not exists else self.tables[ref]["schema"]["fields"])
        self._append(*ref, rows)

    def _load(self, project: str, load: dict[str, Any], data: bytes | None) -> None:
        destination = load["destinationTable"]
        ref = (destination.get("projectId", project), destination["datasetId"], destination["tableId"])
        if data is None:
            chunks = []
            for uri in load.get("sourceUris", []):
                if uri not in self.gcs:
                    raise JobError("notFound", f"Not found: URI {uri}")
                chunks.append(self.gcs[uri])
            data = b"".join(chunks)
        source = load.get("sourceFormat", "CSV")
        fields = load.get("schema", {}).get("fields") or (
            self.tables[ref]["schema"]["fields"] if ref in self.tables else None
        )
        text = data.decode()
        if source == "NEWLINE_DELIMITED_JSON":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
            if fields is None:
                if not load.get("autodetect"):
                    raise JobError("invalid", "No schema specified on job or table.")
                names = list(records[0]) if records else []
                fields = [{"name": n, "type": _guess([r.get(n) for r in records]), "mode": "NULLABLE"} for n in names]
            raw = [[r.get(f["name"]) for f in fields] for r in records]
        elif source == "CSV":
            lines = list(csv.reader(io.StringIO(text)))
            skip = int(load.get("skipLeadingRows", 0))
            if fields is None:
                if not load.get("autodetect"):
                    raise JobError("invalid", "No schema specified on job or table.")
                header, body = lines[0], lines[1:]
                fields = [
                    {"name": n, "type": _guess([r[i] for r in body]), "mode": "NULLABLE"} for i, n in enumerate(header)
                ]
                skip = max(skip, 1)
            raw = lines[skip:]
        else:
            raise JobError("invalid", f"the fake does not read {source}")
        rows = []
        offset = 0
        for number, row in enumerate(raw):
            values = []
            for position, (field, value) in enumerate(zip(fields, row, strict=False)):
                try:
                    values.append(_convert(_kind(field), value))
                except ValueError as exc:
                    raise JobError(
                        "invalid",
                        f"Error while reading data, error message: {exc} for field {field['name']} "
                        f"(position {position}) starting at location {offset} with message 'Unable to parse'",
                    ) from None
            offset += number
            rows.append(values)
        if ref not in self.tables and load.get("createDisposition", "CREATE_IF_NEEDED") == "CREATE_NEVER":
            raise JobError("notFound", f"Not found: Table {ref[0]}:{ref[1]}.{ref[2]}")
        self._write(ref, fields, rows, load.get("writeDisposition", "WRITE_APPEND"))
