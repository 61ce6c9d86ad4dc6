"""Run a Kubernetes Job to completion: create it, watch it, stream its pods' logs, clean up.

`RunNamespacedJob` creates the Job, then **watches** it through the API's watch streams (a
status read is made only when a watch ends, every ``job_status_poll_interval`` seconds, as a
fallback). Meanwhile it watches the Job's pods and follows each pod's log as soon as the pod runs,
logging every line to the task logger at ``log_level``. When the Job fails, the task fails with
the failing container's exit code and the tail of its log. The Job is deleted (with its pods,
through ``propagation_policy``) after a success by default, after a failure if asked, and always
when the task is cancelled or times out, so no Job outlives an interrupted flow run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from aflow import Task, defaults_from_attrs
from aflow.integration import is_lazy, resolve_lazy, to_the_end

from ._client import (
    CONNECTION_ARGS,
    KubernetesFail,
    api_errors,
    deep_merge,
    kube_client,
    log_level_number,
    open_stream,
    require_kubernetes,
)
from .pod_logs import stream_pod_log

__all__ = ("KubernetesJobFail", "RunNamespacedJob")

_DRAIN_SECONDS = 10.0  # how long log streams may take to end once the job has finished
_CLEANUP_SECONDS = 30.0  # bound on the (shielded) deletion of the job


class KubernetesJobFail(KubernetesFail):
    """The `aflow.signals.FAIL` raised when a Job run by `RunNamespacedJob` fails.

    Args:
        message: The state's message (exit code and log tail).
        job_name: The Job's name.
        exit_code: The failing container's exit code (None if no container reported one).
        logs: The logs of the Job's pods, by pod name.
    """

    def __init__(self, message: str, *, job_name: str, exit_code: int | None, logs: dict[str, str]) -> None:
        super().__init__(message)
        self.job_name = job_name
        self.exit_code = exit_code
        self.logs = logs


def _job_outcome(job: dict[str, Any]) -> str | None:
    """The outcome of a Job from its raw status: "succeeded", "failed" or None (still running)."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or ():
        if condition.get("status") == "True":
            if condition.get("type") in ("Complete", "SuccessCriteriaMet"):
                return "succeeded"
            if condition.get("type") in ("Failed", "FailureTarget"):
                return "failed"
    spec = job.get("spec") or {}
    if not status.get("active"):
        if (status.get("succeeded") or 0) >= (spec.get("completions") or 1):
            return "succeeded"
        backoff = spec.get("backoffLimit")
        if status.get("failed") and backoff is not None and status["failed"] > backoff:
            return "failed"
    return None


