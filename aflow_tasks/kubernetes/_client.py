"""The connection to the Kubernetes API shared by the kubernetes tasks (private).

Configuration is resolved in this order: an explicit ``kube_config`` given to the task (a
kubeconfig dict, the path of a kubeconfig file, or a ``kubernetes_asyncio.client.Configuration``),
else the in-cluster service account (when ``KUBERNETES_SERVICE_HOST`` is set), else the kubeconfig
file (``$KUBECONFIG``, else ``~/.kube/config``), with ``kube_context`` selecting a context. An API
key (``kubernetes_api_key``, or the secret named by ``kubernetes_api_key_secret``) is sent as the
bearer token on top of whichever configuration applies.

Every task of a flow run that uses the same configuration shares one ``ApiClient`` (through
`clients`, an `aflow.integration.ClientFactory`), closed when the run ends, on failure and
cancellation too.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio

from aflow.exceptions import SecretNotFound
from aflow.integration import (
    ClientFactory,
    Failure,
    is_lazy,
    map_errors,
    resolve_lazy,
    retry_after_seconds,
    to_the_end,
)
from aflow.secrets import Secret, register
from aflow.signals import FAIL

__all__ = (
    "CONNECTION_ARGS",
    "CONNECTION_DOC",
    "KubernetesFail",
    "api_errors",
    "api_failure",
    "clients",
    "deep_merge",
    "kube_client",
    "log_level_number",
    "require_kubernetes",
)

CONNECTION_ARGS = ("kube_config", "kube_context", "kubernetes_api_key", "kubernetes_api_key_secret")
"""The connection arguments every kubernetes task takes, at init and at run time."""

CONNECTION_DOC = """\
        kube_config: An explicit configuration: a kubeconfig as a dict, the path of a kubeconfig
            file, or a ``kubernetes_asyncio.client.Configuration`` (may be a lazy default such as
            an `aflow.Secret` holding the kubeconfig). Default None: in-cluster, then the
            kubeconfig file (``$KUBECONFIG`` or ``~/.kube/config``).
        kube_context: The kubeconfig context to use (default None: its current context).
        kubernetes_api_key: A bearer token sent with every request (a lazy default such as
            ``Secret("K8S_TOKEN")`` works). Default None.
        kubernetes_api_key_secret: The name of a secret holding the bearer token, used when
            ``kubernetes_api_key`` is None and the secret exists (default ``"KUBERNETES_API_KEY"``,
            as in Prefect 1; None to never look)."""

IN_CLUSTER_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
IN_CLUSTER_CA_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
POOL_SIZE = 1000
"""Connections per client: a running job holds up to three long-lived streams (job watch, pod
watch, log follow), so the client library's default of 100 would queue a wide fan-out."""

_STATUS_NAMES = {404: "Not found", 409: "Conflict"}


def require_kubernetes() -> Any:
    """Return the ``kubernetes_asyncio`` package, or raise an ImportError naming the extra."""
    try:
        import kubernetes_asyncio.client
        import kubernetes_asyncio.config
    except ImportError as exc:
        raise ImportError("kubernetes tasks need kubernetes-asyncio: pip install aflow-engine[kubernetes]") from exc
    return kubernetes_asyncio


