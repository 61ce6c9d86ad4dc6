"""The connection to the Docker engine shared by the docker tasks (private).

Every task of a flow run that talks to the same ``docker_server_url`` shares one
``aiodocker.Docker`` client (through `clients`, an `aflow.integration.ClientFactory`), closed
when the run ends, on failure and cancellation too. Calls go to the Engine API by its own names
(paths, query parameters, JSON bodies), so ``extra_docker_kwargs`` are the Engine API's
parameters and ``host_config`` is the Engine API's ``HostConfig`` object.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from aflow.integration import ClientFactory, Failure, map_errors, to_the_end
from aflow.signals import FAIL

__all__ = (
    "DEFAULT_URL",
    "DockerFail",
    "api_errors",
    "clients",
    "container_output",
    "docker_client",
    "json_stream",
    "log_progress",
    "registry_auth",
    "request",
    "require_aiodocker",
)

DEFAULT_URL = "unix:///var/run/docker.sock"
"""Prefect 1's default ``docker_server_url``: the local engine's socket."""


class DockerFail(FAIL):
    """The `aflow.signals.FAIL` of a Docker task: the engine answered with an error.

    Args:
        message: The state's message (what was being done, the engine's words).
        status: The HTTP status of the answer (None for an error inside a progress stream).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def require_aiodocker() -> Any:
    """Import aiodocker, or fail naming the extra to install."""
    try:
        import aiodocker
    except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
        raise ImportError("the docker tasks need aiodocker: pip install 'aflow-engine[docker]'") from exc
    return aiodocker


@asynccontextmanager
async def _open_client(url: str) -> AsyncIterator[Any]:
    """Open an ``aiodocker.Docker`` client on ``url`` (the default opener of `clients`)."""
    aiodocker = require_aiodocker()
    docker = aiodocker.Docker(url=url)
    try:
        yield docker
    finally:
        await to_the_end(docker.close())  # not cut off by a cancellation of the caller


clients: ClientFactory[[str], Any] = ClientFactory("aflow_tasks.docker", _open_client)
"""The docker tasks' client factory: one ``aiodocker.Docker`` per ``docker_server_url`` per flow run.
Its opener takes ``(docker_server_url)``; tests inject clients with ``clients.override(opener)``
or ``clients.use(docker)`` (see `aflow.integration.ClientFactory`)."""


def docker_client(docker_server_url: str | None) -> AbstractAsyncContextManager[Any]:
    """The flow run's shared client for ``docker_server_url``, as an async context manager.

    Args:
        docker_server_url: The engine's URL (``unix://...``, ``tcp://host:port``); None for the default.
    """
    url = docker_server_url or DEFAULT_URL
    return clients.client(url, url)


def _failure(exc: Exception, action: str) -> Failure | None:
    aiodocker = require_aiodocker()
    if isinstance(exc, aiodocker.DockerError):
        status = exc.status
        if status == 900:  # aiodocker's code for "cannot connect"
            return Failure(f"Docker engine unreachable while {action}: {exc.message}", fail=DockerFail)
        text = f"Docker engine error while {action}: HTTP {status}: {exc.message}"
        return Failure(text, fail=lambda m: DockerFail(m, status=status))
    return None


def api_errors(action: str) -> map_errors:
    """Turn the engine's error answers raised in the block into `DockerFail`.

    Args:
        action: What was being done, for the message (``"starting container 'abc'"``).
    """
    return map_errors(Exception, lambda exc: _failure(exc, action))


def registry_auth(auth_config: Mapping[str, Any] | None) -> dict[str, str]:
    """The ``X-Registry-Auth`` header for ``auth_config`` (the engine wants one, even empty, to push).

    Args:
        auth_config: ``{"username", "password", "serveraddress"}`` or ``{"identitytoken"}``, or None.
    """
    raw = json.dumps(dict(auth_config or {})).encode()
    return {"X-Registry-Auth": base64.urlsafe_b64encode(raw).decode()}


