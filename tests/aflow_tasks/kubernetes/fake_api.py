"""An in-memory fake Kubernetes API server for the kubernetes task tests.

aiohttp on 127.0.0.1, running in a thread with its own event loop (so it works with any test
loop scope). It serves the routes the tasks use for pods, services and secrets (``/api/v1``),
jobs (``/apis/batch/v1``) and deployments (``/apis/apps/v1``): create (``generateName`` too),
read (and ``/status``), list with label and field selectors, watch (JSON lines, honouring
``timeoutSeconds`` and ``resourceVersion``), replace (409 on a stale resourceVersion), merge patch,
delete (with ``propagationPolicy``), pod logs (``follow``, ``tailLines``) and Status errors (404,
409, 422, 401).

A fake kubelet REALLY runs containers: a Job gets a pod whose first container's ``command`` +
``args`` run as a local subprocess in a process group of its own (stdout and stderr merged into
the pod's log), and a pod created directly runs too when its container has a command. The exit
code becomes the container's ``terminated.exitCode`` and the Job's ``succeeded``/``failed`` status
with a ``Complete``/``Failed`` condition. Deleting the pod (directly, or through its Job with
propagation ``Foreground``/``Background``) kills the whole process group.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import concurrent.futures
import copy
import json
import os
import random
import signal
import string
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

KINDS: dict[str, tuple[str, str, str]] = {  # plural: (group, version, kind)
    "pods": ("", "v1", "Pod"),
    "services": ("", "v1", "Service"),
    "secrets": ("", "v1", "Secret"),
    "jobs": ("batch", "v1", "Job"),
    "deployments": ("apps", "v1", "Deployment"),
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _suffix() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=5))


def _merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _labels_match(selector: str | None, labels: dict[str, str]) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.strip() not in labels:
            return False
    return True


def _fields_match(selector: str | None, obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    for term in filter(None, (selector or "").split(",")):
        key, _, value = term.partition("=")
        if key == "metadata.name" and meta.get("name") != value:
            return False
        if key == "metadata.namespace" and meta.get("namespace") != value:
            return False
    return True


@dataclass
class PodRun:
    """A container the fake kubelet runs."""

    log: bytearray = field(default_factory=bytearray)
    done: bool = False
    pid: int | None = None
    exit_code: int | None = None
    proc: asyncio.subprocess.Process | None = None


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class FakeKube:
    """The fake API server: `start` it (returns its URL), `stop` it; inspect it from tests."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token  # when set, every request needs "Authorization: Bearer <token>"
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.events: list[tuple[int, str, str, str, dict[str, Any]]] = []  # (rv, type, plural, ns, object)
        self.rv = 0
        self.runs: dict[tuple[str, str], PodRun] = {}
        self.pids: dict[str, int] = {}  # pod name: pid of its container's process
        self.killed: list[str] = []  # pods whose processes were killed by a deletion
        self.deleted: list[tuple[str, str]] = []  # (plural, name)
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path?query, Authorization)
        self.closing = False
        self.answer_delay = 0.0  # seconds a create waits, after creating, before it answers
        self._changed: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle (called from the test's thread) -------------------------------------------------

    def start(self) -> str:
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                ready.set_result(loop.run_until_complete(self._start()))
            except BaseException as exc:
                ready.set_exception(exc)
                return
            loop.run_forever()

        self._thread = threading.Thread(target=main, name="fake-kube", daemon=True)
        self._thread.start()
        self.url = ready.result(timeout=10)
        return self.url

    def stop(self) -> None:
        assert self._loop is not None
        assert self._thread is not None
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop and return its result (for inspecting state safely)."""
        assert self._loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    async def wait_for(self, predicate: Callable[[], Any], limit: float = 30) -> Any:
        """Wait (from the test's loop) until ``predicate()`` (run on the server's loop) is truthy."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._wait_for(predicate, limit), self._loop)
        return await asyncio.wrap_future(future)

    def objects_of(self, plural: str, namespace: str = "default") -> dict[str, dict[str, Any]]:
        """A snapshot of the stored objects of a kind, by name."""
        found: dict[str, dict[str, Any]] = self.call(
            lambda: {n: copy.deepcopy(o) for (p, ns, n), o in self.objects.items() if p == plural and ns == namespace}
        )
        return found

    def put(self, plural: str, obj: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
        """Store an object directly (no kubelet), e.g. a Secret."""
        created: dict[str, Any] = self.call(lambda: self._create(plural, namespace, copy.deepcopy(obj)))
        return created

    # -- internals (on the server's loop) -----------------------------------------------------------

    async def _start(self) -> str:
        self._changed = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        self.closing = True
        self._notify()
        for run in list(self.runs.values()):
            self._kill(run)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        assert self._runner is not None
        await self._runner.cleanup()

    async def _wait_for(self, predicate: Callable[[], Any], limit: float) -> Any:
        async with asyncio.timeout(limit):
            while True:
                assert self._changed is not None
                changed = self._changed
                value = predicate()
                if value:
                    return value
                await changed.wait()

    def _notify(self) -> None:
        assert self._changed is not None
        self._changed.set()
        self._changed = asyncio.Event()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _emit(self, kind: str, plural: str, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append((self.rv, kind, plural, ns, copy.deepcopy(obj)))
        self._notify()
        return obj

    def _store(self, kind: str, plural: str, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[(plural, ns, obj["metadata"]["name"])] = obj
        return copy.deepcopy(self._emit(kind, plural, ns, obj))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        self.requests.append((request.method, request.path_qs, auth))
        try:
            if self.token is not None and auth != f"Bearer {self.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            return await self._route(request)
        except ApiError as exc:
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": exc.message,
                "reason": exc.reason,
                "code": exc.code,
            }
            return web.json_response(status, status=exc.code)

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = request.path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            group, rest = "", parts[2:]
        elif len(parts) > 3 and parts[0] == "apis":
            group, rest = parts[1], parts[3:]
        else:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource {request.path}")
        if len(rest) < 3 or rest[0] != "namespaces" or rest[2] not in KINDS or KINDS[rest[2]][0] != group:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource {request.path}")
        ns, plural = rest[1], rest[2]
        name = rest[3] if len(rest) > 3 else None
        sub = rest[4] if len(rest) > 4 else None
        query = request.query
        method = request.method
        if name is None:
            if method == "GET" and query.get("watch") in ("true", "1", "True"):
                return await self._watch(request, plural, ns)
            if method == "GET":
                return web.json_response(self._list(plural, ns, query))
            if method == "POST":
                body = await request.json()
                created = self._create(plural, ns, body)
                if self.answer_delay:  # created, but the client hears of it only later
                    await asyncio.sleep(self.answer_delay)
                return web.json_response(created, status=201)
        elif sub == "log" and plural == "pods" and method == "GET":
            return await self._log(request, ns, name)
        elif sub in (None, "status"):
            if method == "GET":
                return web.json_response(copy.deepcopy(self._get(plural, ns, name)))
            if method == "PUT":
                return web.json_response(self._replace(plural, ns, name, await request.json()))
            if method == "PATCH":
                patch = await request.json()
                if not isinstance(patch, dict):
                    raise ApiError(415, "UnsupportedMediaType", "only merge patches are supported by the fake")
                return web.json_response(self._patch(plural, ns, name, patch))
            if method == "DELETE":
                options = await request.json() if request.can_read_body else {}
                policy = query.get("propagationPolicy") or (options or {}).get("propagationPolicy")
                return web.json_response(self._delete(plural, ns, name, policy))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {request.path}")

    def _get(self, plural: str, ns: str, name: str) -> dict[str, Any]:
        obj = self.objects.get((plural, ns, name))
        if obj is None:
            group = KINDS[plural][0]
            raise ApiError(404, "NotFound", f'{plural}{"." + group if group else ""} "{name}" not found')
        return obj

    def _list(self, plural: str, ns: str, query: Any) -> dict[str, Any]:
        group, version, kind = KINDS[plural]
        items = [
            copy.deepcopy(o)
            for (p, n, _), o in self.objects.items()
            if p == plural
            and n == ns
            and _labels_match(query.get("labelSelector"), o["metadata"].get("labels") or {})
            and _fields_match(query.get("fieldSelector"), o)
        ]
        return {
            "kind": f"{kind}List",
            "apiVersion": f"{group}/{version}" if group else version,
            "metadata": {"resourceVersion": str(self.rv)},
            "items": items,
        }

    def _validate(self, plural: str, body: dict[str, Any]) -> None:
        def containers_ok(pod_spec: Any) -> bool:
            containers = (pod_spec or {}).get("containers") or []
            return bool(containers) and all(isinstance(c, dict) and c.get("name") for c in containers)

        spec = body.get("spec") or {}
        if plural == "pods" and not containers_ok(spec):
            raise ApiError(422, "Invalid", "Pod is invalid: spec.containers: Required value")
        if plural in ("jobs", "deployments") and not containers_ok((spec.get("template") or {}).get("spec")):
            raise ApiError(
                422, "Invalid", f"{KINDS[plural][2]} is invalid: spec.template.spec.containers: Required value"
            )

    def _create(self, plural: str, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        group, version, kind = KINDS[plural]
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be an object")
        meta = body.setdefault("metadata", {})
        name = meta.get("name") or (meta["generateName"] + _suffix() if meta.get("generateName") else None)
        if not name:
            raise ApiError(422, "Invalid", f"{kind} is invalid: metadata.name: Required value")
        if (plural, ns, name) in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural}{"." + group if group else ""} "{name}" already exists')
        self._validate(plural, body)
        meta.update(name=name, namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=_now())
        body["kind"], body["apiVersion"] = kind, f"{group}/{version}" if group else version
        if plural == "secrets":
            data = body.setdefault("data", {})
            for key, value in (body.pop("stringData", None) or {}).items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        elif plural == "jobs":
            labels = {"job-name": name, "controller-uid": meta["uid"], "batch.kubernetes.io/job-name": name}
            template = body["spec"]["template"]
            template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
            body["spec"].setdefault("selector", {"matchLabels": {"controller-uid": meta["uid"]}})
            body["status"] = {}
        elif plural == "pods":
            body["status"] = {"phase": "Pending"}
        elif plural == "deployments":
            body["status"] = {"replicas": 0}
        created = self._store("ADDED", plural, ns, body)
        if plural == "jobs":
            self._spawn(self._run_job(ns, name))
        elif plural == "pods" and self._argv(body):
            self._spawn(self._run_pod(ns, name))
        return created

    def _replace(self, plural: str, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        old = self._get(plural, ns, name)
        meta = body.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        given = meta.get("resourceVersion")
        if given and given != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
            )
        self._validate(plural, body)
        for key in ("name", "namespace", "uid", "creationTimestamp"):
            meta[key] = old["metadata"][key]
        body["kind"], body["apiVersion"] = old["kind"], old["apiVersion"]
        if "status" in old:
            body["status"] = old["status"]
        return self._store("MODIFIED", plural, ns, body)

    def _patch(self, plural: str, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(self._get(plural, ns, name))
        _merge_patch(obj, patch)
        return self._store("MODIFIED", plural, ns, obj)

    def _delete(self, plural: str, ns: str, name: str, policy: str | None) -> dict[str, Any]:
        obj = self._get(plural, ns, name)
        del self.objects[(plural, ns, name)]
        self.deleted.append((plural, name))
        self._emit("DELETED", plural, ns, obj)
        if plural == "pods":
            run = self.runs.get((ns, name))
            if run is not None and not run.done:
                self.killed.append(name)
                self._kill(run)
        if plural == "jobs" and policy in ("Foreground", "Background"):
            for (p, n, pod_name), pod in list(self.objects.items()):
                if p == "pods" and n == ns and (pod["metadata"].get("labels") or {}).get("job-name") == name:
                    self._delete("pods", ns, pod_name, None)
        if plural in ("pods", "services", "secrets"):
            return copy.deepcopy(obj)
        group = KINDS[plural][0]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "group": group, "kind": plural, "uid": obj["metadata"]["uid"]},
        }

    # -- watches and logs ---------------------------------------------------------------------------

    async def _watch(self, request: web.Request, plural: str, ns: str) -> web.StreamResponse:
        query = request.query
        timeout = float(query.get("timeoutSeconds") or 300)
        labels, fields = query.get("labelSelector"), query.get("fieldSelector")

        def matches(obj: dict[str, Any]) -> bool:
            return _labels_match(labels, obj["metadata"].get("labels") or {}) and _fields_match(fields, obj)

        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        since = query.get("resourceVersion")
        pending: list[tuple[str, dict[str, Any]]] = []
        if since in (None, "", "0"):
            pending = [("ADDED", copy.deepcopy(o)) for (p, n, _), o in self.objects.items() if p == plural and n == ns]
            index = len(self.events)
        else:
            index = bisect.bisect_right([e[0] for e in self.events], int(since))
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while not self.closing:
                while index < len(self.events):
                    _, kind, p, n, obj = self.events[index]
                    index += 1
                    if p == plural and n == ns:
                        pending.append((kind, obj))
                for kind, obj in pending:
                    if matches(obj):
                        await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                pending = []
                assert self._changed is not None
                changed = self._changed
                if index < len(self.events):
                    continue
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(changed.wait(), remaining)
                except TimeoutError:
                    break
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the client stopped watching
        return response

    async def _log(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        self._get("pods", ns, name)
        run = self.runs.get((ns, name)) or PodRun(done=True)
        follow = request.query.get("follow") in ("true", "1", "True")
        tail = request.query.get("tailLines")
        data = bytes(run.log)
        if tail is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(tail) :]) if int(tail) > 0 else b""
        if not follow:
            return web.Response(body=data, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent = len(run.log)
        try:
            if data:
                await response.write(data)
            while not self.closing:
                assert self._changed is not None
                changed = self._changed
                if len(run.log) > sent:
                    chunk = bytes(run.log[sent:])
                    sent += len(chunk)
                    await response.write(chunk)
                    continue
                if run.done:
                    break
                await changed.wait()
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        return response

    # -- the kubelet ----------------------------------------------------------------------------------

    @staticmethod
    def _argv(pod: dict[str, Any]) -> list[str]:
        container = pod["spec"]["containers"][0]
        return [*(container.get("command") or []), *(container.get("args") or [])]

    def _kill(self, run: PodRun) -> None:
        if run.pid is not None and not run.done:
            try:
                os.killpg(run.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _set_pod_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        pod = self.objects.get(("pods", ns, name))
        if pod is not None:
            pod["status"] = status
            self._emit("MODIFIED", "pods", ns, pod)

    async def _run_job(self, ns: str, job_name: str) -> None:
        """Run the Job's pods one at a time: a failed pod is replaced until ``backoffLimit`` (default 6)."""
        job = self.objects[("jobs", ns, job_name)]
        backoff = job["spec"].get("backoffLimit", 6)
        started, failed = _now(), 0
        while True:
            pod_name = self._make_pod(ns, job)
            job["status"] = {"active": 1, "startTime": started, **({"failed": failed} if failed else {})}
            self._emit("MODIFIED", "jobs", ns, job)
            code = await self._run_pod(ns, pod_name)
            current = self.objects.get(("jobs", ns, job_name))
            if current is None or code is None:
                return
            job = current
            ok = code == 0
            failed += 0 if ok else 1
            if not ok and failed <= backoff:
                continue  # the Job controller replaces the failed pod
            job["status"] = {
                "active": 0,
                "startTime": started,
                "completionTime": _now() if ok else None,
                "succeeded": 1 if ok else 0,
                "failed": failed,
                "conditions": [
                    {
                        "type": "Complete" if ok else "Failed",
                        "status": "True",
                        "reason": None if ok else "BackoffLimitExceeded",
                        "lastTransitionTime": _now(),
                    }
                ],
            }
            self._emit("MODIFIED", "jobs", ns, job)
            return

    def _make_pod(self, ns: str, job: dict[str, Any]) -> str:
        """Create one pod of ``job`` from its template; return its name."""
        job_name = job["metadata"]["name"]
        template = copy.deepcopy(job["spec"]["template"])
        pod_name = f"{job_name}-{_suffix()}"
        meta = template.get("metadata") or {}
        pod = {
            "metadata": {
                **meta,
                "name": pod_name,
                "ownerReferences": [
                    {"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job["metadata"]["uid"]}
                ],
            },
            "spec": template["spec"],
        }
        pod["metadata"].update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=_now())
        pod["kind"], pod["apiVersion"], pod["status"] = "Pod", "v1", {"phase": "Pending"}
        self._store("ADDED", "pods", ns, pod)
        return pod_name

    async def _run_pod(self, ns: str, name: str) -> int | None:
        pod = self.objects[("pods", ns, name)]
        container = pod["spec"]["containers"][0]
        argv = self._argv(pod)
        env = dict(os.environ)
        env.update({e["name"]: str(e.get("value", "")) for e in container.get("env") or ()})
        run = PodRun()
        self.runs[(ns, name)] = run
        base = {"name": container["name"], "image": container.get("image", "fake"), "imageID": "fake://image"}
        started = _now()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=container.get("workingDir"),
            )
        except OSError as exc:
            run.log += f"exec failed: {exc}\n".encode()
            code = 128
        else:
            run.proc, run.pid = proc, proc.pid
            self.pids[name] = proc.pid
            self._set_pod_status(
                ns,
                name,
                {
                    "phase": "Running",
                    "startTime": started,
                    "containerStatuses": [
                        {**base, "ready": True, "restartCount": 0, "state": {"running": {"startedAt": started}}}
                    ],
                },
            )
            assert proc.stdout is not None
            while chunk := await proc.stdout.read(65536):
                run.log += chunk
                self._notify()
            code = await proc.wait()
            if code < 0:  # killed by a signal: the shell convention
                code = 128 - code
        run.done, run.exit_code = True, code
        self._notify()
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": _now(),
        }
        self._set_pod_status(
            ns,
            name,
            {
                "phase": "Succeeded" if code == 0 else "Failed",
                "startTime": started,
                "containerStatuses": [{**base, "ready": False, "restartCount": 0, "state": {"terminated": terminated}}],
            },
        )
        return code
