"""A fake Airbyte OSS API (``/api/v1``) for the airbyte task tests.

Connections are set with ``connections[id] = {"status": ..., "schedule": ...}``; a sync job moves
one step along ``plans[connection_id]`` (default pending → running → running → succeeded) at
each ``jobs/get`` after the first; a plan ending in a non-final status never ends. ``failures``
answers that many requests of any kind with a 503. Cancellations and updates are recorded.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..databricks.fake_databricks import ThreadedApp

FINAL = {"succeeded", "failed", "cancelled"}


class FakeAirbyte(ThreadedApp):
    """The fake server (see the module docstring)."""

    name = "fake-airbyte"

    def __init__(self) -> None:
        super().__init__()
        self.reset()

    def reset(self) -> None:
        """Forget everything (between tests)."""
        self.healthy = True
        self.connections: dict[str, dict[str, Any]] = {}
        self.plans: dict[str, list[str]] = {}
        self.jobs: dict[int, dict[str, Any]] = {}
        self.cancelled: list[int] = []
        self.updates: list[dict[str, Any]] = []
        self.failures = 0
        self.requests.clear()

    def clear(self) -> None:
        self.call(self.reset)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v1/health/", self.health)
        app.router.add_post("/api/v1/connections/get/", self.get_connection)
        app.router.add_post("/api/v1/connections/update/", self.update)
        app.router.add_post("/api/v1/connections/sync/", self.sync)
        app.router.add_post("/api/v1/jobs/get/", self.get_job)
        app.router.add_post("/api/v1/jobs/cancel/", self.cancel)

    def _failing(self) -> web.Response | None:
        if self.failures:
            self.failures -= 1
            return web.Response(status=503, text="upstream unavailable")
        return None

    async def health(self, request: web.Request) -> web.Response:
        return self._failing() or web.json_response({"available": self.healthy})

    async def get_connection(self, request: web.Request) -> web.Response:
        body = await request.json()
        if bad := self._failing():
            return bad
        connection = self.connections.get(body["connectionId"])
        if connection is None:
            return web.json_response({"message": "not found"}, status=404)
        return web.json_response({"connectionId": body["connectionId"], "syncCatalog": {"streams": []}, **connection})

    async def update(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.updates.append(body)
        self.connections[body["connectionId"]]["schedule"] = body["schedule"]
        return web.json_response(body)

    def _job(self, job_id: int) -> dict[str, Any]:
        job = self.jobs[job_id]
        return {
            "job": {"id": job_id, "status": job["status"], "createdAt": job["created"], "updatedAt": job["updated"]}
        }

    async def sync(self, request: web.Request) -> web.Response:
        body = await request.json()
        if bad := self._failing():
            return bad
        if body["connectionId"] not in self.connections:
            return web.json_response({"message": "not found"}, status=404)
        job_id = len(self.jobs) + 1
        plan = self.plans.get(body["connectionId"], ["pending", "running", "running", "succeeded"])
        self.jobs[job_id] = {"plan": plan, "step": 0, "status": plan[0], "created": 1000, "updated": 1000, "polls": 0}
        return web.json_response(self._job(job_id))

    async def get_job(self, request: web.Request) -> web.Response:
        body = await request.json()
        if bad := self._failing():
            return bad
        job = self.jobs.get(body["id"])
        if job is None:
            return web.json_response({"message": "not found"}, status=404)
        job["polls"] += 1
        if job["polls"] > 1 and job["status"] not in FINAL and job["step"] + 1 < len(job["plan"]):
            job["step"] += 1
            job["status"] = job["plan"][job["step"]]
            job["updated"] += 1
        return web.json_response(self._job(body["id"]))

    async def cancel(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.cancelled.append(body["id"])
        self.jobs[body["id"]]["status"] = "cancelled"
        return web.json_response(self._job(body["id"]))