async def _read_json(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    resp = await open_stream(fn, *args, **kwargs)
    try:
        data = json.loads(await resp.read())
    finally:
        resp.close()
    return data if isinstance(data, dict) else {}


async def _watch(
    fn: Callable[..., Any],
    *args: Any,
    on_event: Callable[[str, dict[str, Any]], bool],
    timeout_seconds: int,
    resource_version: str | None,
    **kwargs: Any,
) -> tuple[bool, str | None]:
    """One watch request: call ``on_event(type, object)`` for each event until it returns True.

    Returns whether ``on_event`` stopped the watch, and the last resourceVersion seen (to resume).
    """
    k8s = require_kubernetes()
    if resource_version:
        kwargs["resource_version"] = resource_version
    resp = await open_stream(fn, *args, watch=True, timeout_seconds=timeout_seconds, **kwargs)
    try:
        while line := await resp.content.readline():
            event = json.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                exc = k8s.client.exceptions.ApiException(status=obj.get("code"), reason=obj.get("reason"))
                exc.body = json.dumps(obj)
                raise exc
            resource_version = (obj.get("metadata") or {}).get("resourceVersion") or resource_version
            if kind != "BOOKMARK" and on_event(kind, obj):
                return True, resource_version
    finally:
        resp.close()
    return False, resource_version


class _JobRun:
    """The state of one run of `RunNamespacedJob`."""

    def __init__(self, task: RunNamespacedJob, api: Any, namespace: str, poll: float, level: int | None) -> None:
        k8s = require_kubernetes()
        self.k8s = k8s
        self.api = api
        self.batch = k8s.client.BatchV1Api(api)
        self.core = k8s.client.CoreV1Api(api)
        self.namespace = namespace
        self.watch_seconds = max(1, math.ceil(poll))
        self.level = level
        self.logger = task.logger
        self.logs: dict[str, list[str]] = {}
        self.followed: set[str] = set()
        self.complete: set[str] = set()  # pods whose whole log was read

    def _where(self, name: str) -> str:
        return f"Job {name!r} in namespace {self.namespace!r}"

    async def watch_job(self, name: str) -> tuple[str, dict[str, Any]]:
        """Watch the Job until it succeeds or fails; return the outcome and the Job."""
        resource_version: str | None = None
        found: list[tuple[str, dict[str, Any]]] = []

        def on_event(kind: str, job: dict[str, Any]) -> bool:
            if kind == "DELETED":
                raise KubernetesFail(f"{self._where(name)} was deleted before it finished", status=None)
            outcome = _job_outcome(job)
            if outcome:
                found.append((outcome, job))
            return bool(outcome)

        while True:
            with api_errors(f"reading the status of {self._where(name)}", retry=False):
                job = await _read_json(self.batch.read_namespaced_job_status, name, self.namespace)
            outcome = _job_outcome(job)
            if outcome:
                return outcome, job
            resource_version = (job.get("metadata") or {}).get("resourceVersion")
            try:
                with api_errors(f"watching {self._where(name)}", retry=False):
                    stopped, resource_version = await _watch(
                        self.batch.list_namespaced_job,
                        self.namespace,
                        field_selector=f"metadata.name={name}",
                        on_event=on_event,
                        timeout_seconds=self.watch_seconds,
                        resource_version=resource_version,
                    )
            except KubernetesFail as exc:
                if exc.status != 410:  # 410 Gone: the resourceVersion is too old; read and watch again
                    raise
                continue
            if stopped:
                return found[-1]

    async def watch_pods(self, name: str, followers: TaskGroup) -> None:
        """Follow the log of each pod of the Job as soon as it runs (never raises)."""
        resource_version: str | None = None

        def on_event(kind: str, pod: dict[str, Any]) -> bool:
            pod_name = (pod.get("metadata") or {}).get("name")
            phase = (pod.get("status") or {}).get("phase")
            if kind != "DELETED" and pod_name and phase != "Pending" and pod_name not in self.followed:
                self.followed.add(pod_name)
                followers.start_soon(self.follow, pod_name)
            return False

        while True:
            try:
                with api_errors(f"watching the pods of {self._where(name)}", retry=False):
                    _, resource_version = await _watch(
                        self.core.list_namespaced_pod,
                        self.namespace,
                        label_selector=f"job-name={name}",
                        on_event=on_event,
                        timeout_seconds=self.watch_seconds,
                        resource_version=resource_version,
                    )
            except KubernetesFail as exc:
                if exc.status == 410:
                    resource_version = None
                    continue
                self.logger.warning("%s; pod logs will be read when the job ends", exc)
                return

    async def follow(self, pod_name: str) -> None:
        """Stream a pod's log to the task logger (never raises)."""
        lines = self.logs.setdefault(pod_name, [])
        level, logger = self.level, self.logger

        def on_line(line: str) -> None:
            lines.append(line)
            if level is not None:
                logger.log(level, "%s: %s", pod_name, line)

        try:
            await stream_pod_log(self.api, pod_name, self.namespace, on_line, follow=True)
        except KubernetesFail as exc:
            self.logger.warning("Could not follow the log of pod %r: %s", pod_name, exc)
        else:
            self.complete.add(pod_name)

    async def wait(self, name: str) -> tuple[str, dict[str, Any]]:
        """Watch the Job (and stream its pods' logs) until it ends; return the outcome and the Job."""
        result: tuple[str, dict[str, Any]] | None = None
        error: BaseException | None = None
        async with anyio.create_task_group() as followers:
            async with anyio.create_task_group() as watchers:
                if self.level is not None:
                    watchers.start_soon(self.watch_pods, name, followers)
                try:
                    result = await self.watch_job(name)
                except anyio.get_cancelled_exc_class():
                    raise
                except BaseException as exc:  # a signal: raised below, outside the task groups
                    error = exc
                watchers.cancel_scope.cancel()
            # the job has ended: give the log streams a moment to reach the end of the logs
            followers.cancel_scope.deadline = anyio.current_time() + (0 if error else _DRAIN_SECONDS)
        if error is not None:
            raise error
        assert result is not None
        return result

    async def pods(self, name: str) -> list[dict[str, Any]]:
        """The Job's pods (raw), oldest first."""
        with api_errors(f"listing the pods of {self._where(name)}", retry=False):
            data = await _read_json(self.core.list_namespaced_pod, self.namespace, label_selector=f"job-name={name}")
        pods = [p for p in data.get("items") or () if isinstance(p, dict)]
        return sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))

    async def read_rest(self, pods: list[dict[str, Any]]) -> None:
        """Read the logs of the pods whose log was not streamed whole (logging them if none was)."""
        logger = self.logger
        for pod in pods:
            pod_name = (pod.get("metadata") or {}).get("name")
            if not pod_name or pod_name in self.complete:
                continue
            streamed = bool(self.logs.get(pod_name))
            lines: list[str] = []
            level = None if streamed else self.level

            def on_line(line: str, lines: list[str] = lines, level: int | None = level, pod: str = pod_name) -> None:
                lines.append(line)
                if level is not None:
                    logger.log(level, "%s: %s", pod, line)

            try:
                await stream_pod_log(self.api, pod_name, self.namespace, on_line)
            except KubernetesFail as exc:
                self.logger.warning("Could not read the log of pod %r: %s", pod_name, exc)
                continue
            self.logs[pod_name] = lines
            self.complete.add(pod_name)

    def failure(self, name: str, pods: list[dict[str, Any]], tail: int) -> KubernetesJobFail:
        """The FAIL of a failed Job: the failing container's exit code and its log tail."""
        exit_code: int | None = None
        culprit: str | None = None
        detail = ""
        for pod in pods:
            statuses = (pod.get("status") or {}).get("containerStatuses") or ()
            for status in statuses:
                terminated = (status.get("state") or {}).get("terminated") or {}
                code = terminated.get("exitCode")
                if isinstance(code, int) and code != 0:
                    exit_code, culprit = code, (pod.get("metadata") or {}).get("name")
                    reason = terminated.get("reason")
                    detail = f": pod {culprit!r} (container {status.get('name')!r}) exited with code {code}"
                    detail += f" ({reason})" if reason else ""
        message = f"{self._where(name)} failed{detail or ' (no container reported an exit code)'}"
        pod_name = culprit or (next(iter(self.logs)) if self.logs else None)
        lines = self.logs.get(pod_name, []) if pod_name else []
        if lines and tail > 0:
            shown = lines[-tail:]
            message += f"\nlast {len(shown)} log line(s) of pod {pod_name!r}:\n" + "\n".join(shown)
        return KubernetesJobFail(message, job_name=name, exit_code=exit_code, logs=self.texts())

    def texts(self) -> dict[str, str]:
        """The logs read, by pod."""
        return {pod: "".join(f"{line}\n" for line in lines) for pod, lines in self.logs.items()}

    async def delete(self, name: str, policy: str | None, why: str, *, check: bool) -> None:
        """Delete the Job (and its pods per ``policy``), shielded from cancellation and bounded in time.

        With ``check`` an API error fails the task; otherwise it is logged (the task is failing
        or being cancelled already). A Job already gone is fine.
        """
        # a task of its own: neither anyio's nor a plain asyncio cancellation of the caller cuts it off
        await to_the_end(self._delete(name, policy, why, check=check), limit=_CLEANUP_SECONDS)

    async def _delete(self, name: str, policy: str | None, why: str, *, check: bool) -> None:
        k8s = self.k8s
        options = k8s.client.V1DeleteOptions(propagation_policy=policy) if policy else None
        with anyio.move_on_after(_CLEANUP_SECONDS) as scope:
            try:
                with api_errors(f"deleting {self._where(name)}", retry=False):
                    await self.batch.delete_namespaced_job(name, self.namespace, body=options)
            except KubernetesFail as exc:
                if exc.status == 404:
                    return
                if check:
                    raise
                self.logger.error("%s", exc)
                return
            self.logger.info("%s deleted (%s)", self._where(name), why)
        if scope.cancelled_caught:
            self.logger.error("Deleting %s took over %g seconds: gave up", self._where(name), _CLEANUP_SECONDS)


