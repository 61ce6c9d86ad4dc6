"""HTTP tasks on one shared ``httpx.AsyncClient`` per flow run.

`HttpRequest` sends one request and returns the parsed body. Every HTTP task of a flow run (the
SaaS families such as `aflow_tasks.slack` and `aflow_tasks.github` included) shares one client
per transport through `aflow.run_resource`, so connections are pooled for the whole run and
closed when it ends (on failure and cancellation too). Outside a flow run each call opens a client
of its own and closes it afterwards.

Failures map to signals: a 429 or 5xx answer raises `aflow.signals.RETRY` (with the
``Retry-After`` delay when the server sends one) while the task has retries left, then
`aflow.signals.FAIL`; another 4xx and transport errors (connection refused, timeouts) raise FAIL,
which the task's ``max_retries`` retries too. Secrets (auth values, lazy header values, a lazy
URL) never appear in a FAIL message or a log line.

Needs the ``http`` extra: ``pip install aflow-engine[http]``. For many small requests,
``set_client_factory(aiohttp_client)`` (extra ``http-fast``) keeps httpx's API but sends through
aiohttp's connection pool, at a fraction of the CPU per request (``bench/http_client.py``).
"""

from __future__ import annotations

import base64
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

from aflow import Secret, Task, defaults_from_attrs
from aflow.exceptions import SecretNotFound
from aflow.integration import (
    ClientFactory,
    is_lazy,
    resolve_lazy,
    retry_or_fail,
)
from aflow.secrets import register
from aflow.signals import FAIL, RETRY
from aflow_tasks._http_aiohttp import aiohttp_client, aiohttp_transport
from aflow_tasks._http_text import _excerpt, _origin, _redact_values, _retry_after, _transport_failure, redact_url

if TYPE_CHECKING:
    import httpx

    ClientMaker: TypeAlias = Callable[["httpx.AsyncBaseTransport | None"], "httpx.AsyncClient"]

__all__ = (
    "DEFAULT_TIMEOUT",
    "RESPONSE_FORMATS",
    "HttpRequest",
    "HttpStatusFail",
    "aiohttp_client",
    "aiohttp_transport",
    "clients",
    "decode_response",
    "http_client",
    "lookup_secret",
    "redact_url",
    "require_httpx",
    "resolve_value",
    "send_request",
    "set_client_factory",
)

DEFAULT_TIMEOUT = 30.0
"""Seconds a request may take (connect, read, write and pool wait each) unless told otherwise."""

RESPONSE_FORMATS = frozenset({"json", "text", "bytes", "auto"})
"""The values of ``response_format``."""

_client_factory: ClientMaker | None = None
_hidden_var: ContextVar[tuple[str, ...]] = ContextVar("aflow_tasks_http_hidden", default=())


