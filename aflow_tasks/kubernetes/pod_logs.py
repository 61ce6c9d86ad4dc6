"""Read a pod's logs, once or following them until the container ends (Prefect 1's ``ReadNamespacedPodLogs``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aflow import Task, defaults_from_attrs

from ._client import CONNECTION_ARGS, api_errors, kube_client, log_level_number, open_stream, require_kubernetes

__all__ = ("ReadNamespacedPodLogs", "stream_pod_log")


async def stream_pod_log(
    api: Any,
    pod_name: str,
    namespace: str,
    on_line: Callable[[str], None],
    *,
    container: str | None = None,
    follow: bool = False,
    kube_kwargs: dict[str, Any] | None = None,
) -> None:
    """Read a pod's log line by line, calling ``on_line`` with each (without its newline).

    With ``follow`` the call returns when the container ends (the API closes the stream). The log
    is read raw, so a log that happens to be valid JSON stays text.

    Args:
        api: A ``kubernetes_asyncio`` ``ApiClient``.
        pod_name: The pod.
        namespace: Its namespace.
        on_line: Called with each line as it arrives.
        container: The container (needed only for pods with several).
        follow: Keep reading until the container ends.
        kube_kwargs: Extra arguments of ``CoreV1Api.read_namespaced_pod_log`` (``tail_lines``...).
    """
    k8s = require_kubernetes()
    core = k8s.client.CoreV1Api(api)
    extra = dict(kube_kwargs or {})
    if container:
        extra["container"] = container
    if follow:
        extra["follow"] = True
    with api_errors(f"reading the logs of pod {pod_name!r} in namespace {namespace!r}", retry=False):
        resp = await open_stream(core.read_namespaced_pod_log, pod_name, namespace, **extra)
        try:
            while line := await resp.content.readline():
                on_line(line.decode("utf-8", "replace").rstrip("\n").removesuffix("\r"))
        finally:
            resp.close()


class ReadNamespacedPodLogs(Task):
    """Return the logs of a pod; with ``follow``, stream them until its container ends.

    Args:
        pod_name: The pod whose logs to read. Required (at init or run time).
        namespace: Its namespace (default ``"default"``).
        container: The container, for pods with several (default None).
        follow: Keep reading until the container ends, handing each line on as it arrives
            (default False: read what is there now).
        on_log_entry: A function called with each line as it arrives (default None), as in Prefect 1.
        log_level: Also log each line to the task logger at this level (a name such as
            ``"info"``, or a number; default None: do not log).
        kube_kwargs: Extra arguments of ``CoreV1Api.read_namespaced_pod_log`` (e.g.
            ``{"tail_lines": 100}``). Default None.
        kube_config: See the family's connection arguments (``aflow_tasks.kubernetes``).
        kube_context: The kubeconfig context (default None).
        kubernetes_api_key: A bearer token or lazy default (default None).
        kubernetes_api_key_secret: The name of a secret holding the token (default ``"KUBERNETES_API_KEY"``).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        pod_name: str | None = None,
        namespace: str = "default",
        container: str | None = None,
        follow: bool = False,
        on_log_entry: Callable[[str], None] | None = None,
        log_level: int | str | None = None,
        kube_kwargs: dict[str, Any] | None = None,
        kube_config: Any = None,
        kube_context: str | None = None,
        kubernetes_api_key: Any = None,
        kubernetes_api_key_secret: str | None = "KUBERNETES_API_KEY",
        **kwargs: Any,
    ) -> None:
        log_level_number(log_level)  # fail early on a bad level
        self.pod_name = pod_name
        self.namespace = namespace
        self.container = container
        self.follow = follow
        self.on_log_entry = on_log_entry
        self.log_level = log_level
        self.kube_kwargs = kube_kwargs
        self.kube_config = kube_config
        self.kube_context = kube_context
        self.kubernetes_api_key = kubernetes_api_key
        self.kubernetes_api_key_secret = kubernetes_api_key_secret
        super().__init__(**kwargs)

    @defaults_from_attrs(
        "pod_name", "namespace", "container", "follow", "on_log_entry", "log_level", "kube_kwargs", *CONNECTION_ARGS
    )
    async def run(
        self,
        pod_name: str | None = None,
        namespace: str | None = None,
        container: str | None = None,
        follow: bool | None = None,
        on_log_entry: Callable[[str], None] | None = None,
        log_level: int | str | None = None,
        kube_kwargs: dict[str, Any] | None = None,
        kube_config: Any = None,
        kube_context: str | None = None,
        kubernetes_api_key: Any = None,
        kubernetes_api_key_secret: str | None = None,
    ) -> str:
        """Read the logs.

        Args:
            pod_name: The pod. Defaults to the task's ``pod_name``.
            namespace: Its namespace. Defaults to the task's.
            container: The container. Defaults to the task's.
            follow: Stream until the container ends. Defaults to the task's.
            on_log_entry: Called with each line. Defaults to the task's.
            log_level: Log each line at this level. Defaults to the task's.
            kube_kwargs: Extra API arguments, updating the task's.
            kube_config: Defaults to the task's.
            kube_context: Defaults to the task's.
            kubernetes_api_key: Defaults to the task's.
            kubernetes_api_key_secret: Defaults to the task's.

        Returns:
            The log text (every line, each ending with a newline).

        Raises:
            ValueError: If no pod name was given.
            KubernetesFail: If the API answers with an error (404 for a missing pod).
        """
        if not pod_name:
            raise ValueError(
                "ReadNamespacedPodLogs needs pod_name: pass pod_name= to ReadNamespacedPodLogs(...) or to the call"
            )
        if not namespace:
            raise ValueError("ReadNamespacedPodLogs needs a namespace: pass namespace= to the task or the call")
        level = log_level_number(log_level)
        kwargs = {**(self.kube_kwargs or {}), **(kube_kwargs or {})}
        lines: list[str] = []
        logger = self.logger

        def on_line(line: str) -> None:
            lines.append(line)
            if level is not None:
                logger.log(level, "%s: %s", pod_name, line)
            if on_log_entry is not None:
                on_log_entry(line)

        connect = await kube_client(kube_config, kube_context, kubernetes_api_key, kubernetes_api_key_secret)
        async with connect as api:
            await stream_pod_log(
                api, pod_name, namespace, on_line, container=container, follow=bool(follow), kube_kwargs=kwargs
            )
        return "".join(f"{line}\n" for line in lines)
