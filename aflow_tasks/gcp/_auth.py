"""What every gcp task shares in a flow run: one aiohttp session, and tokens for credentials.

`session()` gives the flow run's ``aiohttp.ClientSession`` (one per run, through `sessions`, an
`aflow.integration.ClientFactory`; closed when the run ends). `token_for` turns credentials
(a service-account dict or JSON text, a lazy `aflow.Secret` resolved by the caller, or None for
Application Default Credentials) into a ``gcloud.aio.auth.Token`` on that session, or None when
the service is an emulator (``*_EMULATOR_HOST`` set): emulators take no auth.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

from aflow.integration import ClientFactory

if TYPE_CHECKING:
    import aiohttp
    from gcloud.aio.auth import Token

__all__ = ("CLOUD_SCOPE", "credentials_key", "emulator_host", "session", "sessions", "token_for")

CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def _aiohttp() -> Any:
    try:
        import aiohttp
    except ImportError as exc:  # pragma: no cover - the extra brings it
        raise ImportError("the gcp tasks need gcloud-aio: pip install aflow-engine[gcp]") from exc
    return aiohttp


@asynccontextmanager
async def _open_session() -> AsyncIterator[aiohttp.ClientSession]:
    aiohttp = _aiohttp()
    # no total timeout: each task bounds its own requests (request_timeout)
    client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
    try:
        yield client
    finally:
        await client.close()


sessions: ClientFactory[[], aiohttp.ClientSession] = ClientFactory("aflow_tasks.gcp", _open_session)
"""The flow run's aiohttp session for every gcp task; ``sessions.use(session)`` in tests."""


def session() -> AbstractAsyncContextManager[aiohttp.ClientSession]:
    """The flow run's session, as an async context manager to enter with ``async with``."""
    return sessions.client("session")


def emulator_host(variable: str) -> str | None:
    """The emulator address in the environment variable ``variable`` (None when unset or empty)."""
    return os.environ.get(variable) or None


def _service_info(credentials: Mapping[str, Any] | str) -> dict[str, Any]:
    info: Any
    if isinstance(credentials, str):
        try:
            info = json.loads(credentials)
        except ValueError:
            raise ValueError("credentials must be a service account's JSON key (a dict or its JSON text)") from None
    elif isinstance(credentials, Mapping):
        info = dict(credentials)
    else:
        info = None
    if not isinstance(info, dict):
        raise ValueError("credentials must be a service account's JSON key (a dict or its JSON text)")
    return info


def credentials_key(credentials: Mapping[str, Any] | str | None) -> str:
    """A digest naming ``credentials`` (never the credentials themselves), for cache keys."""
    if credentials is None:
        return "adc"
    text = json.dumps(_service_info(credentials), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def token_for(
    credentials: Mapping[str, Any] | str | None,
    client: aiohttp.ClientSession,
    *,
    emulated: bool,
    scopes: list[str] | None = None,
) -> Token | None:
    """A token for ``credentials`` on ``client``; None against an emulator (no auth there).

    Args:
        credentials: A service account's key (a dict or its JSON text; a `aflow.Secret` resolved
            already), or None for Application Default Credentials.
        client: The flow run's session (see `session`).
        emulated: Whether the service is an emulator.
        scopes: OAuth scopes (default: cloud-platform).

    Raises:
        ValueError: For credentials that are not a service account key.
    """
    if emulated:
        return None
    from gcloud.aio.auth import Token

    service_file = None if credentials is None else io.StringIO(json.dumps(_service_info(credentials)))
    # gcloud-aio types its session for its sync build too: the aiohttp session is what it takes here
    return Token(service_file=service_file, session=cast(Any, client), scopes=scopes or [CLOUD_SCOPE])
