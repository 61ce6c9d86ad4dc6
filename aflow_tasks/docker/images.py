"""Docker image tasks: list, pull, push, remove, tag and build images.

Modelled on Prefect 1's ``prefect.tasks.docker.images`` (same names, arguments and returns), on
aiodocker. Pulls, pushes and builds read the engine's progress stream as it comes: an error
reported inside the stream (the engine still answers 200) fails the task with its message, and
``stream_logs`` logs the steps to the task logger while they happen.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from typing import Any

import anyio

from aflow import Task, defaults_from_attrs

from ._client import DEFAULT_URL, api_errors, docker_client, json_stream, log_progress, registry_auth, request

__all__ = ("BuildImage", "ListImages", "PullImage", "PushImage", "RemoveImage", "TagImage")


def _need(value: Any, name: str, task: str) -> None:
    if not value:
        raise ValueError(f"{task} needs {name}: pass {name}= to {task}(...) or to the call")


def _split_auth(extra: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The query parameters and the ``X-Registry-Auth`` header (from an ``auth_config`` entry)."""
    params = dict(extra or {})
    return params, registry_auth(params.pop("auth_config", None))


class ListImages(Task):
    """List the engine's images.

    Args:
        repository_name: Only images of this reference (``"busybox"``, ``"busybox:1.36"``). Default None: all.
        all_layers: Show intermediate images too (default False).
        filters: The Engine API's filters (``{"dangling": ["true"], "label": ["a=b"]}``). Default None.
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``).
        extra_docker_kwargs: More query parameters of ``GET /images/json`` (``digests``).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        repository_name: str | None = None,
        all_layers: bool = False,
        filters: dict[str, Any] | None = None,
        docker_server_url: str = DEFAULT_URL,
        extra_docker_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.repository_name = repository_name
        self.all_layers = all_layers
        self.filters = filters
        self.docker_server_url = docker_server_url
        self.extra_docker_kwargs = extra_docker_kwargs
        super().__init__(**kwargs)

    @defaults_from_attrs("repository_name", "all_layers", "filters", "docker_server_url", "extra_docker_kwargs")
    async def run(
        self,
        repository_name: str | None = None,
        all_layers: bool | None = None,
        filters: dict[str, Any] | None = None,
        docker_server_url: str | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """List the images.

        Args:
            repository_name: Defaults to the task's.
            all_layers: Defaults to the task's.
            filters: Defaults to the task's.
            docker_server_url: Defaults to the task's.
            extra_docker_kwargs: Defaults to the task's.

        Returns:
            One dict per image, as the Engine API gives it (``Id``, ``RepoTags``, ``Size``...).
        """
        all_filters: dict[str, Any] = dict(filters or {})
        if repository_name:
            all_filters["reference"] = [*all_filters.get("reference", []), repository_name]
        params: dict[str, Any] = {"all": bool(all_layers)}
        if all_filters:
            params["filters"] = all_filters
        params.update(extra_docker_kwargs or {})
        async with docker_client(docker_server_url) as docker:
            with api_errors("listing images"):
                found: list[dict[str, Any]] = await docker._query_json("images/json", params=params)
        return found


class PullImage(Task):
    """Pull an image from a registry.

    Args:
        repository: The image's repository (``"busybox"``, ``"registry:5000/team/app"``); required.
        tag: The tag (default None: ``latest``).
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``).
        extra_docker_kwargs: More query parameters of ``POST /images/create`` (``platform``), and
            ``auth_config`` (``{"username", "password", "serveraddress"}``), sent as ``X-Registry-Auth``.
        stream_logs: Log the pull's steps at INFO while they happen (default False).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        repository: str | None = None,
        tag: str | None = None,
        docker_server_url: str = DEFAULT_URL,
        extra_docker_kwargs: dict[str, Any] | None = None,
        stream_logs: bool = False,
        **kwargs: Any,
    ) -> None:
        self.repository = repository
        self.tag = tag
        self.docker_server_url = docker_server_url
        self.extra_docker_kwargs = extra_docker_kwargs
        self.stream_logs = stream_logs
        super().__init__(**kwargs)

    @defaults_from_attrs("repository", "tag", "docker_server_url", "extra_docker_kwargs", "stream_logs")
    async def run(
        self,
        repository: str | None = None,
        tag: str | None = None,
        docker_server_url: str | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
        stream_logs: bool | None = None,
    ) -> str:
        """Pull the image.

        Args:
            repository: Defaults to the task's.
            tag: Defaults to the task's.
            docker_server_url: Defaults to the task's.
            extra_docker_kwargs: Defaults to the task's.
            stream_logs: Defaults to the task's.

        Returns:
            The progress items, one per line (as Prefect 1 gave them).

        Raises:
            ValueError: If no repository was given.
            DockerFail: If the pull fails (an unknown image, a registry refusing), with the stream's error.
        """
        _need(repository, "repository", "PullImage")
        shown = f"{repository}:{tag or 'latest'}"
        params, headers = _split_auth(extra_docker_kwargs)
        params = {"fromImage": repository, "tag": tag or "latest", **params}
        self.logger.debug("Pulling image %s", shown)
        on_item = log_progress(self.logger, f"pull {shown}") if stream_logs else None
        async with docker_client(docker_server_url) as docker:
            items = await json_stream(
                docker, "images/create", f"pulling image {shown}", params=params, headers=headers, on_item=on_item
            )
        self.logger.debug("Pulled image %s", shown)
        return "\n".join(str(item) for item in items)


