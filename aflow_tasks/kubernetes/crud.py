"""Create, delete, list, patch, read and replace namespaced Jobs, Pods, Deployments and Services.

The 24 classes are named as in Prefect 1 (``{Create,Delete,List,Patch,Read,Replace}Namespaced
{Job,Pod,Deployment,Service}``) and take the same arguments: the object's name (``job_name``,
``pod_name``, ``deployment_name`` or ``service_name``), ``body``, ``namespace`` and ``kube_kwargs``
(extra keyword arguments of the API call), plus ``delete_option_kwargs`` for deletes and the
connection arguments of the family. All of them can be given at init and overridden at run time;
a run-time ``body`` is deep-merged into the init ``body`` (nested dicts key by key, the run-time
value winning), and run-time ``kube_kwargs`` update the init ones.

Each task returns what the API returns, as ``kubernetes_asyncio`` model objects (``V1Job``,
``V1PodList``, ``V1Status``...). API errors fail the task with `KubernetesFail` (status, reason
and the API's message; 404 and 409 are named).
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, NamedTuple

from aflow import Task, defaults_from_attrs
from aflow.integration import is_lazy, resolve_lazy

from ._client import CONNECTION_ARGS, CONNECTION_DOC, api_errors, deep_merge, kube_client, require_kubernetes

__all__ = (
    "CreateNamespacedDeployment",
    "CreateNamespacedJob",
    "CreateNamespacedPod",
    "CreateNamespacedService",
    "DeleteNamespacedDeployment",
    "DeleteNamespacedJob",
    "DeleteNamespacedPod",
    "DeleteNamespacedService",
    "ListNamespacedDeployment",
    "ListNamespacedJob",
    "ListNamespacedPod",
    "ListNamespacedService",
    "PatchNamespacedDeployment",
    "PatchNamespacedJob",
    "PatchNamespacedPod",
    "PatchNamespacedService",
    "ReadNamespacedDeployment",
    "ReadNamespacedJob",
    "ReadNamespacedPod",
    "ReadNamespacedService",
    "ReplaceNamespacedDeployment",
    "ReplaceNamespacedJob",
    "ReplaceNamespacedPod",
    "ReplaceNamespacedService",
)


class _Kind(NamedTuple):
    api: str  # the kubernetes_asyncio API class
    suffix: str  # of the API methods: create_<suffix>
    label: str
    name_arg: str


_JOB = _Kind("BatchV1Api", "namespaced_job", "Job", "job_name")
_POD = _Kind("CoreV1Api", "namespaced_pod", "Pod", "pod_name")
_DEPLOYMENT = _Kind("AppsV1Api", "namespaced_deployment", "Deployment", "deployment_name")
_SERVICE = _Kind("CoreV1Api", "namespaced_service", "Service", "service_name")

_VERBS = {  # verb: (takes a name, takes a body, takes delete options, gerund)
    "create": (False, True, False, "creating"),
    "delete": (True, False, True, "deleting"),
    "list": (False, False, False, "listing"),
    "patch": (True, True, False, "patching"),
    "read": (True, False, False, "reading"),
    "replace": (True, True, False, "replacing"),
}

_BODY_DOC = {
    "create": "A dict of the {label} to create (its manifest, camelCase keys as in YAML). Required.",
    "patch": "A dict of the patch (a strategic merge patch). Required.",
    "replace": "A dict of the complete new {label}. Required.",
}


def _arg_names(verb: str, kind: _Kind) -> tuple[str, ...]:
    takes_name, takes_body, takes_delete, _ = _VERBS[verb]
    names: list[str] = []
    if takes_name:
        names.append(kind.name_arg)
    if takes_body:
        names.append("body")
    names += ["namespace", "kube_kwargs"]
    if takes_delete:
        names.append("delete_option_kwargs")
    return (*names, *CONNECTION_ARGS)


def _args_doc(verb: str, kind: _Kind) -> str:
    takes_name, takes_body, takes_delete, _ = _VERBS[verb]
    lines: list[str] = []
    if takes_name:
        lines.append(f"        {kind.name_arg}: The name of the {kind.label}. Required.")
    if takes_body:
        lines.append("        body: " + _BODY_DOC[verb].format(label=kind.label) + " Default None.")
    lines.append('        namespace: The namespace (default ``"default"``).')
    lines.append(
        f"        kube_kwargs: Extra keyword arguments of ``{kind.api}.{verb}_{kind.suffix}`` "
        '(e.g. ``{"pretty": "true"}``). Default None.'
    )
    if takes_delete:
        lines.append(
            "        delete_option_kwargs: Keyword arguments of ``V1DeleteOptions`` "
            '(e.g. ``{"propagation_policy": "Foreground"}``). Default None.'
        )
    return "\n".join(lines) + "\n" + CONNECTION_DOC


def _make_run(cls: type[_NamespacedTask]) -> Any:
    names = _arg_names(cls._verb, cls._kind)
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in names]

    async def run(self: _NamespacedTask, **kwargs: Any) -> Any:
        return await self._execute(kwargs)

    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__doc__ = (
        f"{cls._VERB_TITLE[cls._verb]} (``{cls._kind.api}.{cls._verb}_{cls._kind.suffix}``).\n\n"
        "    Every argument defaults to the task attribute of the same name.\n\n"
        "    Args:\n" + _args_doc(cls._verb, cls._kind) + "\n\n"
        "    Returns:\n        The API's answer, as a kubernetes_asyncio model object.\n\n"
        "    Raises:\n        ValueError: If a required argument is missing.\n"
        "        KubernetesFail: If the API answers with an error.\n"
    )
    run.__qualname__ = f"{cls.__name__}.run"
    return defaults_from_attrs(*names)(run)


class _NamespacedTask(Task):
    """Base of the CRUD tasks: the subclass statement's ``kind`` gives the object kind."""

    _verb: ClassVar[str]
    _kind: ClassVar[_Kind]
    # set by __init__ (the name attribute only on the classes of its kind)
    job_name: str | None
    pod_name: str | None
    deployment_name: str | None
    service_name: str | None
    body: Any
    namespace: str | None
    kube_kwargs: dict[str, Any] | None
    delete_option_kwargs: dict[str, Any] | None
    kube_config: Any
    kube_context: str | None
    kubernetes_api_key: Any
    kubernetes_api_key_secret: str | None
    _VERB_TITLE: ClassVar[dict[str, str]] = {
        "create": "Create the object",
        "delete": "Delete the object",
        "list": "List the objects of the namespace",
        "patch": "Patch the object",
        "read": "Read the object",
        "replace": "Replace the object",
    }

    def __init_subclass__(cls, kind: _Kind | None = None, **kwargs: Any) -> None:
        if kind is not None:
            cls._kind = kind
            cls.run = _make_run(cls)  # type: ignore[method-assign]
            summary = (cls.__doc__ or "").strip()
            cls.__doc__ = (
                f"{summary}\n\n    Args:\n{_args_doc(cls._verb, kind)}\n        **kwargs: `aflow.Task` attributes.\n"
            )
        super().__init_subclass__(**kwargs)

    def __init__(self, **kwargs: Any) -> None:
        for name in _arg_names(self._verb, self._kind):
            default = {"namespace": "default", "kubernetes_api_key_secret": "KUBERNETES_API_KEY"}.get(name)
            setattr(self, name, kwargs.pop(name, default))
        super().__init__(**kwargs)

    async def _init_value(self, name: str) -> Any:
        value = getattr(self, name)
        return await resolve_lazy(value) if value is not None and is_lazy(value) else value

    async def _execute(self, args: dict[str, Any]) -> Any:
        kind, verb = self._kind, self._verb
        takes_name, takes_body, takes_delete, gerund = _VERBS[verb]
        owner = type(self).__name__
        call: dict[str, Any] = {}
        name = args.get(kind.name_arg)
        if takes_name:
            if not name:
                raise ValueError(f"{owner} needs {kind.name_arg}: pass {kind.name_arg}= to {owner}(...) or to the call")
            call["name"] = name
        namespace = args.get("namespace")
        if not namespace:
            raise ValueError(f"{owner} needs a namespace: pass namespace= to {owner}(...) or to the call")
        call["namespace"] = namespace
        if takes_body:
            body = deep_merge(await self._init_value("body"), args.get("body"))
            if not body:
                raise ValueError(
                    f"{owner} needs body (a dict of the {kind.label}): pass body= to {owner}(...) or to the call"
                )
            call["body"] = body
        k8s = require_kubernetes()
        if takes_delete:
            options = {**(await self._init_value("delete_option_kwargs") or {}), **(args["delete_option_kwargs"] or {})}
            call["body"] = k8s.client.V1DeleteOptions(**options)
        kube_kwargs = {**(await self._init_value("kube_kwargs") or {}), **(args.get("kube_kwargs") or {})}
        what = f"{kind.label} {name!r}" if takes_name else f"{kind.label}s" if verb == "list" else kind.label
        if verb == "create":
            meta = call["body"].get("metadata") or {}
            created = meta.get("name") or meta.get("generateName")
            what = f"{kind.label} {created!r}" if created else kind.label
        action = f"{gerund} {what} in namespace {namespace!r}"
        connect = await kube_client(*(args.get(n) for n in CONNECTION_ARGS))
        async with connect as api:
            method = getattr(getattr(k8s.client, kind.api)(api), f"{verb}_{kind.suffix}")
            with api_errors(action):
                return await method(**call, **kube_kwargs)


