"""aflow's httpx transport over an ``aiohttp.ClientSession`` (the engine of the ``http-fast`` extra).

Imported by `aflow_tasks._http_aiohttp` when first used: it imports httpx and aiohttp.

The transport hands httpx's request to aiohttp as it is (its headers, its already-encoded URL,
its body) and gives back an ``httpx.Response`` whose stream reads aiohttp's response body, so
the httpx client above it still builds requests, follows redirects, keeps cookies, decodes the
body and streams (``client.stream``). aiohttp's own cookie jar, automatic headers and
decompression are off: httpx does each of those once.
"""

from __future__ import annotations

import datetime
import functools
import logging
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
from multidict import CIMultiDict
from yarl import URL

__all__ = ("AiohttpClient", "AiohttpTransport")

_HTTPX_LOG = logging.getLogger("httpx")
# AiohttpClient.send's short way (False: always httpx's own; for A/B measurements). It uses two
# of httpx's client internals (0.23 to 0.28 have them); without them, httpx's own way.
_LEAN = all(hasattr(httpx.AsyncClient, name) for name in ("_transport_for_url", "_build_redirect_request"))
_NO_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
# aiohttp adds these unless told not to; httpx has already set them, or left them out on purpose
_SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` sending through one ``aiohttp.ClientSession`` (HTTP/1.1).

    The session (and its connection pool) is made on the first request, inside the running
    loop, and closed by `aclose` (the httpx client closes its transport when it closes); a
    request after that opens a new one, as httpx's own transport does.
    aiohttp's errors become httpx's: a refused connection ``httpx.ConnectError``, a server
    hanging up ``httpx.RemoteProtocolError``, timeouts ``httpx.ConnectTimeout`` (getting a
    connection, pool wait included) or ``httpx.ReadTimeout`` (after the request's own timeouts:
    connect, read and pool; aiohttp has no write timeout), other connection errors
    ``httpx.ReadError``.

    Args:
        verify: Verify servers' certificates: True (httpx's default context), False, a CA bundle
            path or an ``ssl.SSLContext``.
        cert: A client certificate (a path, or a ``(cert, key)`` or ``(cert, key, password)``).
        trust_env: Let ``SSL_CERT_FILE``/``SSL_CERT_DIR`` choose the CA bundle (as httpx does);
            proxies from the environment are not used.
        limits: ``max_connections`` caps the pool (None: no cap); ``keepalive_expiry`` is how
            long an idle connection is kept (None: aiohttp's 15 s). Defaults to httpx's (100
            connections, 5 s).
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        limits: httpx.Limits = _NO_LIMITS,
    ) -> None:
        self._ssl_options = (verify, cert, trust_env)
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        verify, cert, trust_env = self._ssl_options
        keepalive = self._limits.keepalive_expiry
        options: dict[str, Any] = {} if keepalive is None else {"keepalive_timeout": keepalive}
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0, ssl=_ssl_context(verify, cert, trust_env), **options
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx's client keeps the cookies
            auto_decompress=False,  # httpx decodes the body
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the session; its body is read by iterating the stream."""
        response = await self._send(request)
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def read_response(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read the whole body: the response comes back read and closed."""
        response = await self._send(request)
        try:
            body = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, request) from exc
        finally:
            response.release()  # back to the pool; if the read was cut short, closed
        read = httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=httpx.ByteStream(body),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
            request=request,
        )
        read.read()  # decodes the body as httpx does (Content-Encoding) and closes the response
        return read

    async def _send(self, request: httpx.Request) -> aiohttp.ClientResponse:
        session = self._session or self._open()
        headers = CIMultiDict([(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw])
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed body: aiohttp sends it chunked itself
            data = request.stream
            headers.popall("Transfer-Encoding", None)
        extensions = request.extensions
        timeout = extensions.get("timeout") or {}
        try:
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),  # httpx has encoded it already
                headers=headers,
                data=data,
                allow_redirects=False,  # the httpx client follows them
                timeout=_client_timeout(timeout.get("connect"), timeout.get("read"), timeout.get("pool")),
                server_hostname=extensions.get("sni_hostname"),
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, request) from exc
        return response

    async def aclose(self) -> None:
        """Close the session and its connections."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class AiohttpClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` that reads cookies only from the responses that set some.

    httpx's client hands every response to the standard library's cookie jar, which builds a
    ``urllib`` request and an ``email`` message of its headers first: about a fifth of the
    client's CPU on a small request. Here a response without ``Set-Cookie`` skips that; cookies behave
    as on any ``httpx.AsyncClient`` (``client.cookies`` reads and sets them).
    """

    def __init__(self, *, cookies: Any = None, default_encoding: Any = "utf-8", **kwargs: Any) -> None:
        self._set_cookies = _Cookies(cookies)
        self._encoding = default_encoding
        super().__init__(default_encoding=default_encoding, **kwargs)

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """Send ``request`` as ``httpx.AsyncClient.send`` does.

        A request that needs nothing of httpx's sending machinery (no auth, no event hooks, its
        body read at once, aflow's aiohttp transport) goes straight to the transport, which
        reads the body in one call: about a tenth less client CPU per small request. A redirect
        is followed on httpx's own path from the second request on (``max_redirects`` counts
        from there).
        """
        transport = self._transport_for_url(request.url)
        if (
            stream
            or not _LEAN
            or not isinstance(transport, AiohttpTransport)
            or auth is not httpx.USE_CLIENT_DEFAULT
            or self.auth is not None
            or self.is_closed
            or any(self.event_hooks.values())
        ):
            return await super().send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)
        if "timeout" not in request.extensions:  # a request not made by build_request
            request.extensions["timeout"] = self.timeout.as_dict()
        start = time.perf_counter()
        response = await transport.read_response(request)
        response.elapsed = datetime.timedelta(seconds=time.perf_counter() - start)
        self.cookies.extract_cookies(response)
        response.default_encoding = self._encoding
        _HTTPX_LOG.info(
            'HTTP Request: %s %s "%s %d %s"',
            request.method,
            request.url,
            response.http_version,
            response.status_code,
            response.reason_phrase,
        )
        if not response.has_redirect_location:
            return response
        # the redirect request built as httpx builds it; the rest of the way on httpx's own path
        next_request = self._build_redirect_request(request, response)
        if follow_redirects is httpx.USE_CLIENT_DEFAULT:
            follow_redirects = self.follow_redirects
        if not follow_redirects:
            response.next_request = next_request
            return response
        final = await super().send(next_request, follow_redirects=True)
        final.history = [response, *final.history]
        return final

    @property
    def cookies(self) -> httpx.Cookies:
        """The client's cookies (``httpx.Cookies``)."""
        return self._set_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._set_cookies = _Cookies(cookies)


