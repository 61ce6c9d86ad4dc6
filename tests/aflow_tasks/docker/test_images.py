"""The image tasks against the session's real engine and its local registry (see conftest.py)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from aflow import Flow
from aflow.states import Failed, Success
from aflow_tasks.docker import (
    BuildImage,
    DockerFail,
    ListImages,
    PullImage,
    PushImage,
    RemoveImage,
    TagImage,
)
from tests.logwait import LineWaiter

from .conftest import Engine

GUARD = 60


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_tag_push_remove_pull_and_list_through_a_local_registry(engine: Engine, lines: LineWaiter) -> None:
    repo = f"{engine.registry}/aflow/{unique('tiny')}"
    url = engine.url
    with Flow("docker-images") as flow:
        tagged = TagImage(image=engine.image, repository=repo, tag="v1", docker_server_url=url)()
        pushed = PushImage(repo, "v1", docker_server_url=url, stream_logs=True)(upstream_tasks=[tagged])
        removed = RemoveImage(f"{repo}:v1", docker_server_url=url)(upstream_tasks=[pushed])
        pulled = PullImage(repository="ignored", tag="v0", docker_server_url=url, stream_logs=True)(
            repository=repo, tag="v1", upstream_tasks=[removed]
        )
        listed = ListImages(repository_name=repo, docker_server_url=url)(upstream_tasks=[pulled])
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state, Success), state.result
    assert state.result[tagged].result is True
    push_items = [json.loads(line) for line in state.result[pushed].result.splitlines()]
    assert any("digest" in str(item) for item in push_items)
    assert any(m.startswith(f"push {repo}:v1: ") for m in lines.info)
    assert f"Status: Downloaded newer image for {repo}:v1" in state.result[pulled].result
    assert f"pull {repo}:v1: Status: Downloaded newer image for {repo}:v1" in lines.info
    (image,) = state.result[listed].result
    assert f"{repo}:v1" in image["RepoTags"]
    assert engine.image_exists(f"{repo}:v1")
    await RemoveImage(docker_server_url=url, force=True).run(image=f"{repo}:v1")
    assert not engine.image_exists(f"{repo}:v1")
    assert await ListImages(docker_server_url=url).run(repository_name=repo) == []


async def test_list_images_filters_and_all_layers(engine: Engine) -> None:
    everything = await ListImages(docker_server_url=engine.url, all_layers=True).run()
    assert any(engine.image in (image.get("RepoTags") or []) for image in everything)
    none = await ListImages(docker_server_url=engine.url, filters={"label": ["no.such=label"]}).run()
    assert none == []


async def test_pulling_a_missing_image_fails_with_the_registry_error(engine: Engine) -> None:
    repo = f"{engine.registry}/aflow/missing"
    with Flow("docker-pull-missing") as flow:
        p = PullImage(repo, "nope", docker_server_url=engine.url)()
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state, Failed)
    message = state.result[p].message or ""
    assert message.startswith(f"Docker engine error while pulling image {repo}:nope")
    assert "manifest unknown" in message or "not found" in message


async def test_pushing_an_image_that_does_not_exist_fails(engine: Engine) -> None:
    repo = f"{engine.registry}/aflow/{unique('absent')}"
    with pytest.raises(DockerFail, match=f"pushing image {repo}:latest"):
        await PushImage(repo, docker_server_url=engine.url).run()


async def test_a_push_refused_inside_the_stream_fails_with_the_streams_error(engine: Engine, tmp_path: Path) -> None:
    # a registry that is not listening: the engine answers 200, then reports the error in the stream
    repo = "127.0.0.1:9/aflow/tiny"
    await TagImage(engine.image, repo, "v1", docker_server_url=engine.url).run()
    try:
        with pytest.raises(
            DockerFail, match=r"Docker engine error while pushing image 127\.0\.0\.1:9/aflow/tiny:v1: "
        ) as caught:
            await PushImage(repo, "v1", docker_server_url=engine.url).run()
        assert caught.value.status is None  # from the stream, not an HTTP error status
        assert "connection refused" in str(caught.value)
    finally:
        await RemoveImage(f"{repo}:v1", docker_server_url=engine.url).run()


def context(tmp_path: Path, dockerfile: str) -> str:
    (tmp_path / "hello.txt").write_text("hello from the build\n")
    (tmp_path / "Dockerfile").write_text(dockerfile)
    return str(tmp_path)


async def test_build_streams_its_steps_and_returns_the_output(
    engine: Engine, tmp_path: Path, lines: LineWaiter
) -> None:
    tag = f"{unique('built')}:1"
    path = context(
        tmp_path,
        f'FROM {engine.image}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\nCMD ["cat", "/hello.txt"]\n',
    )
    task = BuildImage(path=path, docker_server_url=engine.url, extra_docker_kwargs={"networkmode": "none"})
    with Flow("docker-build") as flow:
        b = task(tag=tag, stream_logs=True, nocache=True)
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state, Success), state.result[b]
    output: list[dict[str, Any]] = state.result[b].result
    streamed = "".join(item.get("stream", "") for item in output)
    assert "Step 1/4 : FROM" in streamed
    assert "hello from the build" in streamed
    assert f"Successfully tagged {tag}" in streamed
    assert f"build {tag}: Step 1/4 : FROM {engine.image}" in lines.info
    assert f"build {tag}: hello from the build" in lines.info
    assert engine.image_exists(tag)
    await RemoveImage(tag, docker_server_url=engine.url).run()


async def test_a_failing_build_step_fails_the_task(engine: Engine, tmp_path: Path) -> None:
    path = context(tmp_path, f"FROM {engine.image}\nRUN echo about to fail; exit 7\n")
    with Flow("docker-build-fails") as flow:
        b = BuildImage(path, docker_server_url=engine.url, forcerm=True, extra_docker_kwargs={"networkmode": "none"})()
    with anyio.fail_after(GUARD):
        state = await flow.run()
    assert isinstance(state, Failed)
    message = state.result[b].message or ""
    assert message.startswith(f"Docker engine error while building image from {path}")
    assert "returned a non-zero code: 7" in message


async def test_engine_errors_fail_the_image_tasks(engine: Engine) -> None:
    with pytest.raises(DockerFail, match="No such image") as caught:
        await RemoveImage("no-such-image:1", docker_server_url=engine.url).run()
    assert caught.value.status == 404
    with pytest.raises(DockerFail, match="tagging image 'no-such-image:1'"):
        await TagImage("no-such-image:1", "x/y", docker_server_url=engine.url).run()
    with pytest.raises(ValueError, match="is not a directory"):
        await BuildImage("/no/such/dir", docker_server_url=engine.url).run()


@pytest.mark.parametrize(
    ("task", "name"),
    [
        (PullImage(), "repository"),
        (PushImage(), "repository"),
        (RemoveImage(), "image"),
        (TagImage(repository="x"), "image"),
        (TagImage(image="x"), "repository"),
        (BuildImage(), "path"),
    ],
)
async def test_a_missing_required_value_is_a_value_error_naming_it(task: Any, name: str) -> None:
    with pytest.raises(ValueError, match=f"needs {name}"):
        await task.run()
