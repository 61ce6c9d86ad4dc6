"""The HTTP tasks' fast path: httpx's API over aiohttp's connection pool (extra ``http-fast``).

Re-exported by `aflow_tasks.http` (`aiohttp_client`, `aiohttp_transport`); httpx, aiohttp and
httpx-aiohttp are imported when first used.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ("aiohttp_client", "aiohttp_transport")


def aiohttp_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """A client factory for `set_client_factory`: httpx's API over aiohttp's connection pool.

    ``set_client_factory(aiohttp_client)`` makes the HTTP tasks' shared client an
    ``httpx.AsyncClient(transport=httpx_aiohttp.AiohttpTransport(), follow_redirects=True)``:
    tasks, ``send_request`` and ``http_client`` work as before, with a fraction of httpcore's CPU
    per request (``bench/http_client.py`` measures it). A task's own ``transport`` still wins
    (the client is then ``httpx.AsyncClient(transport=transport, follow_redirects=True)``). The
    aiohttp transport speaks HTTP/1.1 only, and client options (``verify``, ``cert``, limits)
    belong to it: write a factory of your own with `aiohttp_transport` to set them.

    Needs the ``http-fast`` extra: ``pip install aflow-engine[http-fast]`` (httpx-aiohttp).

    Args:
        transport: The task's transport, or None for the aiohttp one.

    Raises:
        ImportError: If httpx-aiohttp is not installed.
    """
    import httpx

    return httpx.AsyncClient(transport=transport or aiohttp_transport(), follow_redirects=True)


def aiohttp_transport(**options: Any) -> httpx.AsyncBaseTransport:
    """httpx-aiohttp's ``AiohttpTransport(**options)``, its connection errors given httpx's types.

    httpx-aiohttp (0.2) reports every aiohttp connection error (a refused connection, a server
    hanging up) as ``httpx.ConnectTimeout``; this transport raises ``httpx.ConnectError``,
    ``httpx.RemoteProtocolError`` or ``httpx.ReadError`` instead, as httpx's own transport does,
    so failures read "could not connect" rather than "timed out". For a client factory of your
    own with transport options::

        set_client_factory(lambda t: httpx.AsyncClient(transport=t or aiohttp_transport(verify=ctx)))

    Args:
        **options: ``AiohttpTransport`` arguments (``verify``, ``cert``, ``limits``, ``proxy``...).

    Raises:
        ImportError: If httpx-aiohttp is not installed.
    """
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError as exc:
        raise ImportError("aiohttp_client needs httpx-aiohttp: pip install aflow-engine[http-fast]") from exc
    return _aiohttp_errors_class()(AiohttpTransport(**options))


@functools.cache
def _aiohttp_errors_class() -> Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport]:
    """A transport wrapper giving aiohttp's connection errors the httpx exceptions httpx raises.

    httpx-aiohttp (0.2) turns every ``aiohttp.ClientConnectionError`` (a refused connection, a
    server hanging up) into ``httpx.ConnectTimeout``; `HttpRequest` would then report a refused
    connection as a timeout. Timeouts stay timeouts.
    """
    import aiohttp
    import httpx

    class AiohttpErrors(httpx.AsyncBaseTransport):
        """Sends through ``inner``; remaps its connection errors (see `_aiohttp_errors_class`)."""

        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            try:
                return await self.inner.handle_async_request(request)
            except httpx.ConnectTimeout as exc:
                cause = exc.__cause__
                if not isinstance(cause, aiohttp.ClientConnectionError) or isinstance(cause, TimeoutError):
                    raise
                if isinstance(cause, aiohttp.ClientConnectorError):
                    raise httpx.ConnectError(str(cause), request=request) from cause
                if isinstance(cause, aiohttp.ServerDisconnectedError):
                    raise httpx.RemoteProtocolError(str(cause), request=request) from cause
                raise httpx.ReadError(str(cause), request=request) from cause

        async def aclose(self) -> None:
            await self.inner.aclose()

    return AiohttpErrors
