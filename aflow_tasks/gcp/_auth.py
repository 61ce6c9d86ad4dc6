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

from aflow import Secret
from aflow.exceptions import SecretNotFound
from aflow.integration import ClientFactory, is_lazy, resolve_lazy
from aflow.secrets import register

if TYPE_CHECKING:
    import aiohttp
    from gcloud.aio.auth import Token

__all__ = (
    "CLOUD_SCOPE",
    "CREDENTIALS_SECRET",
    "credentials_key",
    "emulator_host",
    "resolve_credentials",
    "session",
    "sessions",
    "token_for",
)

CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
CREDENTIALS_SECRET = "GCP_CREDENTIALS"
"""The secret read when a task is given no credentials (as Prefect 1)."""
_SECRET_KEYS = ("private_key", "private_key_id", "client_secret", "refresh_token")


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


async def resolve_credentials(credentials: Any) -> dict[str, Any] | None:
    """The service-account key to use, its secret parts registered for redaction.

    ``credentials`` (awaited when lazy, an `aflow.Secret`), else the ``GCP_CREDENTIALS`` secret
    when set (as Prefect 1), else None: Application Default Credentials.

    Args:
        credentials: A service-account key (a dict or its JSON text), a lazy value giving one, or None.

    Raises:
        ValueError: The value is not a service-account key.
    """
    if credentials is not None and is_lazy(credentials):
        credentials = await resolve_lazy(credentials)
    if credentials is None:
        try:
            credentials = Secret(CREDENTIALS_SECRET).get()
        except SecretNotFound:
            return None
        if credentials is not None and is_lazy(credentials):
            credentials = await resolve_lazy(credentials)
    if credentials is None:
        return None
    if isinstance(credentials, str):
        register(credentials)
    elif not isinstance(credentials, Mapping):
        raise ValueError(
            f"credentials must be a service account's JSON key (a dict or its JSON text), not a "
            f"{type(credentials).__name__}"
        )
    info = _service_info(credentials)
    register([str(info[key]) for key in _SECRET_KEYS if info.get(key)])
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
