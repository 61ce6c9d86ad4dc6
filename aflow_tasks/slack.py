"""Slack notifications through an incoming webhook.

`SlackTask` posts a message to a Slack incoming webhook on the flow run's shared HTTP client
(see `aflow_tasks.http`). The webhook URL is a secret: give it as a lazy secret
(``webhook_url=aflow.Secret("MY_HOOK")``), or let the task read the secret named by
``webhook_secret`` (``SLACK_WEBHOOK_URL``), as Prefect 1 did: from the run context's
``secrets``, else the environment variable ``AFLOW__CONTEXT__SECRETS__SLACK_WEBHOOK_URL`` (see
`aflow.Secret`). The URL never appears in a message or a log line. A 429 or 5xx is retried after
Slack's ``Retry-After`` while ``max_retries`` allows (`aflow.integration.retry_or_fail`); tests
inject a client through `aflow_tasks.http.clients`.

Needs the ``http`` extra: ``pip install aflow-engine[http]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aflow import Task, defaults_from_attrs

from .http import lookup_secret, require_httpx, resolve_value, send_request

if TYPE_CHECKING:
    import httpx

__all__ = ("SlackTask",)


class SlackTask(Task):
    """Post a message to a Slack channel through an incoming webhook.

    A 429 or 5xx from Slack is retried (after its ``Retry-After``) while ``max_retries``
    allows; other errors (``invalid_payload``, ``no_service``...) fail with Slack's answer.

    Args:
        message: The text to post, or a dict sent as the whole payload (for ``blocks`` or
            ``attachments``). Defaults to None (give it to the call).
        webhook_url: The webhook URL; a string or a lazy secret. Defaults to None: the URL is
            then read from the secret named ``webhook_secret``.
        webhook_secret: The name of the secret (see `aflow.Secret`) holding the URL, read when
            ``webhook_url`` is None. Defaults to ``"SLACK_WEBHOOK_URL"``.
        transport: An ``httpx.AsyncBaseTransport`` for the shared client (tests). Defaults to None.
        **kwargs: `aflow.Task` arguments (``max_retries``, ``name``...).
    """

    def __init__(
        self,
        message: str | Mapping[str, Any] | None = None,
        webhook_url: Any = None,
        webhook_secret: str | None = "SLACK_WEBHOOK_URL",
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        require_httpx("slack")
        self.message = message
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.transport = transport
        super().__init__(**kwargs)

    @defaults_from_attrs("message", "webhook_url", "webhook_secret")
    async def run(
        self,
        message: str | Mapping[str, Any] | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        """Post the message.

        Every argument defaults to the one given at initialization.

        Args:
            message: The text to post, or a dict payload sent as is (required).
            webhook_url: The webhook URL (a string or a lazy secret).
            webhook_secret: The name of the secret holding the URL, used when ``webhook_url``
                is None.

        Raises:
            ValueError: If there is no message or no webhook URL.
            RETRY: For a 429 or 5xx while the task has retries left.
            FAIL: If Slack refuses the message or cannot be reached.
        """
        if message is None:
            raise ValueError("SlackTask needs a message: give it at initialization or to the call (message=...)")
        webhook_url = await resolve_value(webhook_url)
        if webhook_url is None:
            webhook_url = await lookup_secret(webhook_secret)
        if webhook_url is None:
            where = f" or set the secret {webhook_secret!r} (see aflow.Secret)" if webhook_secret else ""
            raise ValueError(f"SlackTask needs a webhook URL: pass webhook_url= (a string or a lazy secret){where}")
        url = str(webhook_url)
        payload = dict(message) if isinstance(message, Mapping) else {"text": str(message)}
        await send_request(
            self,
            "POST",
            url,
            json=payload,
            transport=self.transport,
            label="Slack webhook POST",
            secrets=[url, urlsplit(url).path.strip("/")],
            family="slack",
        )