class _ScrubHttpxLog(logging.Filter):
    """Keep our requests' secrets out of httpx's own log lines (it logs every request's full URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        hidden = _hidden_var.get()
        if hidden:
            message = record.getMessage()
            redacted = _redact_values(message, hidden)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


_httpx_log_filter = _ScrubHttpxLog()
_HTTPX_LOGGER = logging.getLogger("httpx")


class HttpStatusFail(FAIL):
    """The `FAIL` raised for an error status; ``status_code`` tells which (tasks may catch it).

    Args:
        message: The state's message.
        status_code: The response's status code.
    """

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


def require_httpx(family: str = "http") -> None:
    """Raise a helpful ImportError when httpx is not installed.

    Args:
        family: The task family named in the message (``"http"``, ``"slack"``...).
    """
    try:
        import httpx  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"{family} tasks need httpx: pip install aflow-engine[http]") from exc


def set_client_factory(factory: ClientMaker | None) -> ClientMaker | None:
    """Replace how HTTP tasks make their shared client; returns the factory it replaces.

    The factory takes the task's ``transport`` (None for httpx's default) and returns a new
    ``httpx.AsyncClient``; use it to set client-wide options (``verify``, ``proxy``, ``http2``,
    default headers) or to inject a transport in tests. Pass None to restore the default,
    ``httpx.AsyncClient(transport=transport, follow_redirects=True)``. Flow runs already under
    way keep the client they have.

    Args:
        factory: ``(transport) -> httpx.AsyncClient``, or None for the default.
    """
    global _client_factory
    previous = _client_factory
    _client_factory = factory
    return previous


def _default_factory(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(transport=transport, follow_redirects=True)


def _open_client(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    """Make a new client for ``transport`` (the default opener of `clients`)."""
    return (_client_factory or _default_factory)(transport)


clients: ClientFactory[[httpx.AsyncBaseTransport | None], httpx.AsyncClient] = ClientFactory(
    "aflow_tasks.http", _open_client
)
"""The HTTP tasks' client factory: one ``httpx.AsyncClient`` per transport per flow run (the SaaS
families share it). Its opener takes the task's ``transport``; tests inject a client with
``clients.override(lambda transport: httpx.AsyncClient(transport=httpx.MockTransport(handler)))``
or ``clients.use(client)`` (see `aflow.integration.ClientFactory`)."""


def http_client(
    transport: httpx.AsyncBaseTransport | None = None,
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """The flow run's shared ``httpx.AsyncClient`` for ``transport``, as an async context manager.

    Inside a flow run every use with the same transport (and client factory) gets the same
    client, closed when the run ends; outside one, the block gets its own client, closed on exit::

        async with http_client() as client:
            response = await client.get(url)

    A transport given here belongs to the client from then on: the client closes it with itself.

    Args:
        transport: An ``httpx.AsyncBaseTransport`` to send requests through (tests inject one).
    """
    require_httpx()
    return clients.client((_client_factory, transport), transport)


async def lookup_secret(name: str | None) -> Any:
    """Return the value of the secret ``name`` (see `aflow.Secret`), or None when it is not set.

    The secret is read from the run context (``flow.run(context={"secrets": {"NAME": value}})``),
    else from the environment variable ``AFLOW__CONTEXT__SECRETS__<NAME>``, and registered for
    redaction. A lazy value found there (anything with an async ``resolve()``) is awaited.

    Args:
        name: The secret's name (None gives None).
    """
    if not name:
        return None
    try:
        value = Secret(name).get()
    except SecretNotFound:
        return None
    return await resolve_value(value)


async def resolve_value(value: Any) -> Any:
    """Return ``value``, awaited first if it is lazy (an `aflow.Secret`, anything with ``resolve()``).

    ``defaults_from_attrs`` resolves lazy task attributes; this resolves a lazy value given to the
    call instead (``task(token=Secret("X"))``), which reaches ``run`` unresolved.

    Args:
        value: Any value.
    """
    if value is not None and is_lazy(value):
        value = await resolve_lazy(value)
        register(value)
    return value


async def _prepare_auth(auth: Any, headers: dict[str, str], secrets: list[str]) -> Any:
    """Turn ``auth`` into what httpx takes; a bearer token becomes an Authorization header."""
    import httpx

    auth = await resolve_value(auth)
    if auth is None or isinstance(auth, httpx.Auth):
        return auth
    if isinstance(auth, str):
        secrets.append(auth)
        headers["Authorization"] = f"Bearer {auth}"
        return None
    if isinstance(auth, tuple | list) and len(auth) == 2:
        user, password = [str(await resolve_value(v)) for v in auth]
        secrets += [password, base64.b64encode(f"{user}:{password}".encode()).decode()]
        return httpx.BasicAuth(user, password)
    raise TypeError(
        f"auth must be a (user, password) tuple, a bearer token string or an httpx.Auth, not {type(auth).__name__}"
    )


async def send_request(
    task: Task,
    method: str,
    url: str,
    *,
    params: Any = None,
    json: Any = None,
    data: Any = None,
    content: str | bytes | None = None,
    headers: Mapping[str, Any] | None = None,
    auth: Any = None,
    request_timeout: float | None = DEFAULT_TIMEOUT,
    raise_for_status: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
    label: str | None = None,
    secrets: Iterable[str] = (),
    family: str = "http",
) -> httpx.Response:
    """Send one request on the run's shared client and map failures to signals (for task authors).

    A 429 or 5xx raises `RETRY` (``delay`` from ``Retry-After``, capped by the task's
    ``max_retry_delay``) while ``context.task_run_count <= task.max_retries``, then `FAIL`.
    Another 4xx raises FAIL. Both only when ``raise_for_status``. Transport errors raise FAIL.
    Messages name the request by ``label`` and never contain ``secrets``, the auth values or
    lazy header values.

    Args:
        task: The task sending the request (its ``max_retries``, ``max_retry_delay``, logger).
        method: The HTTP method.
        url: The URL.
        params: Query parameters.
        json: A body to send as JSON.
        data: A form body (a dict); a str or bytes is sent as the raw body.
        content: A raw body.
        headers: Request headers; values may be lazy (awaited here).
        auth: A ``(user, password)`` tuple (items may be lazy), a bearer token string or an
            ``httpx.Auth``.
        request_timeout: Seconds for each of connect, read, write and pool wait; None waits forever.
        raise_for_status: Whether error statuses raise; if False any response is returned.
        transport: The transport of the shared client (see `http_client`).
        label: How messages name the request (default: method and the URL without query).
        secrets: More values to keep out of messages and logs.
        family: The family named by the ImportError when httpx is missing.

    Returns:
        The response, its body read.

    Raises:
        RETRY: For a retryable status while the task has retries left.
        HttpStatusFail: For an error status (a `FAIL`).
        FAIL: For a transport error.
    """
    require_httpx(family)
    method = method.upper()
    hidden = list(secrets)
    # the common case (no headers, no auth) skips the awaits: this runs once per request
    sent_headers = await _resolve_headers(headers, hidden) if headers else {}
    httpx_auth = await _prepare_auth(auth, sent_headers, hidden) if auth is not None else None
    if isinstance(data, str | bytes):
        content, data = data, None
    token = None
    if hidden:
        hidden = [s for s in hidden if s]
        register(hidden)  # aflow's loggers and failed-state messages redact them too
        token = _hidden_var.set(tuple(hidden))
    labelled = functools.partial(_label, method, url, label, hidden)
    request: dict[str, Any] = {"params": params, "json": json, "data": data, "content": content}
    if httpx_auth is not None:
        request["auth"] = httpx_auth
    try:
        response = await _send(transport, method, url, sent_headers, request_timeout, request, labelled, hidden)
    finally:
        if token is not None:
            _hidden_var.reset(token)
    status = response.status_code
    if task.logger.isEnabledFor(logging.DEBUG):
        task.logger.debug("%s -> %d", labelled(), status)
    if not raise_for_status or status < 400:
        return response
    raise _status_failure(task, response, labelled(), hidden)


def _label(method: str, url: str, label: str | None, hidden: list[str]) -> str:
    """How messages name a request: ``label``, else the method and the URL without query; redacted.

    Made only when a message needs it (it parses the URL), not on the way of a success.
    """
    label = label or f"{method} {redact_url(url)}"
    return _redact_values(label, hidden) if hidden else label


async def _send(
    transport: httpx.AsyncBaseTransport | None,
    method: str,
    url: str,
    headers: dict[str, str],
    request_timeout: float | None,
    request: dict[str, Any],
    label: Callable[[], str],
    hidden: list[str],
) -> httpx.Response:
    """Send on the run's shared client; a transport error raises `FAIL` (or `RETRY`)."""
    import httpx

    if _httpx_log_filter not in _HTTPX_LOGGER.filters:
        _HTTPX_LOGGER.addFilter(_httpx_log_filter)
    try:
        async with clients.client((_client_factory, transport), transport) as client:
            return await client.request(method, url, headers=headers, timeout=request_timeout, **request)
    except (httpx.RequestError, httpx.InvalidURL) as exc:
        # no traceback chained: it may hold secrets
        raise _transport_failure(exc, label(), request_timeout, hidden).signal(None) from None


