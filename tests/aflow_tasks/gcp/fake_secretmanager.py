"""A small fake of Secret Manager's REST ``...:access`` call (aiohttp), run in a thread.

Secrets live in ``FakeSecretManager.secrets``: ``{(project, secret): [payload of version 1, ...]}``;
``fail_next`` holds HTTP statuses to answer the next requests with (throttling, 5xx), and
``requests`` records every request's path and whether it carried an Authorization header.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class FakeSecretManager:
    """The fake's state and its address once started."""

    secrets: dict[tuple[str, str], list[bytes]] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)
    requests: list[tuple[str, bool]] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    @property
    def host(self) -> str:
        """``host:port``, the value of ``SECRET_MANAGER_EMULATOR_HOST``."""
        return f"127.0.0.1:{self.port}"

    def add(self, project: str, secret: str, *payloads: bytes) -> None:
        """Add versions to a secret (creating it)."""
        self.secrets.setdefault((project, secret), []).extend(payloads)

    async def _access(self, request: web.Request) -> web.Response:
        project = request.match_info["project"]
        secret = request.match_info["secret"]
        version, _, verb = request.match_info["version"].partition(":")
        self.requests.append((request.path, "Authorization" in request.headers))
        if verb != "access":
            return _error(404, "NOT_FOUND", f"unknown method {verb!r}")
        if self.fail_next:
            status = self.fail_next.pop(0)
            answer = _error(status, "UNAVAILABLE" if status >= 500 else "RESOURCE_EXHAUSTED", "try again later")
            answer.headers["Retry-After"] = "0"
            return answer
        versions = self.secrets.get((project, secret))
        base = f"projects/{project}/secrets/{secret}"
        if not versions:
            return _error(404, "NOT_FOUND", f"Secret [{base}] not found or has no versions.")
        number = len(versions) if version == "latest" else int(version) if version.isdigit() else 0
        if not 1 <= number <= len(versions):
            return _error(404, "NOT_FOUND", f"Secret Version [{base}/versions/{version}] not found.")
        data = base64.b64encode(versions[number - 1]).decode()
        return web.json_response({"name": f"{base}/versions/{number}", "payload": {"data": data}})

    def start(self) -> None:
        """Start serving on 127.0.0.1 on a free port, in a thread of its own."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_get("/v1/projects/{project}/secrets/{secret}/versions/{version}", self._access)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            ready.set()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-secretmanager", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the fake Secret Manager did not start"

    def stop(self) -> None:
        """Stop serving and join the thread."""
        loop, runner = self._loop, self._runner
        if loop is None or runner is None:
            return
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message, "status": code}}, status=status)