class _Cookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        for key, _ in response.headers.raw:
            if key.lower() in (b"set-cookie", b"set-cookie2"):
                super().extract_cookies(response)
                return


class _Body(httpx.AsyncByteStream):
    """The body of an aiohttp response, chunk by chunk as it arrives; closing releases it."""

    __slots__ = ("_request", "_response")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while chunk := await content.readany():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _httpx_error(exc, self._request) from exc

    async def aclose(self) -> None:
        # back to the pool if the body was read; else its connection is closed
        self._response.release()


def _httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception httpx's own transport raises for what aiohttp raised."""
    message = str(exc) or type(exc).__name__
    kind: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(exc, TimeoutError):  # aiohttp.SocketTimeoutError and others
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = httpx.ConnectError
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        kind = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        kind = httpx.UnsupportedProtocol
    else:
        kind = httpx.ReadError
    return kind(message, request=request)


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float | None, read: float | None, pool: float | None) -> aiohttp.ClientTimeout:
    """The aiohttp timeouts for httpx's (one object per distinct timeout, not one per request)."""
    return aiohttp.ClientTimeout(total=None, connect=pool, sock_connect=connect, sock_read=read)


def _ssl_context(verify: Any, cert: Any, trust_env: bool) -> ssl.SSLContext:
    if verify is True and cert is None and trust_env:
        return _default_ssl_context()  # loading the CA bundle takes ~20 ms: once per process
    return httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
