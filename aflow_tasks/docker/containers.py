"""Docker container tasks: create, start, stop, remove, list, read logs, and wait on a container.

Modelled on Prefect 1's ``prefect.tasks.docker.containers`` (same names, arguments and returns),
on aiodocker. `WaitOnContainer` streams the container's output to the task logger while it runs,
fails with the container id and exit code, and stops and removes the container when the task is
cancelled or times out.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

import anyio

from aflow import Task, defaults_from_attrs
from aflow.integration import cleanup

from ._client import (
    DEFAULT_URL,
    DockerFail,
    api_errors,
    container_output,
    docker_client,
    request,
    require_aiodocker,
)

__all__ = (
    "CreateContainer",
    "GetContainerLogs",
    "ListContainers",
    "RemoveContainer",
    "StartContainer",
    "StopContainer",
    "WaitOnContainer",
)

_DRAIN_SECONDS = 10.0  # how long the log stream may take to end once the container has exited
_TAIL_LINES = 20  # log lines quoted in a failure message


def _need(value: Any, name: str, task: str) -> None:
    if not value:
        raise ValueError(f"{task} needs {name}: pass {name}= to {task}(...) or to the call")


def _split(value: str | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else list(value)


def _env(value: Mapping[str, Any] | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return [f"{key}={val}" for key, val in value.items()]
    return list(value)


def _volumes(value: str | list[str] | None) -> dict[str, dict[str, Any]] | None:
    if value is None:
        return None
    return {path: {} for path in ([value] if isinstance(value, str) else value)}


class CreateContainer(Task):
    """Create a Docker container (optionally with a command to run); return its id.

    Args:
        image_name: The image to run (required, here or in the call).
        container_name: A name for the container (default None: the engine picks one).
        command: The command, a list or a string split as a shell would (default None: the image's).
        detach: Create it without attaching stdout/stderr (default False).
        entrypoint: The entrypoint, a list or a string (default None: the image's).
        environment: Environment variables, a dict or a list of ``"NAME=value"`` strings.
        volumes: A path (or list of paths) inside the container to use as volumes.
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``; ``tcp://host:port``
            works too).
        host_config: The Engine API's ``HostConfig`` object, in its names (``{"NetworkMode": "none",
            "Binds": [...], "Memory": ...}``). Default None.
        extra_docker_kwargs: More fields of the Engine API's container create body (``Labels``,
            ``WorkingDir``, ``User``...), merged over the ones built from the arguments.
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        image_name: str | None = None,
        container_name: str | None = None,
        command: str | list[str] | None = None,
        detach: bool = False,
        entrypoint: str | list[str] | None = None,
        environment: dict[str, Any] | list[str] | None = None,
        volumes: str | list[str] | None = None,
        docker_server_url: str = DEFAULT_URL,
        host_config: dict[str, Any] | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.image_name = image_name
        self.container_name = container_name
        self.command = command
        self.detach = detach
        self.entrypoint = entrypoint
        self.environment = environment
        self.volumes = volumes
        self.docker_server_url = docker_server_url
        self.host_config = host_config
        self.extra_docker_kwargs = extra_docker_kwargs
        super().__init__(**kwargs)

    @defaults_from_attrs(
        "image_name",
        "container_name",
        "command",
        "detach",
        "entrypoint",
        "environment",
        "volumes",
        "docker_server_url",
        "host_config",
        "extra_docker_kwargs",
    )
    async def run(
        self,
        image_name: str | None = None,
        container_name: str | None = None,
        command: str | list[str] | None = None,
        detach: bool | None = None,
        entrypoint: str | list[str] | None = None,
        environment: dict[str, Any] | list[str] | None = None,
        volumes: str | list[str] | None = None,
        docker_server_url: str | None = None,
        host_config: dict[str, Any] | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """Create the container.

        Args:
            image_name: Defaults to the task's.
            container_name: Defaults to the task's.
            command: Defaults to the task's.
            detach: Defaults to the task's.
            entrypoint: Defaults to the task's.
            environment: Defaults to the task's.
            volumes: Defaults to the task's.
            docker_server_url: Defaults to the task's.
            host_config: Defaults to the task's.
            extra_docker_kwargs: Defaults to the task's.

        Returns:
            The new container's id.

        Raises:
            ValueError: If no image_name was given.
            DockerFail: If the engine refuses (an unknown image...).
        """
        _need(image_name, "image_name", "CreateContainer")
        attach = not detach
        config: dict[str, Any] = {
            "Image": image_name,
            "AttachStdin": False,
            "AttachStdout": attach,
            "AttachStderr": attach,
        }
        optional = {
            "Cmd": _split(command),
            "Entrypoint": _split(entrypoint),
            "Env": _env(environment),
            "Volumes": _volumes(volumes),
            "HostConfig": host_config,
        }
        config.update({key: value for key, value in optional.items() if value is not None})
        config.update(extra_docker_kwargs or {})
        params = {"name": container_name} if container_name else {}
        self.logger.debug("Creating container from image %s with command: %s", image_name, command)
        async with docker_client(docker_server_url) as docker:
            with api_errors(f"creating a container from image {image_name!r}"):
                created = await docker._query_json("containers/create", "POST", params=params, data=config)
        container_id: str = created["Id"]
        self.logger.debug("Created container %s from image %s", container_id, image_name)
        return container_id


class _ContainerTask(Task):
    """A task acting on one container: ``container_id``, ``docker_server_url``, ``extra_docker_kwargs``.

    Args:
        container_id: The container's id (or name); required, here or in the call.
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``).
        extra_docker_kwargs: The Engine API call's query parameters (default None).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        container_id: str | None = None,
        docker_server_url: str = DEFAULT_URL,
        extra_docker_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.container_id = container_id
        self.docker_server_url = docker_server_url
        self.extra_docker_kwargs = extra_docker_kwargs
        super().__init__(**kwargs)

    async def _call(
        self,
        container_id: str | None,
        url: str | None,
        extra: dict[str, Any] | None,
        method: str,
        suffix: str,
        doing: str,
    ) -> None:
        _need(container_id, "container_id", type(self).__name__)
        path = f"containers/{container_id}{suffix}"
        self.logger.debug("%s container %s", doing.capitalize(), container_id)
        async with docker_client(url) as docker:
            with api_errors(f"{doing} container {container_id!r}"):
                await request(docker, path, method, params=extra)
        self.logger.debug("Done %s container %s", doing, container_id)


class StartContainer(_ContainerTask):
    """Start a created container (it runs the command it was created with).

    Args:
        container_id: The container's id (or name); required, here or in the call.
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``).
        extra_docker_kwargs: Query parameters of the Engine API's ``POST /containers/{id}/start``
            (``detachKeys``). Default None.
        **kwargs: `aflow.Task` attributes.
    """

    @defaults_from_attrs("container_id", "docker_server_url", "extra_docker_kwargs")
    async def run(
        self,
        container_id: str | None = None,
        docker_server_url: str | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Start the container.

        Args:
            container_id: Defaults to the task's.
            docker_server_url: Defaults to the task's.
            extra_docker_kwargs: Defaults to the task's.

        Raises:
            ValueError: If no container_id was given.
            DockerFail: If the engine refuses (no such container...).
        """
        await self._call(container_id, docker_server_url, extra_docker_kwargs, "POST", "/start", "starting")


