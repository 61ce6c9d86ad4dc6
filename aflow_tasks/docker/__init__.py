"""Docker tasks on aiodocker: containers and images, with streamed logs and cleanup on cancellation.

Modelled on Prefect 1's ``prefect.tasks.docker`` (same class names, arguments and returns),
async throughout. Needs the ``docker`` extra: ``pip install aflow-engine[docker]`` (importing this
package does not import aiodocker; running a task does).

Every task takes ``docker_server_url`` (default ``unix:///var/run/docker.sock``; ``tcp://host:port``
works too) and ``extra_docker_kwargs``, the Engine API call's own parameters; ``host_config`` is
the Engine API's ``HostConfig``. The tasks of a flow run share one client per
``docker_server_url``, closed when the run ends (`clients`, an `aflow.integration.ClientFactory`).
The engine's errors fail the task with `DockerFail`, errors reported inside a pull, push or build
stream included.
"""

from __future__ import annotations

from ._client import DockerFail as DockerFail
from ._client import clients as clients
from .containers import CreateContainer as CreateContainer
from .containers import GetContainerLogs as GetContainerLogs
from .containers import ListContainers as ListContainers
from .containers import RemoveContainer as RemoveContainer
from .containers import StartContainer as StartContainer
from .containers import StopContainer as StopContainer
from .containers import WaitOnContainer as WaitOnContainer
from .images import BuildImage as BuildImage
from .images import ListImages as ListImages
from .images import PullImage as PullImage
from .images import PushImage as PushImage
from .images import RemoveImage as RemoveImage
from .images import TagImage as TagImage

__all__ = (
    "BuildImage",
    "CreateContainer",
    "DockerFail",
    "GetContainerLogs",
    "ListContainers",
    "ListImages",
    "PullImage",
    "PushImage",
    "RemoveContainer",
    "RemoveImage",
    "StartContainer",
    "StopContainer",
    "TagImage",
    "WaitOnContainer",
    "clients",
)
