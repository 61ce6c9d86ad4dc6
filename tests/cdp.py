"""A headless Chromium driven over the DevTools protocol, for the browser tests of ``aflow ui``.

Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it) runs as a separate
process; `Page` talks to its first tab over a websocket (aiohttp's client: no other dependency,
no browser download). `Page.wait_for` polls a JavaScript expression until it is truthy, so the
tests wait for what a person would see instead of sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str:
    """The browser's path; a clear error when none is installed."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("the browser tests need Chromium: apt-get install chromium (.ci/run installs it)")


@contextmanager
def chromium() -> Iterator[str]:
    """Start a headless Chromium; yield the DevTools HTTP endpoint; stop it."""
    profile = tempfile.mkdtemp(prefix="aflow-cdp-")
    command = [
        find_chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--hide-scrollbars",
        "--window-size=1280,900",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {proc.returncode} before it listened")
            if time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port within 30 s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text().split()[0]}"
    finally:
        stop(proc)
        shutil.rmtree(profile, ignore_errors=True)


def stop(proc: subprocess.Popen[Any]) -> None:
    """End a child process: SIGTERM, then SIGKILL if it is still there after 10 s; reap it."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Page:
    """The browser's first tab: navigate, evaluate JavaScript, take screenshots."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._session = session
        self._ws = ws
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, endpoint: str) -> Page:
        """Connect to the first tab of the browser at ``endpoint`` (from `chromium`)."""
        session = aiohttp.ClientSession()
        try:
            async with session.get(f"{endpoint}/json/list") as response:
                targets = await response.json()
            url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            ws = await session.ws_connect(url, max_msg_size=0)
        except BaseException:
            await session.close()
            raise
        page = cls(session, ws)
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        return page

    async def close(self) -> None:
        """Disconnect (the browser keeps running)."""
        self._reader.cancel()
        with suppress(asyncio.CancelledError):
            await self._reader
        await self._ws.close()
        await self._session.close()

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            future = self._waiting.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the browser closed the DevTools connection"))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method and return its result."""
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next_id] = future
        await self._ws.send_str(json.dumps({"id": self._next_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def goto(self, url: str) -> None:
        """Load ``url`` and wait for the page's script to have drawn it (``body[data-ready]``)."""
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete' && document.body && document.body.dataset.ready")

    async def eval(self, expression: str) -> Any:
        """Evaluate ``expression`` in the page (promises awaited) and return its JSON value."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('exception', result)}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, seconds: float = 20.0) -> Any:
        """Poll ``expression`` until its JSON value is truthy (for at most ``seconds``); return it.

        A DOM node's JSON value is ``{}``: test for one with ``!!document.querySelector(...)``.
        """
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            try:
                value = await self.eval(expression)
            except RuntimeError:  # the page is navigating, or the element is not there yet
                value = None
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {seconds}s waiting for: {expression}")
            await asyncio.sleep(0.05)

    async def text(self, selector: str) -> list[str]:
        """The text of every element matching ``selector``."""
        value = await self.eval(f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent)")
        return list(value)

    async def screenshot(self, path: str | os.PathLike[str], width: int = 1280) -> None:
        """Save the page down to the end of its ``main`` element as a PNG."""
        height = await self.eval("Math.ceil(document.querySelector('main').getBoundingClientRect().bottom) + 8")
        await self.send(
            "Emulation.setDeviceMetricsOverride", width=width, height=int(height), deviceScaleFactor=1, mobile=False
        )
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        await asyncio.to_thread(Path(path).write_bytes, base64.b64decode(shot["data"]))
        await self.send("Emulation.clearDeviceMetricsOverride")