class StopContainer(_ContainerTask):
    """Stop a running container (SIGTERM, then SIGKILL after the grace period).

    Args:
        container_id: The container's id (or name); required, here or in the call.
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``).
        extra_docker_kwargs: Query parameters of the Engine API's ``POST /containers/{id}/stop``
            (``t``: seconds before the kill, ``signal``). Default None.
        **kwargs: `aflow.Task` attributes.
    """

    @defaults_from_attrs("container_id", "docker_server_url", "extra_docker_kwargs")
    async def run(
        self,
        container_id: str | None = None,
        docker_server_url: str | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Stop the container (a container already stopped is fine).

        Args:
            container_id: Defaults to the task's.
            docker_server_url: Defaults to the task's.
            extra_docker_kwargs: Defaults to the task's.

        Raises:
            ValueError: If no container_id was given.
            DockerFail: If the engine refuses (no such container...).
        """
        await self._call(container_id, docker_server_url, extra_docker_kwargs, "POST", "/stop", "stopping")


class RemoveContainer(_ContainerTask):
    """Remove a container.

    Args:
        container_id: The container's id (or name); required, here or in the call.
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``).
        extra_docker_kwargs: Query parameters of the Engine API's ``DELETE /containers/{id}``
            (``force``, ``v``, ``link``). Default None.
        **kwargs: `aflow.Task` attributes.
    """

    @defaults_from_attrs("container_id", "docker_server_url", "extra_docker_kwargs")
    async def run(
        self,
        container_id: str | None = None,
        docker_server_url: str | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Remove the container.

        Args:
            container_id: Defaults to the task's.
            docker_server_url: Defaults to the task's.
            extra_docker_kwargs: Defaults to the task's.

        Raises:
            ValueError: If no container_id was given.
            DockerFail: If the engine refuses (a running container without ``force``...).
        """
        await self._call(container_id, docker_server_url, extra_docker_kwargs, "DELETE", "", "removing")


