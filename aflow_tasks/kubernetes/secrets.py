"""Read a key of a Kubernetes Secret: as a task (`KubernetesSecret`) or as a lazy default (`KubernetesSecretRef`)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from aflow import defaults_from_attrs
from aflow.secrets import register
from aflow_tasks.secrets import SecretBase

from ._client import CONNECTION_ARGS, api_errors, kube_client, require_kubernetes

__all__ = ("KubernetesSecret", "KubernetesSecretRef", "read_kubernetes_secret")


async def read_kubernetes_secret(
    secret_name: str,
    secret_key: str,
    namespace: str = "default",
    *,
    raise_if_missing: bool = True,
    kube_kwargs: dict[str, Any] | None = None,
    kube_config: Any = None,
    kube_context: str | None = None,
    kubernetes_api_key: Any = None,
    kubernetes_api_key_secret: str | None = "KUBERNETES_API_KEY",
) -> str | None:
    """Return the base64-decoded value of ``secret_key`` in the Secret ``secret_name`` (registered for redaction).

    Args:
        secret_name: The Secret's name.
        secret_key: The key in its ``data``.
        namespace: Its namespace (default ``"default"``).
        raise_if_missing: Raise ValueError when the key is absent (default True); else return None.
        kube_kwargs: Extra arguments of ``CoreV1Api.read_namespaced_secret``.
        kube_config: See `aflow_tasks.kubernetes` (connection arguments).
        kube_context: See `aflow_tasks.kubernetes`.
        kubernetes_api_key: See `aflow_tasks.kubernetes`.
        kubernetes_api_key_secret: See `aflow_tasks.kubernetes`.

    Raises:
        ValueError: If the key is missing (with ``raise_if_missing``) or its value is not base64.
        KubernetesFail: If the API answers with an error (404 when the Secret does not exist).
    """
    k8s = require_kubernetes()
    connect = await kube_client(kube_config, kube_context, kubernetes_api_key, kubernetes_api_key_secret)
    async with connect as api:
        with api_errors(f"reading Secret {secret_name!r} in namespace {namespace!r}"):
            secret = await k8s.client.CoreV1Api(api).read_namespaced_secret(
                secret_name, namespace, **(kube_kwargs or {})
            )
    data = secret.data or {}
    if secret_key not in data:
        if raise_if_missing:
            keys = ", ".join(sorted(data)) or "none"
            raise ValueError(
                f"Secret {secret_name!r} in namespace {namespace!r} has no key {secret_key!r} (keys: {keys})"
            )
        return None
    try:
        value = base64.b64decode(data[secret_key], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"the value of {secret_key!r} in Secret {secret_name!r} is not base64-encoded UTF-8") from exc
    register(value)
    return value


class KubernetesSecretRef:
    """A reference to a key of a Kubernetes Secret, read when a task runs (a lazy default).

    Give it as a task attribute: ``SomeTask(token=KubernetesSecretRef("api", "token"))`` reads the
    key when the task runs (as `aflow.Secret` does for local secrets). The value is registered for
    redaction; the repr shows no value.

    Args:
        secret_name: The Secret's name.
        secret_key: The key in its ``data``.
        namespace: Its namespace (default ``"default"``).
        **connection: The family's connection arguments (``kube_config``, ``kube_context``,
            ``kubernetes_api_key``, ``kubernetes_api_key_secret``).
    """

    __slots__ = ("connection", "namespace", "secret_key", "secret_name")

    def __init__(self, secret_name: str, secret_key: str, namespace: str = "default", **connection: Any) -> None:
        unknown = set(connection) - set(CONNECTION_ARGS)
        if unknown:
            raise TypeError(f"KubernetesSecretRef got unexpected argument(s): {', '.join(sorted(unknown))}")
        self.secret_name = secret_name
        self.secret_key = secret_key
        self.namespace = namespace
        self.connection = connection

    def __repr__(self) -> str:
        return f"KubernetesSecretRef({self.secret_name!r}, {self.secret_key!r}, namespace={self.namespace!r})"

    async def resolve(self) -> str | None:
        """Read the value now (see `read_kubernetes_secret`)."""
        return await read_kubernetes_secret(self.secret_name, self.secret_key, self.namespace, **self.connection)


class KubernetesSecret(SecretBase):
    """Return the decoded value of a key of a Kubernetes Secret (Prefect 1's ``KubernetesSecret``).

    Its result is never checkpointed or cached (see `aflow_tasks.secrets.SecretBase`), and the value
    is registered for redaction. For a single task attribute, `KubernetesSecretRef` is simpler.

    Args:
        secret_name: The Secret's name. Required (at init or run time).
        secret_key: The key in its ``data``. Required.
        namespace: Its namespace (default ``"default"``).
        kube_kwargs: Extra arguments of ``CoreV1Api.read_namespaced_secret`` (default None).
        kube_config: The explicit configuration (default None; see `aflow_tasks.kubernetes`).
        kube_context: The kubeconfig context (default None).
        kubernetes_api_key: A bearer token or lazy default (default None).
        kubernetes_api_key_secret: The name of a secret holding the token (default ``"KUBERNETES_API_KEY"``).
        cast: A function applied to the decoded value (e.g. ``json.loads``); default None.
        raise_if_missing: Fail when the key is absent (default False: return None, as in Prefect 1).
        **kwargs: `aflow.Task` attributes (see `aflow_tasks.secrets.SecretBase`).
    """

    def __init__(
        self,
        secret_name: str | None = None,
        secret_key: str | None = None,
        namespace: str = "default",
        kube_kwargs: dict[str, Any] | None = None,
        kube_config: Any = None,
        kube_context: str | None = None,
        kubernetes_api_key: Any = None,
        kubernetes_api_key_secret: str | None = "KUBERNETES_API_KEY",
        cast: Callable[[str], Any] | None = None,
        raise_if_missing: bool = False,
        **kwargs: Any,
    ) -> None:
        self.secret_name = secret_name
        self.secret_key = secret_key
        self.namespace = namespace
        self.kube_kwargs = kube_kwargs
        self.kube_config = kube_config
        self.kube_context = kube_context
        self.kubernetes_api_key = kubernetes_api_key
        self.kubernetes_api_key_secret = kubernetes_api_key_secret
        self.cast = cast
        self.raise_if_missing = raise_if_missing
        super().__init__(**kwargs)

    @defaults_from_attrs("secret_name", "secret_key", "namespace", "kube_kwargs", *CONNECTION_ARGS)
    async def run(
        self,
        secret_name: str | None = None,
        secret_key: str | None = None,
        namespace: str | None = None,
        kube_kwargs: dict[str, Any] | None = None,
        kube_config: Any = None,
        kube_context: str | None = None,
        kubernetes_api_key: Any = None,
        kubernetes_api_key_secret: str | None = None,
    ) -> Any:
        """Read the secret.

        Args:
            secret_name: Defaults to the task's.
            secret_key: Defaults to the task's.
            namespace: Defaults to the task's.
            kube_kwargs: Update the task's.
            kube_config: Defaults to the task's.
            kube_context: Defaults to the task's.
            kubernetes_api_key: Defaults to the task's.
            kubernetes_api_key_secret: Defaults to the task's.

        Returns:
            The decoded value (after ``cast``), or None when the key is missing and
            ``raise_if_missing`` is False.

        Raises:
            ValueError: If ``secret_name`` or ``secret_key`` is missing, or the key is absent
                with ``raise_if_missing``.
            KubernetesFail: If the API answers with an error (404 when the Secret does not exist).
        """
        for arg, value in (("secret_name", secret_name), ("secret_key", secret_key), ("namespace", namespace)):
            if not value:
                raise ValueError(f"KubernetesSecret needs {arg}: pass {arg}= to KubernetesSecret(...) or to the call")
        assert secret_name
        assert secret_key
        assert namespace
        value = await read_kubernetes_secret(
            secret_name,
            secret_key,
            namespace,
            raise_if_missing=self.raise_if_missing,
            kube_kwargs={**(self.kube_kwargs or {}), **(kube_kwargs or {})},
            kube_config=kube_config,
            kube_context=kube_context,
            kubernetes_api_key=kubernetes_api_key,
            kubernetes_api_key_secret=kubernetes_api_key_secret,
        )
        if value is None or self.cast is None:
            return value
        result = self.cast(value)
        register(result)
        return result