async def json_stream(
    docker: Any,
    path: str,
    action: str,
    *,
    method: str = "POST",
    params: Mapping[str, Any] | None = None,
    data: Any = None,
    headers: Mapping[str, str] | None = None,
    on_item: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Read a progress stream of the engine (pull, push, build) item by item; fail on an error item.

    The engine answers 200 and reports a failure inside the stream (an item with ``error`` /
    ``errorDetail``): that item fails the task with `DockerFail` carrying its message.

    Args:
        docker: The client.
        path: The Engine API path.
        action: What is being done, for the failure message.
        method: The HTTP method.
        params: The query parameters.
        data: The request body.
        headers: Extra headers.
        on_item: Called with each item as it arrives (to log progress).

    Returns:
        The items, in order.
    """
    items: list[dict[str, Any]] = []
    with api_errors(action):
        async with (
            docker._query(
                path, method, params=dict(params or {}), data=data, headers=dict(headers or {}), timeout=None
            ) as response,
            response,  # released however the block ends (an error item, a cancellation)
        ):
            while line := await response.content.readline():
                text = line.decode("utf-8", "replace").strip()
                if not text:
                    continue
                try:
                    item = json.loads(text)
                except ValueError:
                    item = {"stream": text}
                if not isinstance(item, dict):
                    item = {"item": item}
                items.append(item)
                if "error" in item or "errorDetail" in item:
                    detail = item.get("errorDetail")
                    message = (detail.get("message") if isinstance(detail, dict) else None) or item.get("error")
                    raise DockerFail(f"Docker engine error while {action}: {message or item}")
                if on_item is not None:
                    on_item(item)
    return items


async def request(
    docker: Any, path: str, method: str = "POST", *, params: Mapping[str, Any] | None = None
) -> tuple[int, bytes]:
    """One Engine API call whose answer is read whole and released: ``(status, body)``.

    Args:
        docker: The client.
        path: The Engine API path.
        method: The HTTP method.
        params: The query parameters.
    """
    async with docker._query(path, method, params=dict(params or {}), timeout=None) as response, response:
        return int(response.status), await response.read()


async def container_output(
    docker: Any, container_id: str, params: Mapping[str, Any], on_text: Callable[[str], None]
) -> None:
    """Read ``GET /containers/{id}/logs`` (following it if ``params`` say so), passing the text on as it comes.

    The engine multiplexes stdout and stderr in frames (an 8-byte header, then the payload) unless
    the container has a TTY, when the stream is raw.

    Args:
        docker: The client.
        container_id: The container.
        params: The query parameters (``stdout``, ``stderr``, ``follow``, ``tail``...).
        on_text: Called with each piece of output, decoded.
    """
    import codecs

    info = await docker._query_json(f"containers/{container_id}/json")
    tty = bool((info.get("Config") or {}).get("Tty"))
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    path = f"containers/{container_id}/logs"
    async with docker._query(path, "GET", params=dict(params), timeout=None) as response, response:
        content = response.content
        while True:
            if tty:
                data = await content.readany()
                if not data:
                    break
            else:
                try:
                    header = await content.readexactly(8)
                    data = await content.readexactly(int.from_bytes(header[4:8], "big"))
                except asyncio.IncompleteReadError:
                    break
            text = decoder.decode(data)
            if text:
                on_text(text)
    rest = decoder.decode(b"", final=True)
    if rest:
        on_text(rest)


def log_progress(logger: logging.Logger | logging.LoggerAdapter[Any], prefix: str) -> Callable[[dict[str, Any]], None]:
    """An ``on_item`` logging each progress item's ``status`` / ``stream`` text at INFO.

    Args:
        logger: The task logger.
        prefix: Put before each line (``"pull busybox:latest"``).
    """

    def on_item(item: dict[str, Any]) -> None:
        text = item.get("stream") or item.get("status")
        if not isinstance(text, str) or not text.strip():
            return
        if item.get("progress"):
            return  # a progress bar's update: only the steps are logged
        if item.get("id") and "stream" not in item:
            text = f"{item['id']}: {text}"
        for line in text.rstrip("\n").splitlines():
            if line.strip():
                logger.info("%s: %s", prefix, line.rstrip())

    return on_item
