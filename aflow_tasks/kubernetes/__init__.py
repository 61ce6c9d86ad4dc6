"""Kubernetes tasks on kubernetes-asyncio: CRUD of namespaced objects, running Jobs, pod logs, secrets.

Modelled on Prefect 1's ``prefect.tasks.kubernetes``, async throughout: one event loop can run and
watch many Jobs at once. Needs the ``kubernetes`` extra: ``pip install aflow-engine[kubernetes]``
(importing this package does not import kubernetes-asyncio; running a task does).

Every task takes the connection arguments ``kube_config`` (an explicit kubeconfig dict, kubeconfig
file path or ``kubernetes_asyncio.client.Configuration``; lazy defaults such as an `aflow.Secret`
work), ``kube_context``, ``kubernetes_api_key`` (a bearer token, may be lazy) and
``kubernetes_api_key_secret`` (the name of a secret holding one). Without an explicit
configuration the in-cluster service account is used, else ``$KUBECONFIG`` / ``~/.kube/config``.
The tasks of a flow run share one ``ApiClient`` per configuration, closed when the run ends.
API errors fail the task with `KubernetesFail` (HTTP status, the Status reason and message); a
429 or 5xx answer to a single call retries the task while it has retries left. Tests inject
clients through `clients` (an `aflow.integration.ClientFactory`).
"""

from __future__ import annotations

from ._client import KubernetesFail as KubernetesFail
from ._client import clients as clients
from .crud import CreateNamespacedDeployment as CreateNamespacedDeployment
from .crud import CreateNamespacedJob as CreateNamespacedJob
from .crud import CreateNamespacedPod as CreateNamespacedPod
from .crud import CreateNamespacedService as CreateNamespacedService
from .crud import DeleteNamespacedDeployment as DeleteNamespacedDeployment
from .crud import DeleteNamespacedJob as DeleteNamespacedJob
from .crud import DeleteNamespacedPod as DeleteNamespacedPod
from .crud import DeleteNamespacedService as DeleteNamespacedService
from .crud import ListNamespacedDeployment as ListNamespacedDeployment
from .crud import ListNamespacedJob as ListNamespacedJob
from .crud import ListNamespacedPod as ListNamespacedPod
from .crud import ListNamespacedService as ListNamespacedService
from .crud import PatchNamespacedDeployment as PatchNamespacedDeployment
from .crud import PatchNamespacedJob as PatchNamespacedJob
from .crud import PatchNamespacedPod as PatchNamespacedPod
from .crud import PatchNamespacedService as PatchNamespacedService
from .crud import ReadNamespacedDeployment as ReadNamespacedDeployment
from .crud import ReadNamespacedJob as ReadNamespacedJob
from .crud import ReadNamespacedPod as ReadNamespacedPod
from .crud import ReadNamespacedService as ReadNamespacedService
from .crud import ReplaceNamespacedDeployment as ReplaceNamespacedDeployment
from .crud import ReplaceNamespacedJob as ReplaceNamespacedJob
from .crud import ReplaceNamespacedPod as ReplaceNamespacedPod
from .crud import ReplaceNamespacedService as ReplaceNamespacedService
from .job import KubernetesJobFail as KubernetesJobFail
from .job import RunNamespacedJob as RunNamespacedJob
from .pod_logs import ReadNamespacedPodLogs as ReadNamespacedPodLogs
from .secrets import KubernetesSecret as KubernetesSecret
from .secrets import KubernetesSecretRef as KubernetesSecretRef

__all__ = (
    "CreateNamespacedDeployment",
    "CreateNamespacedJob",
    "CreateNamespacedPod",
    "CreateNamespacedService",
    "DeleteNamespacedDeployment",
    "DeleteNamespacedJob",
    "DeleteNamespacedPod",
    "DeleteNamespacedService",
    "KubernetesFail",
    "KubernetesJobFail",
    "KubernetesSecret",
    "KubernetesSecretRef",
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
    "ReadNamespacedPodLogs",
    "ReadNamespacedService",
    "ReplaceNamespacedDeployment",
    "ReplaceNamespacedJob",
    "ReplaceNamespacedPod",
    "ReplaceNamespacedService",
    "RunNamespacedJob",
    "clients",
)
