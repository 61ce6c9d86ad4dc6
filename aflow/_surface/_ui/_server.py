"""The ``aflow ui`` web server (aiohttp): the pages, their assets and the read-only JSON API.

Routes (GET and HEAD only; any other method is answered 405)::

    /                       the runs list (static/index.html)
    /runs/{id}              one run: graph, timeline, logs (static/run.html); 404 page if unknown
    /static/...             the pages' script and style sheet, shipped in the package
    /api/runs               ?flow=&state=&offset=&limit=  -> {"runs": [...], "has_more": bool, ...}
    /api/runs/{id}          ?task=&state=&offset=&limit=  -> the run, a page of its `tasks`, `graph`
    /api/runs/{id}/logs     ?task=&after=&limit=          -> {"logs": [...], "next": seq}

A run id may be any unique prefix. The server reads the store through `aflow.history.RunStore`
only; a run's task states are folded into a `RunView` once (in a worker thread) and kept while
the run is finished, so paging through a run with 100,000 task runs reads the store once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import anyio.to_thread
from aiohttp import web

from ...history import FlowRunRecord, RunStore
from ._model import RunView, iso

__all__ = ("STATIC", "build_app", "serve")

STATIC = Path(__file__).with_name("static")
_logger = logging.getLogger("aflow.ui")
_STORE: web.AppKey[RunStore] = web.AppKey("store", RunStore)
_VIEWS: web.AppKey[_Views] = web.AppKey("views", object)  # type: ignore[arg-type]
_READ_METHODS = frozenset({"GET", "HEAD"})
_CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"
# a view of a run in progress is reused for this many seconds (or twice what reading it took) before it is read again
_LIVE_REFRESH = 0.5
_KEPT_VIEWS = 8
_MAX_LIMIT = 1000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _int_arg(request: web.Request, name: str, default: int, high: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(reason=f"{name} must be an integer, not {raw!r}") from None
    if value < 0:
        raise web.HTTPBadRequest(reason=f"{name} must not be negative, not {value}")
    return min(value, high) if high is not None else value


def _str_arg(request: web.Request, name: str) -> str | None:
    return request.query.get(name) or None


def _run_json(run: FlowRunRecord, parameters: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": run.run_id,
        "flow_name": run.flow_name,
        "state": run.state,
        "message": run.message,
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
    }
    if parameters:  # a run's own page only: a list of runs stays small whatever its parameters
        body["parameters"] = run.parameters
    return body


@dataclass(slots=True)
class _Kept:
    view: RunView
    graph: dict[str, list[dict[str, Any]]] | None
    final: bool
    at: float  # when it was read (loop time)
    cost: float  # seconds reading and folding it took


class _Views:
    """The views of the runs looked at lately: kept for finished runs, refreshed for running ones."""

    def __init__(self, store: RunStore) -> None:
        self._store = store
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, run: FlowRunRecord) -> _Kept:
        lock = self._locks.setdefault(run.run_id, asyncio.Lock())
        async with lock:
            now = asyncio.get_running_loop().time()
            kept = self._kept.get(run.run_id)
            if kept is not None and (kept.final or now - kept.at < max(_LIVE_REFRESH, 2 * kept.cost)):
                self._kept.move_to_end(run.run_id)
                return kept
            # `run` was read before the history: if it had ended then, this history is complete
            # a graph is recorded just after its run starts: one not there yet is read again
            graph = kept.graph if kept is not None else None
            if graph is None:
                graph = await self._store.run_graph(run.run_id)
            history = await self._store.task_history(run.run_id)
            view = await anyio.to_thread.run_sync(RunView.build, history, graph, run.ended_at is not None)
            cost = asyncio.get_running_loop().time() - now
            kept = self._kept[run.run_id] = _Kept(view, graph, run.ended_at is not None, now, cost)
            self._kept.move_to_end(run.run_id)
            while len(self._kept) > _KEPT_VIEWS:
                old, _ = self._kept.popitem(last=False)
                self._locks.pop(old, None)
            return kept


async def _find_run(request: web.Request) -> FlowRunRecord:
    store = request.app[_STORE]
    raw = request.match_info["run_id"]
    run = await store.get_run(raw)
    if run is None:
        try:
            run = await store.get_run(await store.resolve_run_id(raw))
        except LookupError as exc:
            raise web.HTTPNotFound(reason=_one_line(exc) or f"no run {raw!r}") from None
        if run is None:
            raise web.HTTPNotFound(reason=f"no run {raw!r}")
    return run


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# -- the JSON API -------------------------------------------------------------------------------


async def api_runs(request: web.Request) -> web.Response:
    store = request.app[_STORE]
    offset = _int_arg(request, "offset", 0)
    limit = max(1, _int_arg(request, "limit", 50, _MAX_LIMIT))
    flow, state = _str_arg(request, "flow"), _str_arg(request, "state")
    runs = await store.list_runs(flow, limit + 1, state=state, offset=offset)
    return web.json_response(
        {
            "runs": [_run_json(run, parameters=False) for run in runs[:limit]],
            "offset": offset,
            "limit": limit,
            "has_more": len(runs) > limit,
            "flow": flow,
            "state": state,
        }
    )


async def api_run(request: web.Request) -> web.Response:
    run = await _find_run(request)
    offset = _int_arg(request, "offset", 0)
    limit = _int_arg(request, "limit", 200, _MAX_LIMIT)
    task, state = _str_arg(request, "task"), _str_arg(request, "state")
    kept = await request.app[_VIEWS].get(run)
    view = kept.view
    selected = view.select(task, state)
    summaries = view.summaries
    nodes = [
        {**node, **summaries[node["slug"]].to_json()} if node["slug"] in summaries else dict(node)
        for node in (kept.graph or {}).get("nodes", [])
    ]
    known = {node["slug"] for node in nodes}
    nodes.extend({**s.to_json(), "reference": False} for slug, s in summaries.items() if slug not in known)
    body = _run_json(run)
    body.update(
        tasks=[task_run.to_json() for task_run in selected[offset : offset + limit]],
        tasks_total=len(selected),
        task_runs=len(view.task_runs),
        offset=offset,
        limit=limit,
        counts=view.counts,
        graph={"nodes": nodes, "edges": (kept.graph or {}).get("edges", []), "recorded": kept.graph is not None},
    )
    return web.json_response(body)


async def api_logs(request: web.Request) -> web.Response:
    run = await _find_run(request)
    after = request.query.get("after")
    limit = max(1, _int_arg(request, "limit", 500, _MAX_LIMIT))
    records = await request.app[_STORE].task_logs(
        run.run_id,
        _str_arg(request, "task"),
        after_seq=None if after in (None, "") else _int_arg(request, "after", 0),
        limit=limit + 1,
    )
    logs = [
        {
            "seq": r.seq,
            "time": iso(r.time),
            "level": r.level,
            "task": r.task_name,
            "task_slug": r.task_slug,
            "map_index": r.map_index,
            "attempt": r.attempt,
            "message": r.message,
        }
        for r in records[:limit]
    ]
    last = logs[-1]["seq"] if logs else (None if after in (None, "") else int(after))
    return web.json_response(
        {"run_id": run.run_id, "run_state": run.state, "logs": logs, "next": last, "has_more": len(records) > limit}
    )


# -- pages ---------------------------------------------------------------------------------------


async def index_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def run_page(request: web.Request) -> web.FileResponse:
    await _find_run(request)
    return web.FileResponse(STATIC / "run.html")


def _error_page(status: int, title: str, detail: str) -> web.Response:
    body = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{status} {escape(title)} · aflow</title><link rel='stylesheet' href='/static/style.css'></head>"
        "<body><header><a class='home' href='/'>aflow</a></header>"
        f"<main class='error'><h1>{status} {escape(title)}</h1>"
        f"<p>{escape(detail)}</p><p><a href='/'>All runs</a></p></main></body></html>"
    )
    return web.Response(status=status, text=body, content_type="text/html")


def _error(request: web.Request, status: int, title: str, detail: str) -> web.Response:
    if request.path.startswith("/api/"):
        return web.json_response({"error": title, "detail": detail, "status": status}, status=status)
    return _error_page(status, title, detail)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse writes, answer errors in the form asked for (JSON or a page), never a traceback."""
    if request.method not in _READ_METHODS:
        response: web.StreamResponse = _error(
            request, 405, "Method Not Allowed", f"{request.method} is refused: this UI is read-only."
        )
        response.headers["Allow"] = "GET, HEAD"
    else:
        try:
            response = await handler(request)
        except web.HTTPNotFound as exc:
            detail = exc.reason if exc.reason != "Not Found" else f"Nothing at {request.path}."
            response = _error(request, 404, "Not Found", detail)
        except web.HTTPBadRequest as exc:
            response = _error(request, 400, "Bad Request", exc.reason)
        except web.HTTPException:
            raise
        except Exception as exc:
            _logger.exception("aflow ui: %s %s failed", request.method, request.path)
            response = _error(request, 500, "Internal Server Error", f"{type(exc).__name__}: {_one_line(exc)}")
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def build_app(store: RunStore) -> web.Application:
    """The application serving ``store`` (open already; the caller closes it)."""
    app = web.Application(middlewares=[_guard])
    app[_STORE] = store
    app[_VIEWS] = _Views(store)
    app.router.add_get("/", index_page)
    app.router.add_get("/runs/{run_id}", run_page)
    app.router.add_get("/api/runs", api_runs)
    app.router.add_get("/api/runs/{run_id}", api_run)
    app.router.add_get("/api/runs/{run_id}/logs", api_logs)
    app.router.add_static("/static/", STATIC)
    return app


async def serve(path: str, host: str, port: int, ready: Callable[[str], None]) -> None:
    """Serve the run store at ``path`` on ``host:port`` until cancelled (or SIGINT/SIGTERM).

    Args:
        path: The run store's file.
        host: The address to bind.
        port: The port (0: any free one).
        ready: Called with the server's URL once it accepts connections.
    """
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread, or not supported here
            pass
    async with RunStore(path) as store:
        runner = web.AppRunner(build_app(store), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_host, bound_port = runner.addresses[0][:2]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            ready(f"http://{shown}:{bound_port}/")
            await stop.wait()
        finally:
            await runner.cleanup()