class _Create(_NamespacedTask):
    _verb = "create"


class _Delete(_NamespacedTask):
    _verb = "delete"


class _List(_NamespacedTask):
    _verb = "list"


class _Patch(_NamespacedTask):
    _verb = "patch"


class _Read(_NamespacedTask):
    _verb = "read"


class _Replace(_NamespacedTask):
    _verb = "replace"


class CreateNamespacedJob(_Create, kind=_JOB):
    """Create a Job (``BatchV1Api.create_namespaced_job``); returns the created ``V1Job``."""


class DeleteNamespacedJob(_Delete, kind=_JOB):
    """Delete a Job; returns the API's ``V1Status``. Pods stay unless a propagation policy says otherwise."""


class ListNamespacedJob(_List, kind=_JOB):
    """List the Jobs of a namespace; returns a ``V1JobList``."""


class PatchNamespacedJob(_Patch, kind=_JOB):
    """Patch a Job; returns the patched ``V1Job``."""


class ReadNamespacedJob(_Read, kind=_JOB):
    """Read a Job; returns a ``V1Job``."""


class ReplaceNamespacedJob(_Replace, kind=_JOB):
    """Replace a Job; returns the new ``V1Job``."""


class CreateNamespacedPod(_Create, kind=_POD):
    """Create a Pod (``CoreV1Api.create_namespaced_pod``); returns the created ``V1Pod``."""


