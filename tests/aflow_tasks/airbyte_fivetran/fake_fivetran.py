"""A fake Fivetran REST API (``/v1/connectors/{id}``) for the fivetran task tests.

``connectors[id]`` holds a connector (``setup_state``, ``succeeded_at``, ``failed_at``...); a
forced sync walks ``plans[id]`` (default scheduled → syncing → syncing → succeeded) one step per
GET after the first; "succeeded"/"failed" end it by moving ``succeeded_at``/``failed_at`` to now
(state back to "scheduled"); a plan ending in "syncing" never ends. Basic auth is checked;
``failures`` answers that many requests with a 503.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ..databricks.fake_databricks import ThreadedApp


class FakeFivetran(ThreadedApp):
    """The fake API (see the module docstring)."""

    name = "fake-fivetran"

    def __init__(self, key: str, secret: str) -> None:
        super().__init__()
        self.auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        self.reset()

    def reset(self) -> None:
        """Forget everything (between tests)."""
        self.connectors: dict[str, dict[str, Any]] = {}
        self.plans: dict[str, list[str]] = {}
        self.syncs: dict[str, dict[str, Any]] = {}
        self.patches: list[dict[str, Any]] = []
        self.forced: list[str] = []
        self.failures = 0
        self.requests.clear()

    def clear(self) -> None:
        self.call(self.reset)

    def add(self, connector_id: str, **fields: Any) -> None:
        self.connectors[connector_id] = {
            "id": connector_id,
            "service": "postgres",
            "schema": "sales",
            "setup_state": "connected",
            "sync_state": "scheduled",
            "succeeded_at": "2024-01-01T00:00:00.000Z",
            "failed_at": None,
            **fields,
        }

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/connectors/{id}", self.get)
        app.router.add_patch("/v1/connectors/{id}", self.patch)
        app.router.add_post("/v1/connectors/{id}/force", self.force)

    def _refuse(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != self.auth:
            return web.json_response({"code": "AuthFailed", "message": "Invalid API key"}, status=401)
        if self.failures:
            self.failures -= 1
            return web.json_response({"code": "Unavailable", "message": "try later"}, status=503)
        if request.match_info["id"] not in self.connectors:
            return web.json_response({"code": "NotFound_Connector", "message": "Connector not found"}, status=404)
        return None

    def _answer(self, connector_id: str) -> web.Response:
        c = self.connectors[connector_id]
        data = {
            "id": connector_id,
            "service": c["service"],
            "schema": c["schema"],
            "succeeded_at": c["succeeded_at"],
            "failed_at": c["failed_at"],
            "schedule_type": c.get("schedule_type", "auto"),
            "status": {"setup_state": c["setup_state"], "sync_state": c["sync_state"]},
        }
        return web.json_response({"code": "Success", "data": data})

    async def get(self, request: web.Request) -> web.Response:
        if bad := self._refuse(request):
            return bad
        connector_id = request.match_info["id"]
        sync = self.syncs.get(connector_id)
        if sync is not None:
            sync["polls"] += 1
            if sync["polls"] > 1 and sync["step"] + 1 < len(sync["plan"]):
                sync["step"] += 1
                state = sync["plan"][sync["step"]]
                c = self.connectors[connector_id]
                now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
                if state in ("succeeded", "failed"):
                    c[f"{state}_at"] = now
                    c["sync_state"] = "scheduled"
                    del self.syncs[connector_id]
                else:
                    c["sync_state"] = state
        return self._answer(connector_id)

    async def patch(self, request: web.Request) -> web.Response:
        body = await request.json()
        if bad := self._refuse(request):
            return bad
        self.patches.append(body)
        self.connectors[request.match_info["id"]].update(body)
        return self._answer(request.match_info["id"])

    async def force(self, request: web.Request) -> web.Response:
        if bad := self._refuse(request):
            return bad
        connector_id = request.match_info["id"]
        self.forced.append(connector_id)
        plan = self.plans.get(connector_id, ["scheduled", "syncing", "syncing", "succeeded"])
        self.syncs[connector_id] = {"plan": plan, "step": 0, "polls": 0}
        self.connectors[connector_id]["sync_state"] = plan[0]
        return web.json_response({"code": "Success", "message": "Sync has been successfully triggered"})