class PushImage(Task):
    """Push an image to its registry.

    Args:
        repository: The image's repository, registry included (``"127.0.0.1:5000/team/app"``); required.
        tag: The tag (default None: ``latest``).
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``).
        extra_docker_kwargs: More query parameters of ``POST /images/{name}/push``, and
            ``auth_config``, sent as ``X-Registry-Auth``.
        stream_logs: Log the push's steps at INFO while they happen (default False; an aflow addition).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        repository: str | None = None,
        tag: str | None = None,
        docker_server_url: str = DEFAULT_URL,
        extra_docker_kwargs: dict[str, Any] | None = None,
        stream_logs: bool = False,
        **kwargs: Any,
    ) -> None:
        self.repository = repository
        self.tag = tag
        self.docker_server_url = docker_server_url
        self.extra_docker_kwargs = extra_docker_kwargs
        self.stream_logs = stream_logs
        super().__init__(**kwargs)

    @defaults_from_attrs("repository", "tag", "docker_server_url", "extra_docker_kwargs", "stream_logs")
    async def run(
        self,
        repository: str | None = None,
        tag: str | None = None,
        docker_server_url: str | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
        stream_logs: bool | None = None,
    ) -> str:
        """Push the image.

        Args:
            repository: Defaults to the task's.
            tag: Defaults to the task's.
            docker_server_url: Defaults to the task's.
            extra_docker_kwargs: Defaults to the task's.
            stream_logs: Defaults to the task's.

        Returns:
            The engine's progress stream: one JSON item per line.

        Raises:
            ValueError: If no repository was given.
            DockerFail: If the push fails (an unknown image, a registry refusing), with the stream's error.
        """
        _need(repository, "repository", "PushImage")
        shown = f"{repository}:{tag or 'latest'}"
        params, headers = _split_auth(extra_docker_kwargs)
        params = {"tag": tag or "latest", **params}
        self.logger.debug("Pushing image %s to the registry", shown)
        on_item = log_progress(self.logger, f"push {shown}") if stream_logs else None
        async with docker_client(docker_server_url) as docker:
            items = await json_stream(
                docker,
                f"images/{repository}/push",
                f"pushing image {shown}",
                params=params,
                headers=headers,
                on_item=on_item,
            )
        self.logger.debug("Pushed image %s to the registry", shown)
        return "\n".join(json.dumps(item) for item in items)


class RemoveImage(Task):
    """Remove an image.

    Args:
        image: The image's name or id; required.
        force: Remove it even if containers use it, or it has several tags (default False).
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``).
        extra_docker_kwargs: More query parameters of ``DELETE /images/{name}`` (``noprune``).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        image: str | None = None,
        force: bool = False,
        docker_server_url: str = DEFAULT_URL,
        extra_docker_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.image = image
        self.force = force
        self.docker_server_url = docker_server_url
        self.extra_docker_kwargs = extra_docker_kwargs
        super().__init__(**kwargs)

    @defaults_from_attrs("image", "force", "docker_server_url", "extra_docker_kwargs")
    async def run(
        self,
        image: str | None = None,
        force: bool | None = None,
        docker_server_url: str | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Remove the image.

        Args:
            image: Defaults to the task's.
            force: Defaults to the task's.
            docker_server_url: Defaults to the task's.
            extra_docker_kwargs: Defaults to the task's.

        Raises:
            ValueError: If no image was given.
            DockerFail: If the engine refuses (no such image, an image in use without ``force``).
        """
        _need(image, "image", "RemoveImage")
        params = {"force": bool(force), **(extra_docker_kwargs or {})}
        self.logger.debug("Removing image %s", image)
        async with docker_client(docker_server_url) as docker:
            with api_errors(f"removing image {image!r}"):
                await docker._query_json(f"images/{image}", "DELETE", params=params)
        self.logger.debug("Removed image %s", image)


class TagImage(Task):
    """Tag an image into a repository.

    Args:
        image: The image's name or id; required.
        repository: The repository of the new name (``"127.0.0.1:5000/team/app"``); required.
        tag: The new tag (default None: ``latest``).
        force: Kept for Prefect 1 (the Engine API ignores it; a tag always moves). Default False.
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``).
        extra_docker_kwargs: More query parameters of ``POST /images/{name}/tag``.
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        image: str | None = None,
        repository: str | None = None,
        tag: str | None = None,
        force: bool = False,
        docker_server_url: str = DEFAULT_URL,
        extra_docker_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.image = image
        self.repository = repository
        self.tag = tag
        self.force = force
        self.docker_server_url = docker_server_url
        self.extra_docker_kwargs = extra_docker_kwargs
        super().__init__(**kwargs)

    @defaults_from_attrs("image", "repository", "tag", "force", "docker_server_url", "extra_docker_kwargs")
    async def run(
        self,
        image: str | None = None,
        repository: str | None = None,
        tag: str | None = None,
        force: bool | None = None,
        docker_server_url: str | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
    ) -> bool:
        """Tag the image.

        Args:
            image: Defaults to the task's.
            repository: Defaults to the task's.
            tag: Defaults to the task's.
            force: Defaults to the task's.
            docker_server_url: Defaults to the task's.
            extra_docker_kwargs: Defaults to the task's.

        Returns:
            True once the engine tagged it.

        Raises:
            ValueError: If image or repository is missing.
            DockerFail: If the engine refuses (no such image...).
        """
        _need(image, "image", "TagImage")
        _need(repository, "repository", "TagImage")
        params: dict[str, Any] = {"repo": repository, **({"tag": tag} if tag else {})}
        if force:
            params["force"] = True
        params.update(extra_docker_kwargs or {})
        self.logger.debug("Tagging image %s as %s:%s", image, repository, tag or "latest")
        async with docker_client(docker_server_url) as docker:
            with api_errors(f"tagging image {image!r} as {repository}:{tag or 'latest'}"):
                status, _ = await request(docker, f"images/{image}/tag", params=params)
        return status == 201


