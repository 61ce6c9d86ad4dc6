"""The HTTP tasks' fast path: httpx's API over aiohttp's connection pool (extra ``http-fast``).

Re-exported by `aflow_tasks.http` (`aiohttp_client`, `aiohttp_transport`); httpx and aiohttp are
imported when first used (the transport itself is `aflow_tasks._aiohttp_transport`).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ("aiohttp_client", "aiohttp_transport")


def aiohttp_client(transport: httpx.AsyncBaseTransport | None = None, **options: Any) -> httpx.AsyncClient:
    """A client factory for `set_client_factory`: httpx's API over aiohttp's connection pool.

    ``set_client_factory(aiohttp_client)`` makes the HTTP tasks' shared client an
    ``httpx.AsyncClient`` (a subclass) over `aiohttp_transport` with ``follow_redirects=True``:
    tasks, ``send_request``, ``http_client`` and ``client.stream`` work as before, with a
    fraction of httpcore's CPU per request (``bench/http_client.py`` measures it). The client
    hands only responses that set cookies to its cookie jar, and sends a request that needs
    nothing of httpx's sending machinery (no auth, no event hooks, not streamed) straight to
    the transport, which reads the body in one call. A task's own ``transport`` still wins
    (the client is then ``httpx.AsyncClient(transport=transport, follow_redirects=True)``).
    The aiohttp transport speaks HTTP/1.1 only, and client options (``verify``, ``cert``,
    limits) belong to it: give them here, as in
    ``set_client_factory(functools.partial(aiohttp_client, verify=ctx))``.

    Needs the ``http-fast`` extra: ``pip install aflow-engine[http-fast]`` (aiohttp).

    Args:
        transport: The task's transport, or None for the aiohttp one.
        **options: `aiohttp_transport` options (``verify``, ``cert``, ``trust_env``, ``limits``).

    Raises:
        ImportError: If aiohttp is not installed.
    """
    import httpx

    if transport is not None:
        return httpx.AsyncClient(transport=transport, follow_redirects=True)
    made = aiohttp_transport(**options)
    client: httpx.AsyncClient = _transport_module().AiohttpClient(transport=made, follow_redirects=True)
    return client


def aiohttp_transport(**options: Any) -> httpx.AsyncBaseTransport:
    """An ``httpx.AsyncBaseTransport`` of aflow's over one ``aiohttp.ClientSession``.

    The session is opened on the first request (inside the running loop) and closed with the
    transport; httpx's request goes to aiohttp as it is and the response comes back as an
    ``httpx.Response`` whose body streams from aiohttp's. aiohttp's errors are raised as the
    httpx exceptions httpx's own transport raises (``ConnectError`` for a refused connection,
    ``RemoteProtocolError`` for a server hanging up, ``ConnectTimeout``/``ReadTimeout``), so
    failures read "could not connect" rather than "timed out". `aiohttp_client` takes the same
    options (and its client is the faster one)::

        set_client_factory(functools.partial(aiohttp_client, verify=ctx))

    Args:
        **options: ``verify`` (True, False, a CA bundle path or an ``ssl.SSLContext``),
            ``cert``, ``trust_env`` and ``limits`` (an ``httpx.Limits``: ``max_connections``,
            ``keepalive_expiry``), as httpx's own transport takes them.

    Raises:
        ImportError: If aiohttp is not installed.
    """
    made: httpx.AsyncBaseTransport = _transport_module().AiohttpTransport(**options)
    return made


def _transport_module() -> ModuleType:
    try:
        return importlib.import_module("aflow_tasks._aiohttp_transport")
    except ImportError as exc:
        raise ImportError("aiohttp_client needs aiohttp: pip install aflow-engine[http-fast]") from exc
