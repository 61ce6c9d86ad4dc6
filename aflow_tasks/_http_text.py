"""The HTTP tasks' messages: URLs and bodies as failure messages show them, secrets left out.

Re-exported by `aflow_tasks.http` (`redact_url`); httpx is imported when first used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aflow.integration import Failure, retry_after_seconds
from aflow.secrets import REDACTED

if TYPE_CHECKING:
    import httpx

__all__ = ("redact_url",)

_EXCERPT_CHARS = 300


def redact_url(url: str) -> str:
    """``url`` without its user info, query string and fragment (for messages and logs)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<invalid URL>"
    if not parts.scheme and not host:
        return parts.path
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _origin(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}/…"
    except ValueError:
        return "<secret URL>"


def _redact_values(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _excerpt(response: httpx.Response) -> str:
    """A short, single-line account of an error body: an API's ``message`` field, else the text."""
    try:
        text = response.text
    except Exception:  # undecodable body
        return f"<{len(response.content)} bytes>"
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        text = data["message"]
        errors = data.get("errors")
        if errors:
            text = f"{text} {errors}"
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > _EXCERPT_CHARS:
        text = text[:_EXCERPT_CHARS] + "…"
    return text or "<empty body>"


def _retry_after(response: httpx.Response) -> float | None:
    """The delay that ``Retry-After`` asks for, in seconds (None when absent or unreadable)."""
    dates = response.headers.get_list("date")
    return retry_after_seconds(response.headers.get("retry-after"), date=dates[0] if dates else None)


def _transport_failure(exc: Exception, label: str, request_timeout: float | None, hidden: list[str]) -> Failure:
    """What one of httpx's transport errors means, as a `Failure` (its message free of secrets)."""
    import httpx

    if isinstance(exc, httpx.InvalidURL):
        return Failure(f"{label}: the URL is not valid")
    if isinstance(exc, httpx.TimeoutException):
        after = f"after {request_timeout:g}s" if request_timeout is not None else "(client timeout)"
        return Failure(_redact_values(f"{label} timed out {after} ({type(exc).__name__})", hidden))
    if isinstance(exc, httpx.ConnectError):
        return Failure(_redact_values(f"{label}: could not connect ({exc or type(exc).__name__})", hidden))
    return Failure(_redact_values(f"{label} failed: {type(exc).__name__}: {exc}", hidden))