async def _resolve_headers(headers: Mapping[str, Any] | None, hidden: list[str]) -> dict[str, str]:
    """The headers to send: None values dropped, lazy values awaited (and kept out of messages)."""
    sent: dict[str, str] = {}
    for key, value in (headers or {}).items():
        if value is None:
            continue
        if is_lazy(value):
            value = await resolve_lazy(value)
            hidden.append(str(value))
        sent[key] = str(value)
    return sent


def _status_failure(task: Task, response: httpx.Response, label: str, hidden: list[str]) -> FAIL | RETRY:
    """The signal for an error status: a 429 or 5xx is transient (`retry_or_fail`), others fail."""
    status = response.status_code
    reason = response.reason_phrase or "error"
    problem = _redact_values(f"{label} returned {status} {reason}: {_excerpt(response)}", hidden)
    fail = functools.partial(HttpStatusFail, status_code=status)
    if status == 429 or status >= 500:
        return retry_or_fail(problem, task=task, retry_after=_retry_after(response), fail=fail)
    return fail(problem)


def decode_response(
    response: httpx.Response, response_format: str, label: str | Callable[[], str] = "the response"
) -> Any:
    """Return the body of ``response`` as ``response_format`` says.

    Args:
        response: A response whose body was read.
        response_format: ``"json"`` (an empty body gives None), ``"text"``, ``"bytes"``, or
            ``"auto"``: JSON for a JSON content type, text for ``text/*``, XML and JavaScript,
            else bytes.
        label: How a FAIL message names the request (or a function making that name when needed).

    Raises:
        FAIL: If the body is not the JSON it should be.
    """
    fmt = _check_format(response_format)
    if fmt == "auto":
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json" or ctype.endswith("+json"):
            fmt = "json"
        elif ctype.startswith("text/") or ctype.endswith(("/xml", "+xml", "/javascript")):
            fmt = "text"
        else:
            fmt = "bytes"
    if fmt == "bytes":
        return response.content
    if fmt == "text":
        return response.text
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        ctype = response.headers.get("content-type", "no content type")
        name = label if isinstance(label, str) else label()
        raise FAIL(
            f"{name}: expected a JSON body but got {ctype}: {_excerpt(response)} "
            '(use response_format="text", "bytes" or "auto")'
        ) from None