class ListContainers(Task):
    """List containers (running ones only, unless ``all_containers``).

    Args:
        all_containers: List stopped containers too (default False).
        filters: The Engine API's filters (``{"label": ["a=b"], "status": ["exited"]}``). Default None.
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``).
        extra_docker_kwargs: More query parameters of ``GET /containers/json`` (``limit``, ``size``).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        all_containers: bool = False,
        filters: dict[str, Any] | None = None,
        docker_server_url: str = DEFAULT_URL,
        extra_docker_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.all_containers = all_containers
        self.filters = filters
        self.docker_server_url = docker_server_url
        self.extra_docker_kwargs = extra_docker_kwargs
        super().__init__(**kwargs)

    @defaults_from_attrs("all_containers", "filters", "docker_server_url", "extra_docker_kwargs")
    async def run(
        self,
        all_containers: bool | None = None,
        filters: dict[str, Any] | None = None,
        docker_server_url: str | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """List the containers.

        Args:
            all_containers: Defaults to the task's.
            filters: Defaults to the task's.
            docker_server_url: Defaults to the task's.
            extra_docker_kwargs: Defaults to the task's.

        Returns:
            One dict per container, as the Engine API gives it (``Id``, ``Names``, ``State``...).
        """
        params: dict[str, Any] = {"all": bool(all_containers)}
        if filters:
            params["filters"] = filters
        params.update(extra_docker_kwargs or {})
        async with docker_client(docker_server_url) as docker:
            with api_errors("listing containers"):
                found: list[dict[str, Any]] = await docker._query_json("containers/json", params=params)
        return found


async def _logs(docker: Any, container_id: str, extra: Mapping[str, Any] | None) -> str:
    params = {"stdout": True, "stderr": True, **dict(extra or {})}
    chunks: list[str] = []
    await container_output(docker, container_id, params, chunks.append)
    return "".join(chunks)


class GetContainerLogs(_ContainerTask):
    """Read a container's logs (stdout and stderr) as a string.

    Args:
        container_id: The container's id (or name); required, here or in the call.
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``).
        extra_docker_kwargs: Query parameters of ``GET /containers/{id}/logs`` (``stdout``, ``stderr``,
            ``timestamps``, ``tail``, ``since``). Default None.
        **kwargs: `aflow.Task` attributes.
    """

    @defaults_from_attrs("container_id", "docker_server_url", "extra_docker_kwargs")
    async def run(
        self,
        container_id: str | None = None,
        docker_server_url: str | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """Read the logs.

        Args:
            container_id: Defaults to the task's.
            docker_server_url: Defaults to the task's.
            extra_docker_kwargs: Defaults to the task's.

        Returns:
            The logs so far.

        Raises:
            ValueError: If no container_id was given.
            DockerFail: If the engine refuses (no such container...).
        """
        _need(container_id, "container_id", "GetContainerLogs")
        assert container_id is not None
        async with docker_client(docker_server_url) as docker:
            with api_errors(f"reading the logs of container {container_id!r}"):
                return await _logs(docker, container_id, extra_docker_kwargs)


class WaitOnContainer(_ContainerTask):
    """Wait for a started container to exit, streaming its output to the task logger.

    While the container runs, each line it writes (stdout and stderr) is logged at INFO as it
    comes (``stream_logs``). A non-zero exit code (or an engine error) fails the task naming the
    container and the code, with the last lines of its log (``raise_on_exit_code``). When the task
    is cancelled (a cancelled flow run) or times out, the container is stopped and removed, the
    cleanup shielded from the cancellation and bounded in time.

    Args:
        container_id: The container's id (or name); required, here or in the call.
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``).
        raise_on_exit_code: Fail on a non-zero exit code (default True).
        extra_docker_kwargs: Query parameters of ``POST /containers/{id}/wait`` (``condition``).
        stream_logs: Log the container's output while it runs (default True; Prefect 1 had no
            streaming).
        stop_timeout: Seconds the container gets to stop after SIGTERM on cancellation, before
            SIGKILL (default 10; an aflow addition).
        **kwargs: `aflow.Task` attributes (``timeout`` stops and removes the container).
    """

    def __init__(
        self,
        container_id: str | None = None,
        docker_server_url: str = DEFAULT_URL,
        raise_on_exit_code: bool = True,
        extra_docker_kwargs: dict[str, Any] | None = None,
        stream_logs: bool = True,
        stop_timeout: int = 10,
        **kwargs: Any,
    ) -> None:
        self.raise_on_exit_code = raise_on_exit_code
        self.stream_logs = stream_logs
        self.stop_timeout = stop_timeout
        super().__init__(container_id, docker_server_url, extra_docker_kwargs, **kwargs)

    async def _follow(self, docker: Any, container_id: str, lines: list[str]) -> None:
        """Log the container's output line by line as it comes (never raises)."""
        short = container_id[:12]
        pending = ""

        def on_text(text: str) -> None:
            nonlocal pending
            pending += text
            *complete, pending = pending.split("\n")
            for line in complete:
                lines.append(line)
                self.logger.info("%s: %s", short, line)

        params = {"stdout": True, "stderr": True, "follow": True}
        try:
            await container_output(docker, container_id, params, on_text)
        except Exception as exc:
            self.logger.warning("Could not follow the logs of container %s: %s", container_id, exc)
        if pending:
            lines.append(pending)
            self.logger.info("%s: %s", short, pending)

    async def _stop_and_remove(self, docker: Any, container_id: str) -> None:
        """Stop the container, then remove it (the engine's errors are raised as they are)."""
        aiodocker = require_aiodocker()
        try:
            await request(docker, f"containers/{container_id}/stop", params={"t": self.stop_timeout})
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return  # gone already
            self.logger.warning("Could not stop container %s: %s", container_id, exc)  # the removal kills it
        await request(docker, f"containers/{container_id}", "DELETE", params={"force": True, "v": True})
        self.logger.info("Container %s stopped and removed (the task was cancelled)", container_id)

    @defaults_from_attrs(
        "container_id", "docker_server_url", "raise_on_exit_code", "extra_docker_kwargs", "stream_logs"
    )
    async def run(
        self,
        container_id: str | None = None,
        docker_server_url: str | None = None,
        raise_on_exit_code: bool | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
        stream_logs: bool | None = None,
    ) -> dict[str, Any]:
        """Wait for the container to exit.

        Args:
            container_id: Defaults to the task's.
            docker_server_url: Defaults to the task's.
            raise_on_exit_code: Defaults to the task's.
            extra_docker_kwargs: Defaults to the task's.
            stream_logs: Defaults to the task's.

        Returns:
            The engine's answer: a dict with ``StatusCode`` and ``Error``.

        Raises:
            ValueError: If no container_id was given.
            DockerFail: If the container exits with a non-zero code (with ``raise_on_exit_code``),
                or the engine refuses.
        """
        _need(container_id, "container_id", "WaitOnContainer")
        assert container_id is not None
        lines: list[str] = []
        self.logger.debug("Waiting on container %s", container_id)
        async with docker_client(docker_server_url) as docker:
            try:
                async with anyio.create_task_group() as followers:
                    if stream_logs:
                        followers.start_soon(self._follow, docker, container_id, lines)
                    with api_errors(f"waiting on container {container_id!r}"):
                        params = dict(extra_docker_kwargs or {})
                        result: dict[str, Any] = await docker._query_json(
                            f"containers/{container_id}/wait", "POST", params=params, timeout=None
                        )
                    # the container has exited: its log stream ends by itself; bound the wait
                    followers.cancel_scope.deadline = anyio.current_time() + _DRAIN_SECONDS
            except anyio.get_cancelled_exc_class():
                await cleanup(
                    lambda: self._stop_and_remove(docker, container_id),
                    f"stop and remove container {container_id}",
                    self.logger,
                    expected=lambda exc: getattr(exc, "status", None) == 404,
                    limit=self.stop_timeout + 20.0,
                )
                raise
            code, error = result.get("StatusCode"), result.get("Error")
            if raise_on_exit_code and (error is not None or code):
                if not stream_logs:
                    try:
                        lines = (await _logs(docker, container_id, None)).splitlines()
                        for line in lines:
                            self.logger.error("%s", line)
                    except Exception as exc:
                        self.logger.warning("Could not read the logs of container %s: %s", container_id, exc)
                message = f"{container_id} failed with exit code {code}: {error}"
                tail = lines[-_TAIL_LINES:]
                if tail:
                    message += f"\nlast {len(tail)} log line(s):\n" + "\n".join(tail)
                raise DockerFail(message)
        self.logger.debug("Container %s has finished", container_id)
        return result