def _checked_job(
    body: dict[str, Any], namespace: str | None, job_status_poll_interval: float | None
) -> tuple[dict[str, Any], dict[str, Any], str, float]:
    """The Job's body, its metadata, the namespace and the poll interval, checked (ValueError naming the fix)."""
    if not body:
        raise ValueError(
            "RunNamespacedJob needs body (a dict of the Job): pass body= to RunNamespacedJob(...) or to the call"
        )
    meta = body.get("metadata") or {}
    if not (meta.get("name") or meta.get("generateName")):
        raise ValueError("RunNamespacedJob: the Job's body needs metadata.name or metadata.generateName")
    if not namespace:
        raise ValueError("RunNamespacedJob needs a namespace: pass namespace= to the task or the call")
    poll = float(job_status_poll_interval if job_status_poll_interval is not None else 5.0)
    if poll <= 0:
        raise ValueError(f"job_status_poll_interval must be positive, got {job_status_poll_interval!r}")
    return body, meta, namespace, poll


class RunNamespacedJob(Task):
    """Run a Kubernetes Job to completion, streaming its pods' logs to the task logger.

    The task creates the Job from ``body``, watches it until it succeeds or fails (a status read
    every ``job_status_poll_interval`` seconds is only the fallback when a watch ends), and follows
    each of its pods' logs while they run. It returns the logs (a dict of pod name to log text);
    a failed Job fails the task with the failing container's exit code and the last lines of its
    log (`KubernetesJobFail`). The Job and its pods are deleted after a success (unless
    ``delete_job_after_completion=False``), after a failure if ``delete_job_after_failure``, and
    always when the task is cancelled or times out (the deletion is shielded from the cancellation).

    Args:
        body: The Job's manifest as a dict; it needs ``metadata.name`` or ``metadata.generateName``.
            A run-time body is deep-merged into this one. Default None (give it to the call).
        namespace: The namespace (default ``"default"``).
        kube_kwargs: Extra keyword arguments of ``BatchV1Api.create_namespaced_job``. Default None.
        job_status_poll_interval: Seconds each watch request lasts before the status is read again
            (a fallback; progress comes from the watch). Default 5.
        log_level: The level at which pod log lines are logged as they arrive (a name such as
            ``"info"`` or a number), or None to stream nothing (the logs are then read once the Job
            ends). Default ``"info"`` (Prefect 1 defaulted to None).
        delete_job_after_completion: Delete the Job and its pods after a success (default True).
        delete_job_after_failure: Delete them after a failure too (default False: keep them to
            inspect).
        propagation_policy: The deletion's propagation policy, which removes the pods with the Job
            (default ``"Foreground"``; ``"Background"`` works too, ``"Orphan"`` keeps the pods).
        log_tail_lines: Lines of the failing pod's log quoted in the failure message (default 20).
        kube_config: The explicit configuration (a kubeconfig dict or file path, or a
            ``Configuration``; may be lazy). Default None: in-cluster, then the kubeconfig file.
        kube_context: The kubeconfig context (default None: the current one).
        kubernetes_api_key: A bearer token, or a lazy default such as ``Secret("K8S_TOKEN")``
            (default None).
        kubernetes_api_key_secret: The name of a secret holding the token, looked up when
            ``kubernetes_api_key`` is None (default ``"KUBERNETES_API_KEY"``).
        **kwargs: `aflow.Task` attributes (``timeout`` cancels the run and deletes the Job).
    """

    def __init__(
        self,
        body: dict[str, Any] | None = None,
        namespace: str = "default",
        kube_kwargs: dict[str, Any] | None = None,
        job_status_poll_interval: float = 5.0,
        log_level: int | str | None = "info",
        delete_job_after_completion: bool = True,
        delete_job_after_failure: bool = False,
        propagation_policy: str | None = "Foreground",
        log_tail_lines: int = 20,
        kube_config: Any = None,
        kube_context: str | None = None,
        kubernetes_api_key: Any = None,
        kubernetes_api_key_secret: str | None = "KUBERNETES_API_KEY",
        **kwargs: Any,
    ) -> None:
        log_level_number(log_level)  # fail early on a bad level
        self.body = body
        self.namespace = namespace
        self.kube_kwargs = kube_kwargs
        self.job_status_poll_interval = job_status_poll_interval
        self.log_level = log_level
        self.delete_job_after_completion = delete_job_after_completion
        self.delete_job_after_failure = delete_job_after_failure
        self.propagation_policy = propagation_policy
        self.log_tail_lines = log_tail_lines
        self.kube_config = kube_config
        self.kube_context = kube_context
        self.kubernetes_api_key = kubernetes_api_key
        self.kubernetes_api_key_secret = kubernetes_api_key_secret
        super().__init__(**kwargs)

    @defaults_from_attrs(
        "body",
        "namespace",
        "kube_kwargs",
        "job_status_poll_interval",
        "log_level",
        "delete_job_after_completion",
        "delete_job_after_failure",
        *CONNECTION_ARGS,
    )
    async def run(
        self,
        body: dict[str, Any] | None = None,
        namespace: str | None = None,
        kube_kwargs: dict[str, Any] | None = None,
        job_status_poll_interval: float | None = None,
        log_level: int | str | None = None,
        delete_job_after_completion: bool | None = None,
        delete_job_after_failure: bool | None = None,
        kube_config: Any = None,
        kube_context: str | None = None,
        kubernetes_api_key: Any = None,
        kubernetes_api_key_secret: str | None = None,
    ) -> dict[str, str]:
        """Create the Job, watch it to completion and return its logs.

        Args:
            body: Deep-merged into the task's ``body``.
            namespace: Defaults to the task's ``namespace``.
            kube_kwargs: Update the task's ``kube_kwargs``.
            job_status_poll_interval: Defaults to the task's.
            log_level: Defaults to the task's (an explicit None streams nothing).
            delete_job_after_completion: Defaults to the task's.
            delete_job_after_failure: Defaults to the task's.
            kube_config: Defaults to the task's.
            kube_context: Defaults to the task's.
            kubernetes_api_key: Defaults to the task's.
            kubernetes_api_key_secret: Defaults to the task's.

        Returns:
            The logs of the Job's pods: a dict of pod name to log text.

        Raises:
            ValueError: If no body (or no name in it) or no namespace was given.
            KubernetesJobFail: If the Job fails.
            KubernetesFail: If the API answers with an error.
        """
        init_body = self.body
        if init_body is not None and is_lazy(init_body):
            init_body = await resolve_lazy(init_body)
        body, meta, namespace, poll = _checked_job(deep_merge(init_body, body), namespace, job_status_poll_interval)
        level = log_level_number(log_level)
        kube_kwargs = {**(self.kube_kwargs or {}), **(kube_kwargs or {})}

        connect = await kube_client(kube_config, kube_context, kubernetes_api_key, kubernetes_api_key_secret)
        async with connect as api:
            job_run = _JobRun(self, api, namespace, poll, level)
            shown = meta.get("name") or meta.get("generateName")
            why = "cancelled"

            async def undo(made: Any) -> None:
                await job_run.delete(made.metadata.name, self.propagation_policy, why, check=False)

            # the Job's name (generateName) comes with the answer: a cancellation landing meanwhile
            # waits for it, then deletes the Job, so none is left running unknown
            with api_errors(f"creating Job {shown!r} in namespace {namespace!r}", retry=False):
                create = job_run.batch.create_namespaced_job(namespace, body, **kube_kwargs)
                created = await to_the_end(create, undo, limit=_CLEANUP_SECONDS)
            name: str = created.metadata.name
            try:
                self.logger.info("Job %r created in namespace %r", name, namespace)
                outcome, _ = await job_run.wait(name)
                pods = await job_run.pods(name)
                await job_run.read_rest(pods)
                if outcome == "failed":
                    raise job_run.failure(name, pods, self.log_tail_lines)
            except KubernetesJobFail:
                if delete_job_after_failure:
                    await job_run.delete(name, self.propagation_policy, "after its failure", check=False)
                raise
            except BaseException as exc:
                why = "cancelled" if isinstance(exc, anyio.get_cancelled_exc_class()) else "the task failed"
                await job_run.delete(name, self.propagation_policy, why, check=False)
                raise
            self.logger.info("Job %r succeeded", name)
            if delete_job_after_completion:
                await job_run.delete(name, self.propagation_policy, "after its success", check=True)
            return job_run.texts()
