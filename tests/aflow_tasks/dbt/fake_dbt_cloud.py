"""A fake dbt Cloud API v2 (aiohttp, in a thread of its own, on 127.0.0.1 and a free port).

Each job's runs move one status per poll through a script: job 1 succeeds (1 queued, 3 running,
10 success), job 2 ends in error (20), job 3 is cancelled (30), job 4 never ends (running
forever); job 5 succeeds but its artifacts cannot be listed (500). Every request must carry the
bearer token. Triggers (with their bodies) and cancellations are recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

from aiohttp import web

SCRIPTS: dict[int, list[int]] = {1: [1, 3, 10], 2: [1, 3, 20], 3: [1, 3, 30], 4: [1, 3], 5: [1, 10]}
ARTIFACTS = ["manifest.json", "run_results.json"]


class FakeDbtCloud:
    """The fake server: ``url`` once started; ``triggers``, ``cancels`` and ``runs`` record what happened."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.url = ""
        self.triggers: list[dict[str, Any]] = []
        self.cancels: list[int] = []
        self.runs: dict[int, dict[str, Any]] = {}
        self.trigger_delay = 0.0  # seconds a trigger's answer takes
        self.triggers_received = 0
        self._polls: dict[int, int] = {}
        self._ids = itertools.count(100)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def _data(self, run_id: int) -> dict[str, Any]:
        run = self.runs[run_id]
        script = SCRIPTS[run["job_definition_id"]]
        status = 30 if run_id in self.cancels else script[min(self._polls[run_id], len(script) - 1)]
        finished = status in (10, 20, 30)
        return {
            **run,
            "status": status,
            "finished_at": "2026-01-01T00:00:00Z" if finished else None,
            "status_message": "Database Error in model broken" if status == 20 else None,
        }

    async def _trigger(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status": {"user_message": "Invalid token"}}, status=401)
        job = int(request.match_info["job"])
        if job not in SCRIPTS:
            return web.json_response({"status": {"user_message": "Job not found"}}, status=404)
        body = await request.json()
        self.triggers_received += 1
        await asyncio.sleep(self.trigger_delay)
        run_id = next(self._ids)
        self.triggers.append({"job": job, "account": int(request.match_info["account"]), "body": body})
        self.runs[run_id] = {"id": run_id, "job_definition_id": job, "trigger": {"cause": body.get("cause")}}
        self._polls[run_id] = 0
        return web.json_response({"data": {**self.runs[run_id], "status": 1, "finished_at": None}})

    async def _get(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({}, status=401)
        run_id = int(request.match_info["run"])
        data = self._data(run_id)
        self._polls[run_id] += 1
        return web.json_response({"data": data})

    async def _artifacts(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({}, status=401)
        run_id = int(request.match_info["run"])
        if self.runs[run_id]["job_definition_id"] == 5:
            return web.json_response({"status": {"user_message": "boom"}}, status=500)
        return web.json_response({"data": ARTIFACTS})

    async def _cancel(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({}, status=401)
        run_id = int(request.match_info["run"])
        self.cancels.append(run_id)
        return web.json_response({"data": self._data(run_id)})

    def start(self) -> None:
        """Serve in a thread of its own until `stop`."""
        app = web.Application()
        base = "/api/v2/accounts/{account}"
        app.router.add_post(base + "/jobs/{job}/run/", self._trigger)
        app.router.add_get(base + "/runs/{run}/", self._get)
        app.router.add_get(base + "/runs/{run}/artifacts/", self._artifacts)
        app.router.add_post(base + "/runs/{run}/cancel/", self._cancel)
        started = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-dbt-cloud", daemon=True)
        self._thread.start()
        started.wait(10)

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