def _context_tar(path: str) -> bytes:
    """The build context: the directory ``path`` as an uncompressed tar (read in a worker thread)."""
    if not os.path.isdir(path):
        raise ValueError(f"BuildImage: path {path!r} is not a directory (the build context)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in sorted(os.listdir(path)):
            tar.add(os.path.join(path, name), arcname=name)
    return buffer.getvalue()


class BuildImage(Task):
    """Build an image from a directory holding a Dockerfile, optionally logging its steps as they run.

    Args:
        path: The build context: a directory with a ``Dockerfile``; required.
        tag: The new image's name and tag (``"app:1.0"``). Default None.
        nocache: Build without the cache (default False).
        rm: Remove intermediate containers after a successful build (default True).
        forcerm: Remove them after a failed build too (default False).
        docker_server_url: The engine's URL (default ``unix:///var/run/docker.sock``).
        extra_docker_kwargs: More query parameters of ``POST /build`` (``dockerfile``, ``buildargs``,
            ``labels``, ``networkmode``, ``pull``...).
        stream_logs: Log the build's output at INFO while it runs (default False).
        **kwargs: `aflow.Task` attributes.
    """

    def __init__(
        self,
        path: str | None = None,
        tag: str | None = None,
        nocache: bool = False,
        rm: bool = True,
        forcerm: bool = False,
        docker_server_url: str = DEFAULT_URL,
        extra_docker_kwargs: dict[str, Any] | None = None,
        stream_logs: bool = False,
        **kwargs: Any,
    ) -> None:
        self.path = path
        self.tag = tag
        self.nocache = nocache
        self.rm = rm
        self.forcerm = forcerm
        self.docker_server_url = docker_server_url
        self.extra_docker_kwargs = extra_docker_kwargs
        self.stream_logs = stream_logs
        super().__init__(**kwargs)

    @defaults_from_attrs(
        "path", "tag", "nocache", "rm", "forcerm", "docker_server_url", "extra_docker_kwargs", "stream_logs"
    )
    async def run(
        self,
        path: str | None = None,
        tag: str | None = None,
        nocache: bool | None = None,
        rm: bool | None = None,
        forcerm: bool | None = None,
        docker_server_url: str | None = None,
        extra_docker_kwargs: dict[str, Any] | None = None,
        stream_logs: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Build the image.

        Args:
            path: Defaults to the task's.
            tag: Defaults to the task's.
            nocache: Defaults to the task's.
            rm: Defaults to the task's.
            forcerm: Defaults to the task's.
            docker_server_url: Defaults to the task's.
            extra_docker_kwargs: Defaults to the task's.
            stream_logs: Defaults to the task's.

        Returns:
            The build's output items, in order (``{"stream": "Step 1/2 : FROM ..."}``, ``{"aux": {"ID": ...}}``).

        Raises:
            ValueError: If no path was given.
            DockerFail: If the build fails (a failing step, a bad Dockerfile), with the engine's error.
        """
        _need(path, "path", "BuildImage")
        assert path is not None
        context = await anyio.to_thread.run_sync(_context_tar, path)
        params: dict[str, Any] = {"nocache": bool(nocache), "rm": bool(rm), "forcerm": bool(forcerm)}
        if tag:
            params["t"] = tag
        params.update(extra_docker_kwargs or {})
        self.logger.debug("Building image from %s with tag %s", path, tag)
        on_item = log_progress(self.logger, f"build {tag or path}") if stream_logs else None
        async with docker_client(docker_server_url) as docker:
            items = await json_stream(
                docker,
                "build",
                f"building image {tag or ''} from {path}".replace("  ", " "),
                params=params,
                data=context,
                headers={"Content-Type": "application/x-tar"},
                on_item=on_item,
            )
        self.logger.debug("Built image from %s with tag %s", path, tag)
        return items