class KubernetesFail(FAIL):
    """The `aflow.signals.FAIL` raised when the Kubernetes API answers with an error.

    Args:
        message: The state's message.
        status: The HTTP status (404, 409...), or None when the API could not be reached.
        reason: The ``reason`` of the API's Status object (``NotFound``, ``AlreadyExists``...).
    """

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def _status_details(body: Any) -> tuple[str | None, str | None]:
    """The ``reason`` and ``message`` of a Status body (JSON text or bytes)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str):
        return None, None
    try:
        data = json.loads(body)
    except ValueError:
        text = body.strip()
        return None, (text[:300] or None)
    if not isinstance(data, dict):
        return None, None
    reason, message = data.get("reason"), data.get("message")
    return (reason if isinstance(reason, str) else None, message if isinstance(message, str) else None)


def api_failure(exc: BaseException, action: str, *, retry: bool = True) -> Failure | None:
    """What an error of the Kubernetes client means (None: not the client's).

    An ``ApiException`` becomes a `KubernetesFail` naming the status and the Status object's
    reason and message; a 429 or 5xx is transient (with ``retry``), honouring ``Retry-After``.
    An ``aiohttp.ClientError`` means the API could not be reached.

    Args:
        exc: The exception.
        action: What was being done, for the message (``"creating Job 'x' in namespace 'ns'"``).
        retry: Whether a 429 or 5xx may retry the task (`aflow.integration.retry_or_fail`).
    """
    k8s = require_kubernetes()
    if isinstance(exc, k8s.client.exceptions.ApiException):
        status = exc.status
        k8s_reason, message = _status_details(exc.body)
        name = _STATUS_NAMES.get(status)
        head = f"{name} ({status})" if name else f"HTTP {status} {exc.reason or ''}".rstrip()
        text = f"Kubernetes API error while {action}: {head}"
        if k8s_reason:
            text += f", reason {k8s_reason}"
        if message:
            text += f": {message}"
        transient = retry and isinstance(status, int) and (status == 429 or status >= 500)
        headers = exc.headers or {}
        return Failure(
            text,
            transient=transient,
            retry_after=retry_after_seconds(headers.get("Retry-After"), date=headers.get("Date")),
            fail=functools.partial(KubernetesFail, status=status, reason=k8s_reason),
        )
    import aiohttp

    if isinstance(exc, aiohttp.ClientError):
        return Failure(f"Kubernetes API unreachable while {action}: {exc}", fail=KubernetesFail)
    return None


def api_errors(action: str, *, retry: bool = True) -> map_errors:
    """Turn Kubernetes API errors raised in the block into `KubernetesFail` (or RETRY).

    A 429 or 5xx answer retries the task while it has retries left (with ``retry``; pass False
    where the caller handles `KubernetesFail` itself); see `api_failure`.

    Args:
        action: What was being done, for the message (``"creating Job 'x' in namespace 'ns'"``).
        retry: Whether a 429 or 5xx may raise `aflow.signals.RETRY`.
    """
    require_kubernetes()
    return map_errors(Exception, lambda exc: api_failure(exc, action, retry=retry))


def deep_merge(base: Mapping[str, Any] | None, override: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``base`` updated with ``override``, recursively for nested dicts (new dicts; inputs untouched).

    Args:
        base: The init-time value.
        override: The run-time value; its keys win, nested dicts are merged key by key.
    """
    out: dict[str, Any] = copy.deepcopy(dict(base or {}))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def log_level_number(value: int | str | None) -> int | None:
    """Normalise a ``log_level`` (a name such as ``"info"`` or a number; None: no logging)."""
    if value is None or value is False:
        return None
    if isinstance(value, bool):
        return logging.INFO
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        level = logging.getLevelName(value.upper())
        if isinstance(level, int):
            return level
    raise ValueError(f"log_level={value!r} is not a logging level: use a name such as 'info' or 'debug', or None")


async def _api_key(value: Any, secret_name: str | None) -> str | None:
    if value is not None and is_lazy(value):
        value = await resolve_lazy(value)
    if value is None and secret_name:
        try:
            value = Secret(secret_name).get()
        except SecretNotFound:
            value = None
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"kubernetes_api_key must be a string (a bearer token), got {type(value).__name__}")
    register(value)
    return value


def _default_kubeconfig() -> str | None:
    """The kubeconfig file to use: the first existing entry of ``$KUBECONFIG``, else ``~/.kube/config``."""
    candidates = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    candidates.append(os.path.join(os.path.expanduser("~"), ".kube", "config"))
    for path in candidates:
        if os.path.isfile(path):
            return path
    return None


def _base_dir(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


async def _from_file(path: str, context: str | None, cfg: Any) -> None:
    yaml: Any = importlib.import_module("yaml")  # a dependency of kubernetes-asyncio (untyped here)
    k8s = require_kubernetes()
    try:
        text = await anyio.Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the kubeconfig file {path!r}: {exc}") from exc
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"the kubeconfig file {path!r} does not hold a kubeconfig mapping")
    loader = k8s.config.kube_config.KubeConfigLoader(
        config_dict=data, config_base_path=_base_dir(path), active_context=context
    )
    await loader.load_and_set(cfg)


def _in_cluster(cfg: Any) -> None:
    k8s = require_kubernetes()
    k8s.config.incluster_config.InClusterConfigLoader(
        token_filename=IN_CLUSTER_TOKEN_FILE, cert_filename=IN_CLUSTER_CA_FILE
    ).load_and_set(cfg)


