"""`GCPSecret`: a secret's payload from Google Cloud Secret Manager, as a secret task.

The task calls Secret Manager's REST API (``GET v1/projects/{p}/secrets/{s}/versions/{v}:access``)
on the flow run's shared aiohttp session (`aflow_tasks.gcp._auth.session`). With
``SECRET_MANAGER_EMULATOR_HOST`` set (``host:port``), it calls ``http://host:port/v1/...`` without
auth instead.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import quote

from aflow import defaults_from_attrs
from aflow.integration import is_lazy, resolve_lazy, retry_after_seconds, retry_or_fail
from aflow.secrets import register
from aflow.signals import FAIL
from aflow_tasks.secrets import SecretBase

from ._auth import emulator_host, session, token_for

__all__ = ("GCPSecret",)

API = "https://secretmanager.googleapis.com"
EMULATOR_ENV = "SECRET_MANAGER_EMULATOR_HOST"
REQUEST_TIMEOUT = 60.0


def _base_url() -> tuple[str, bool]:
    host = emulator_host(EMULATOR_ENV)
    if host is None:
        return API, False
    host = host.rstrip("/")
    return (host if "://" in host else f"http://{host}"), True


def _error_message(body: Any, text: str) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        status = error.get("status")
        message = str(error.get("message") or "").strip()
        return f"{status}: {message}" if status else message
    return text.strip()[:500] or "no message"


class GCPSecret(SecretBase):
    """Read a secret's payload from Google Cloud Secret Manager and return it as text.

    The payload is registered for redaction; as a secret task its result is never checkpointed
    (see `aflow_tasks.secrets.SecretBase`). A missing secret or version fails naming it;
    throttling (429) and 5xx answers raise `RETRY` while the task has retries left. Also a lazy
    default: ``SomeTask(token=GCPSecret("my-project", "api-token"))`` reads it when ``SomeTask`` runs.

    Args:
        project_id: The project holding the secret (its id or number). Defaults to None (give it
            to the call).
        secret_id: The secret's id. Defaults to None (give it to the call).
        version_id: The version to read (a number or an alias). Defaults to ``"latest"``.
        credentials: A service account's JSON key (a dict or its text, or a lazy value such as an
            `aflow.Secret`). Defaults to None: Application Default Credentials.
        **kwargs: `aflow.Task` arguments (see `aflow_tasks.secrets.SecretBase`).
    """

    def __init__(
        self,
        project_id: str | int | None = None,
        secret_id: str | None = None,
        version_id: str | int = "latest",
        credentials: Any = None,
        **kwargs: Any,
    ) -> None:
        self.project_id = project_id
        self.secret_id = secret_id
        self.version_id = version_id
        self.credentials = credentials
        super().__init__(**kwargs)

    def __repr__(self) -> str:
        return f"GCPSecret({self.project_id!r}, {self.secret_id!r}, version_id={self.version_id!r})"

    @defaults_from_attrs("project_id", "secret_id", "version_id", "credentials")
    async def run(
        self,
        project_id: str | int | None = None,
        secret_id: str | None = None,
        version_id: str | int = "latest",
        credentials: Any = None,
    ) -> str:
        """Read the secret version's payload.

        Args:
            project_id: The project (default: the initialization's; required).
            secret_id: The secret's id (default: the initialization's; required).
            version_id: The version (default: the initialization's, ``"latest"``).
            credentials: A service account's key (default: the initialization's).

        Returns:
            The payload, decoded as UTF-8.

        Raises:
            ValueError: No project or secret id.
            FAIL: The secret or version does not exist, or Secret Manager refused the call.
            RETRY: Throttling or a 5xx while the task has retries left.
        """
        if project_id is None or project_id == "":
            raise ValueError("GCPSecret needs a GCP project ID: GCPSecret(project_id=...) or call it with project_id=")
        if not secret_id:
            raise ValueError(
                "GCPSecret needs a Secret Manager secret ID: GCPSecret(secret_id=...) or call it with secret_id="
            )
        if version_id is None or version_id == "":
            version_id = "latest"
        if credentials is not None and is_lazy(credentials):
            credentials = await resolve_lazy(credentials)
        name = f"projects/{project_id}/secrets/{secret_id}/versions/{version_id}"
        base, emulated = _base_url()
        url = f"{base}/v1/{quote(name, safe='/')}:access"
        return await self._access(name, url, credentials, emulated)

    async def _access(self, name: str, url: str, credentials: Any, emulated: bool) -> str:
        import aiohttp

        label = f"reading GCP secret {name}"
        async with session() as client:
            headers = {"Accept": "application/json"}
            token = token_for(credentials, client, emulated=emulated)
            try:
                if token is not None:
                    headers["Authorization"] = f"Bearer {await token.get()}"
                timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
                async with client.get(url, headers=headers, timeout=timeout) as response:
                    text = await response.text()
                    status = response.status
                    retry_after = retry_after_seconds(
                        response.headers.get("Retry-After"), date=response.headers.get("Date")
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise retry_or_fail(f"{label} failed: {type(exc).__name__}: {exc}") from None
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = None
        if status >= 400:
            message = _error_message(body, text)
            if status == 404:
                raise FAIL(f"{label} failed: not found: {message}")
            if status == 429 or status >= 500:
                raise retry_or_fail(f"{label} failed: HTTP {status}: {message}", retry_after=retry_after)
            raise FAIL(f"{label} failed: HTTP {status}: {message}")
        try:
            data = base64.b64decode(body["payload"]["data"], validate=True)
            value = data.decode("UTF-8")
        except (KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise FAIL(f"{label}: the answer has no readable payload ({type(exc).__name__})") from None
        register(value)
        return value

    async def resolve(self) -> Any:
        """Read the secret with the initialization's settings (a lazy default)."""
        return await self.run()
