"""A fake Databricks Jobs API 2.1 for the databricks task tests (and the base of the other fakes).

aiohttp on 127.0.0.1 on a free port, in a thread with its own event loop (so it serves any test
loop). Runs move one step along their plan at each ``runs/get`` after the first (default PENDING → RUNNING →
RUNNING → TERMINATED/SUCCESS); a plan ending in a non-terminal state never ends. The plan of a
run is ``plans[run_name]`` (submit) or ``plans[str(job_id)]`` (run-now), else ``default_plan``.
``failures[path]`` answers that many requests to ``path`` with a 503 (``failure_status`` sets
another code). It records every request, idempotency token, cancellation, and the most runs ever
active at once.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

Step = tuple[str, str | None, str]  # life_cycle_state, result_state, state_message

PENDING: Step = ("PENDING", None, "Waiting for cluster")
RUNNING: Step = ("RUNNING", None, "In run")
SUCCESS: Step = ("TERMINATED", "SUCCESS", "")
FAILED: Step = ("TERMINATED", "FAILED", "Task notebook failed: ZeroDivisionError: division by zero")
TERMINAL = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}


class ThreadedApp:
    """An aiohttp app served from a thread: ``start()`` gives its URL, ``stop()`` ends it."""

    name = "fake"

    def __init__(self) -> None:
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization

    def routes(self, app: web.Application) -> None:
        """Add the app's routes."""
        raise NotImplementedError

    def start(self) -> str:
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                ready.set_result(loop.run_until_complete(self._start()))
            except BaseException as exc:
                ready.set_exception(exc)
                return
            loop.run_forever()

        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        self.url = ready.result(timeout=10)
        return self.url

    def stop(self) -> None:
        assert self._loop is not None
        assert self._thread is not None
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop (to read or change its state safely)."""
        assert self._loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    async def _start(self) -> str:
        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            self.requests.append((request.method, request.path, request.headers.get("Authorization")))
            response: web.StreamResponse = await handler(request)
            return response

        app = web.Application(middlewares=[record])
        self.routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"


class FakeDatabricks(ThreadedApp):
    """The fake Jobs API (see the module docstring)."""

    name = "fake-databricks"

    def __init__(self, token: str, login: str, password: str) -> None:
        super().__init__()
        self.auths = {f"Bearer {token}", "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}
        self.reset()

    def reset(self) -> None:
        """Forget every run and setting (between tests)."""
        self.default_plan: list[Step] = [PENDING, RUNNING, RUNNING, SUCCESS]
        self.plans: dict[str, list[Step]] = {}
        self.failures: dict[str, int] = {}
        self.failure_status = 503
        self.runs: dict[int, dict[str, Any]] = {}
        self.tokens: dict[str, int] = {}
        self.bodies: list[dict[str, Any]] = []
        self.attempts: list[str | None] = []  # the idempotency token of every start request, refused ones too
        self.cancelled: list[int] = []
        self.jobs: list[dict[str, Any]] = []
        self.max_active = 0
        self.answer_delay = 0.0  # seconds runs/submit waits, after starting the run, before answering
        self.requests.clear()

    def clear(self) -> None:
        self.call(self.reset)

    def active(self) -> int:
        return sum(1 for run in self.runs.values() if run["state"][0] not in TERMINAL)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/2.1/jobs/runs/submit", self.submit)
        app.router.add_post("/api/2.1/jobs/run-now", self.run_now)
        app.router.add_get("/api/2.1/jobs/runs/get", self.get)
        app.router.add_post("/api/2.1/jobs/runs/cancel", self.cancel)
        app.router.add_get("/api/2.1/jobs/list", self.list_jobs)

    def _check(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") not in self.auths:
            return web.json_response({"error_code": "UNAUTHENTICATED", "message": "Invalid access token."}, status=401)
        left = self.failures.get(request.path, 0)
        if left:
            self.failures[request.path] = left - 1
            return web.json_response(
                {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "The service is briefly unavailable"},
                status=self.failure_status,
            )
        return None

    def _start_run(self, body: dict[str, Any], plan_key: str) -> web.Response:
        self.bodies.append(body)
        token = body.get("idempotency_token")
        if token in self.tokens:
            return web.json_response({"run_id": self.tokens[token]})
        run_id = len(self.runs) + 101
        plan = list(self.plans.get(plan_key, self.default_plan))
        self.runs[run_id] = {"plan": plan, "step": 0, "state": plan[0], "body": body, "polls": 0}
        if token:
            self.tokens[token] = run_id
        self.max_active = max(self.max_active, self.active())
        return web.json_response({"run_id": run_id})

    async def submit(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.attempts.append(body.get("idempotency_token"))
        answer = self._check(request) or self._start_run(body, str(body.get("run_name")))
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return answer

    async def run_now(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.attempts.append(body.get("idempotency_token"))
        if bad := self._check(request):
            return bad
        if not any(str(j["job_id"]) == str(body.get("job_id")) for j in self.jobs):
            return web.json_response(
                {"error_code": "INVALID_PARAMETER_VALUE", "message": "Job 7 does not exist."}, status=400
            )
        return self._start_run(body, str(body.get("job_id")))

    async def get(self, request: web.Request) -> web.Response:
        if bad := self._check(request):
            return bad
        run = self.runs.get(int(request.query.get("run_id", "0")))
        if run is None:
            return web.json_response({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run not found"}, status=404)
        run["polls"] += 1
        if run["polls"] > 1 and run["state"][0] not in TERMINAL and run["step"] + 1 < len(run["plan"]):
            run["step"] += 1
            run["state"] = run["plan"][run["step"]]
        life, result, message = run["state"]
        state: dict[str, Any] = {"life_cycle_state": life, "state_message": message}
        if result:
            state["result_state"] = result
        answer: dict[str, Any] = {"run_id": int(request.query["run_id"]), "state": state}
        if run["polls"] > 1:  # the page URL appears from the second poll on
            answer["run_page_url"] = f"{self.url}/#job/1/run/{request.query['run_id']}"
        return web.json_response(answer)

    async def cancel(self, request: web.Request) -> web.Response:
        body = await request.json()
        if bad := self._check(request):
            return bad
        run_id = int(body["run_id"])
        self.cancelled.append(run_id)
        if run_id in self.runs and self.runs[run_id]["state"][0] not in TERMINAL:
            self.runs[run_id]["state"] = ("TERMINATED", "CANCELED", "Run cancelled.")
        return web.json_response({})

    async def list_jobs(self, request: web.Request) -> web.Response:
        if bad := self._check(request):
            return bad
        limit, offset = int(request.query["limit"]), int(request.query.get("offset", "0"))
        page = self.jobs[offset : offset + limit]
        return web.json_response({"jobs": page, "has_more": offset + limit < len(self.jobs)})