class DeleteNamespacedPod(_Delete, kind=_POD):
    """Delete a Pod; returns the deleted ``V1Pod``."""


class ListNamespacedPod(_List, kind=_POD):
    """List the Pods of a namespace; returns a ``V1PodList``."""


class PatchNamespacedPod(_Patch, kind=_POD):
    """Patch a Pod; returns the patched ``V1Pod``."""


class ReadNamespacedPod(_Read, kind=_POD):
    """Read a Pod; returns a ``V1Pod``."""


class ReplaceNamespacedPod(_Replace, kind=_POD):
    """Replace a Pod; returns the new ``V1Pod``."""


class CreateNamespacedDeployment(_Create, kind=_DEPLOYMENT):
    """Create a Deployment (``AppsV1Api.create_namespaced_deployment``); returns the ``V1Deployment``."""


class DeleteNamespacedDeployment(_Delete, kind=_DEPLOYMENT):
    """Delete a Deployment; returns the API's ``V1Status``."""


class ListNamespacedDeployment(_List, kind=_DEPLOYMENT):
    """List the Deployments of a namespace; returns a ``V1DeploymentList``."""


class PatchNamespacedDeployment(_Patch, kind=_DEPLOYMENT):
    """Patch a Deployment (e.g. ``{"spec": {"replicas": 3}}``); returns the patched ``V1Deployment``."""


class ReadNamespacedDeployment(_Read, kind=_DEPLOYMENT):
    """Read a Deployment; returns a ``V1Deployment``."""


class ReplaceNamespacedDeployment(_Replace, kind=_DEPLOYMENT):
    """Replace a Deployment; returns the new ``V1Deployment``."""


class CreateNamespacedService(_Create, kind=_SERVICE):
    """Create a Service (``CoreV1Api.create_namespaced_service``); returns the created ``V1Service``."""


class DeleteNamespacedService(_Delete, kind=_SERVICE):
    """Delete a Service; returns the deleted ``V1Service``."""


class ListNamespacedService(_List, kind=_SERVICE):
    """List the Services of a namespace; returns a ``V1ServiceList``."""


class PatchNamespacedService(_Patch, kind=_SERVICE):
    """Patch a Service; returns the patched ``V1Service``."""


class ReadNamespacedService(_Read, kind=_SERVICE):
    """Read a Service; returns a ``V1Service``."""


class ReplaceNamespacedService(_Replace, kind=_SERVICE):
    """Replace a Service; returns the new ``V1Service``."""
