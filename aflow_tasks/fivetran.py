"""Fivetran: force a connector's sync and wait for it (Prefect 1's `prefect.tasks.fivetran`).

`FivetranSyncTask` reads the connector, sets its schedule to manual (``manual=True``, as Prefect
1 did), forces a sync and polls the connector every ``poll_status_every_n_seconds`` seconds,
logging each change of its ``sync_state`` to the task logger, until ``succeeded_at`` or
``failed_at`` moves past the last completion. A failed sync fails the task with the connector's
log URL. The API key and secret never appear in a message or a log line. Fivetran's REST API has
no call that stops a running sync: a cancelled task logs that the sync goes on.

Needs httpx: ``pip install aflow-engine[http]``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio

from aflow import Task, defaults_from_attrs
from aflow.integration import retry_or_fail
from aflow.secrets import register
from aflow.signals import FAIL

from .http import resolve_value, send_request

__all__ = ("FivetranFail", "FivetranSyncTask")

_NEVER = datetime.fromtimestamp(-1, UTC)


class FivetranFail(FAIL):
    """The `aflow.signals.FAIL` raised when a sync fails, the connector is not set up, or the API refuses."""


def _parse(value: str | None) -> datetime:
    if not value:
        return _NEVER
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


class FivetranSyncTask(Task):
    """Run a Fivetran connector's sync and wait for it to finish.

    Args:
        connector_id: The connector's id; default None (give it to the call).
        base_url: The API's base URL (default ``"https://api.fivetran.com"``; tests point it at a
            local fake).
        **kwargs: `aflow.Task` attributes.
    """

    api_user_agent = "aflow"

    def __init__(self, connector_id: str | None = None, base_url: str = "https://api.fivetran.com", **kwargs: Any):
        self.connector_id = connector_id
        self.base_url = base_url
        super().__init__(**kwargs)

    async def _call(
        self, method: str, url: str, auth: tuple[str, str], body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        label = f"Fivetran {method} {url.removeprefix(self.base_url.rstrip('/'))}"
        headers = {"User-Agent": self.api_user_agent, "Accept": "application/json;version=2"}
        response = await send_request(
            self,
            method,
            url,
            json=body,
            headers=headers,
            auth=auth,
            raise_for_status=False,
            label=label,
            secrets=list(auth),
            family="fivetran",
        )
        status = response.status_code
        if status >= 400:
            problem = f"{label} returned {status}: {response.text[:300]}"
            if status == 429 or status >= 500:
                raise retry_or_fail(problem, task=self, fail=FivetranFail)
            raise FivetranFail(problem)
        data = response.json() if response.content else {}
        return (data.get("data") or {}) if isinstance(data, dict) else {}

    async def _wait(
        self, url: str, auth: tuple[str, str], connector_id: str, previous: datetime, url_logs: str, poll: float
    ) -> datetime:
        """Poll the connector until its sync ends; return when it succeeded (logging each sync_state)."""
        poll_status_every_n_seconds = poll
        seen = None
        try:
            while True:
                current = await self._call("GET", url, auth)
                succeeded_at, failed_at = _parse(current.get("succeeded_at")), _parse(current.get("failed_at"))
                if failed_at > previous:
                    raise FivetranFail(
                        f'Fivetran sync for connector "{connector_id}" failed; please see logs at {url_logs}'
                    )
                sync_state = (current.get("status") or {}).get("sync_state")
                if sync_state != seen:
                    seen = sync_state
                    self.logger.info('Connector "%s" current sync_state = %s', connector_id, sync_state)
                if max(succeeded_at, failed_at) > previous:
                    break
                await anyio.sleep(poll_status_every_n_seconds)
        except anyio.get_cancelled_exc_class():
            self.logger.warning(
                "Fivetran's API cannot stop a running sync: connector %s goes on syncing (see %s)",
                connector_id,
                url_logs,
            )
            raise
        return succeeded_at

    @defaults_from_attrs("connector_id")
    async def run(
        self,
        api_key: Any = None,
        api_secret: Any = None,
        connector_id: str | None = None,
        poll_status_every_n_seconds: float = 15,
        manual: bool = True,
    ) -> dict[str, Any]:
        """Force the sync and wait for it to succeed.

        Args:
            api_key: The API key (https://fivetran.com/account/settings; may be lazy, e.g.
                ``Secret("FIVETRAN_API_KEY")``).
            api_secret: The API secret (may be lazy).
            connector_id: Defaults to the task's.
            poll_status_every_n_seconds: Seconds between status polls (default 15).
            manual: Set the connector's schedule to manual before syncing (default True).

        Returns:
            ``{"succeeded_at": <ISO 8601 timestamp>, "connector_id": ...}``.

        Raises:
            ValueError: Without a connector id, an API key or an API secret.
            FivetranFail: When the connector is not set up, the sync fails or the API refuses.
        """
        if not connector_id:
            raise ValueError("Value for parameter `connector_id` must be provided.")
        api_key, api_secret = await resolve_value(api_key), await resolve_value(api_secret)
        if not api_key:
            raise ValueError("Value for parameter `api_key` must be provided.")
        if not api_secret:
            raise ValueError("Value for parameter `api_secret` must be provided.")
        if poll_status_every_n_seconds <= 0:
            raise ValueError(f"poll_status_every_n_seconds must be positive, got {poll_status_every_n_seconds!r}")
        auth = (str(api_key), str(api_secret))
        register(list(auth))
        url = f"{self.base_url.rstrip('/')}/v1/connectors/{connector_id}"
        self.logger.info(
            "Attempting start of Fivetran connector %s, sleep time set to %s seconds.",
            connector_id,
            poll_status_every_n_seconds,
        )
        details = await self._call("GET", url, auth)
        service, schema = details.get("service"), details.get("schema")
        url_logs = f"https://fivetran.com/dashboard/connectors/{service}/{schema}/logs"
        url_setup = f"https://fivetran.com/dashboard/connectors/{service}/{schema}/setup"
        setup_state = (details.get("status") or {}).get("setup_state")
        if setup_state != "connected":
            raise FivetranFail(
                f'Fivetran connector "{connector_id}" not correctly configured, status: {setup_state}; '
                f"please complete setup at {url_setup}"
            )
        previous = max(_parse(details.get("succeeded_at")), _parse(details.get("failed_at")))
        self.logger.info("Connector type: %s, connector schema: %s", service, schema)
        self.logger.info("Connectors logs at %s", url_logs)
        if manual:
            await self._call("PATCH", url, auth, {"schedule_type": "manual"})
        await self._call("POST", f"{url}/force", auth)
        succeeded_at = await self._wait(url, auth, connector_id, previous, url_logs, poll_status_every_n_seconds)
        self.logger.info('Fivetran sync for connector "%s" succeeded at %s', connector_id, _iso(succeeded_at))
        return {"succeeded_at": _iso(succeeded_at), "connector_id": connector_id}