def _check_format(response_format: str) -> str:
    if response_format not in RESPONSE_FORMATS:
        raise ValueError(f"response_format must be one of {sorted(RESPONSE_FORMATS)}, got {response_format!r}")
    return response_format


class HttpRequest(Task):
    """Send an HTTP request and return the parsed response body.

    The request goes through the flow run's shared ``httpx.AsyncClient`` (see `http_client`).
    A 429 or 5xx is retried (waiting what ``Retry-After`` says, if anything) as long as
    ``max_retries`` allows, then fails; another 4xx fails at once; each failure message holds
    the status and an excerpt of the body. Connection errors and timeouts fail too (and are
    retried when ``max_retries`` is set). With ``raise_for_status=False`` every response is
    returned as is.

    Args:
        method: The HTTP method. Defaults to ``"GET"``.
        url: The URL; it may be a lazy secret, and then messages show only its scheme and host.
            Defaults to None (give it to the call).
        params: Query parameters (a dict or a list of pairs). Defaults to None.
        json: A body to send as JSON. Defaults to None.
        data: A form body (a dict), or a str or bytes sent as is. Defaults to None.
        headers: Request headers; values may be lazy secrets. Defaults to None.
        auth: A ``(user, password)`` tuple for basic auth (items may be lazy secrets), a bearer
            token string, or an ``httpx.Auth``; may itself be a lazy secret. Defaults to None.
        request_timeout: Seconds allowed for each of connect, read, write and pool wait (None:
            no limit). Defaults to 30.0. (``timeout`` is the engine's limit on the whole run.)
        raise_for_status: Turn error statuses into RETRY/FAIL. Defaults to True.
        response_format: ``"json"`` (an empty body gives None), ``"text"``, ``"bytes"`` or
            ``"auto"`` (by content type). Defaults to ``"json"``.
        transport: An ``httpx.AsyncBaseTransport`` for the client (tests inject one); the
            client closes it when the run ends. Defaults to None (httpx's own).
        **kwargs: `aflow.Task` arguments (``max_retries``, ``retry_delay``, ``name``...).
    """

    def __init__(
        self,
        method: str = "GET",
        url: Any = None,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, Any] | None = None,
        auth: Any = None,
        request_timeout: float | None = DEFAULT_TIMEOUT,
        raise_for_status: bool = True,
        response_format: str = "json",
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        require_httpx()
        self.method = method
        self.url = url
        self.params = params
        self.json = json
        self.data = data
        self.headers = headers
        self.auth = auth
        self.request_timeout = request_timeout
        self.raise_for_status = raise_for_status
        self.response_format = _check_format(response_format)
        self.transport = transport
        super().__init__(**kwargs)

    @defaults_from_attrs(
        "method",
        "url",
        "params",
        "json",
        "data",
        "headers",
        "auth",
        "request_timeout",
        "raise_for_status",
        "response_format",
    )
    async def run(
        self,
        method: str | None = None,
        url: str | None = None,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, Any] | None = None,
        auth: Any = None,
        request_timeout: float | None = None,
        raise_for_status: bool | None = None,
        response_format: str | None = None,
    ) -> Any:
        """Send the request and return the body.

        Every argument defaults to the one given at initialization.

        Args:
            method: The HTTP method (None: ``"GET"``).
            url: The URL (required).
            params: Query parameters.
            json: A body to send as JSON.
            data: A form body (dict), or a str or bytes sent as is.
            headers: Request headers; values may be lazy secrets.
            auth: A ``(user, password)`` tuple, a bearer token string or an ``httpx.Auth``.
            request_timeout: Seconds for each of connect, read, write and pool wait; None: no limit.
            raise_for_status: Turn error statuses into RETRY/FAIL (None: True).
            response_format: ``"json"``, ``"text"``, ``"bytes"`` or ``"auto"`` (None: ``"json"``).

        Returns:
            The parsed JSON, the text or the bytes of the body.

        Raises:
            ValueError: If no URL was given.
            RETRY: For a 429 or 5xx while the task has retries left.
            FAIL: For an error status, a transport error, or a body that is not the JSON expected.
        """
        if url is None:
            raise ValueError(
                "HttpRequest needs a url: give it at initialization (HttpRequest(url=...)) or to the call (url=...)"
            )
        # a webhook, a key in the query... (a plain str, the common case, is not lazy)
        url_is_secret = (type(url) is not str and is_lazy(url)) or (
            self.url is not None and type(self.url) is not str and is_lazy(self.url)
        )
        if url_is_secret:
            url = await resolve_value(url)
        url = str(url)
        method = (method or "GET").upper()
        secrets: list[str] = []
        label = None
        if url_is_secret:
            path = urlsplit(url).path.strip("/")
            secrets += [url, path] if len(path) >= 8 else [url]
            label = _redact_values(f"{method} {_origin(url)}", secrets)
        response = await send_request(
            self,
            method,
            url,
            params=params,
            json=json,
            data=data,
            headers=headers,
            auth=auth,
            request_timeout=request_timeout,
            raise_for_status=True if raise_for_status is None else raise_for_status,
            transport=self.transport,
            label=label,
            secrets=secrets,
        )
        named = label or functools.partial(_label, method, url, None, [])
        return decode_response(response, response_format or "json", named)