async def load_configuration(kube_config: Any, context: str | None, api_key: str | None) -> Any:
    """Build a ``Configuration`` from the connection settings (see the module docstring).

    Raises:
        ValueError: If no configuration can be found, or the kubeconfig is invalid.
    """
    k8s = require_kubernetes()
    configuration_cls = k8s.client.Configuration
    config_exc = k8s.config.ConfigException
    try:
        if isinstance(kube_config, configuration_cls):
            cfg = copy.deepcopy(kube_config)
        else:
            cfg = configuration_cls()
            cfg.connection_pool_maxsize = POOL_SIZE
            if isinstance(kube_config, Mapping):
                await k8s.config.load_kube_config_from_dict(
                    dict(kube_config), context=context, client_configuration=cfg
                )
            elif isinstance(kube_config, (str, os.PathLike)):
                await _from_file(os.fspath(kube_config), context, cfg)
            elif kube_config is not None:
                raise TypeError(
                    "kube_config must be a kubeconfig dict, the path of a kubeconfig file or a "
                    f"kubernetes_asyncio Configuration, got {type(kube_config).__name__}"
                )
            elif os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
                await anyio.to_thread.run_sync(_in_cluster, cfg)
            else:
                path = _default_kubeconfig()
                if path is None:
                    raise ValueError(
                        "no Kubernetes configuration found: give the task kube_config= (a kubeconfig dict "
                        "or file path), run it inside a cluster, or create ~/.kube/config (or set $KUBECONFIG)"
                    )
                await _from_file(path, context, cfg)
    except config_exc as exc:
        raise ValueError(f"invalid Kubernetes configuration: {exc}") from exc
    if api_key:
        cfg.api_key["BearerToken"] = api_key if api_key.startswith("Bearer ") else f"Bearer {api_key}"
    return cfg


@asynccontextmanager
async def _open_client(kube_config: Any, context: str | None, api_key: str | None) -> AsyncIterator[Any]:
    """Open an ``ApiClient`` for these settings (the default opener of `clients`)."""
    k8s = require_kubernetes()
    cfg = await load_configuration(kube_config, context, api_key)
    api = k8s.client.ApiClient(configuration=cfg)
    try:
        yield api
    finally:
        await to_the_end(api.close())  # not cut off by a cancellation of the caller


clients: ClientFactory[[Any, str | None, str | None], Any] = ClientFactory("aflow_tasks.kubernetes", _open_client)
"""The kubernetes tasks' client factory: one ``ApiClient`` per configuration per flow run. Its
opener takes ``(kube_config, kube_context, api_key)``; tests inject clients with
``clients.override(opener)`` or ``clients.use(api_client)`` (see `aflow.integration.ClientFactory`)."""


def _config_key(kube_config: Any) -> Any:
    if kube_config is None:
        return None
    if isinstance(kube_config, Mapping):
        return ("dict", json.dumps(kube_config, sort_keys=True, default=str))
    if isinstance(kube_config, (str, os.PathLike)):
        return ("file", os.path.abspath(os.fspath(kube_config)))
    return ("object", id(kube_config))


async def kube_client(
    kube_config: Any = None,
    kube_context: str | None = None,
    kubernetes_api_key: Any = None,
    kubernetes_api_key_secret: str | None = None,
) -> AbstractAsyncContextManager[Any]:
    """The flow run's shared ``ApiClient`` for these settings, as an async context manager.

    Args:
        kube_config: See `CONNECTION_DOC`.
        kube_context: See `CONNECTION_DOC`.
        kubernetes_api_key: See `CONNECTION_DOC`.
        kubernetes_api_key_secret: See `CONNECTION_DOC`.
    """
    require_kubernetes()
    if kube_config is not None and is_lazy(kube_config):
        kube_config = await resolve_lazy(kube_config)
    if isinstance(kube_config, str) and kube_config.lstrip().startswith("{"):
        kube_config = json.loads(kube_config)  # a kubeconfig kept as JSON text in a secret
    api_key = await _api_key(kubernetes_api_key, kubernetes_api_key_secret)
    digest = hashlib.sha256(api_key.encode()).hexdigest() if api_key else None
    return clients.client((_config_key(kube_config), kube_context, digest), kube_config, kube_context, api_key)


def stream_timeout() -> Any:
    """The client timeout of long-lived streams (watches, log follows): connect only, no read limit."""
    import aiohttp

    return aiohttp.ClientTimeout(total=None, sock_connect=30)


async def open_stream(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """Call an API method with ``_preload_content=False``; return the raw response, raising on errors.

    ``kubernetes_asyncio`` checks the status only of preloaded responses, so an error answer here
    becomes the same ``ApiException`` a preloaded call would raise (with the Status body). The
    caller must close the response.
    """
    k8s = require_kubernetes()
    resp = await fn(*args, _preload_content=False, _request_timeout=stream_timeout(), **kwargs)
    if 200 <= resp.status <= 299:
        return resp
    try:
        body = await resp.read()
    finally:
        resp.close()
    exc = k8s.client.exceptions.ApiException(status=resp.status, reason=resp.reason)
    exc.body = body
    raise exc
