from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

import aflow
from aflow import Flow, signals
from aflow.exceptions import SecretNotFound
from aflow.secrets import redact
from aflow_tasks.azure import BlobStorageDownload, BlobStorageUpload, clients

from .conftest import KEY, Azurite


async def make_container(azurite: Azurite, name: str) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        try:
            await service.create_container(name)
        except ResourceExistsError:
            pass


async def read_blob(azurite: Azurite, container: str, name: str) -> bytes:
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        downloader = await service.get_blob_client(container, name).download_blob()
        data: bytes = await downloader.readall()
        return data


@pytest.fixture
async def container(azurite: Azurite) -> str:
    name = f"c-{uuid.uuid4().hex[:12]}"
    await make_container(azurite, name)
    return name


class ClientCounter:
    """Counts the clients opened through the public seam (``clients.override``)."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0

    @asynccontextmanager
    async def open(self, connection_string: str) -> AsyncIterator[Any]:
        self.opened += 1
        try:
            async with clients.opener(connection_string) as client:
                yield client
        finally:
            self.closed += 1


@contextmanager
def counting_clients() -> Iterator[ClientCounter]:
    counter = ClientCounter()
    with clients.override(counter.open):
        yield counter


def test_init_defaults_are_prefect_1s() -> None:
    down = BlobStorageDownload()
    assert (down.azure_credentials_secret, down.container, down.connection_string) == (
        "AZ_CONNECTION_STRING",
        None,
        None,
    )
    up = BlobStorageUpload()
    assert (up.azure_credentials_secret, up.container, up.overwrite, up.connection_string) == (
        "AZ_CONNECTION_STRING",
        None,
        False,
        None,
    )
    up2 = BlobStorageUpload(azure_credentials_secret="S", container="ccc", overwrite=True, connection_string="x")
    assert (up2.azure_credentials_secret, up2.container, up2.overwrite, up2.connection_string) == (
        "S",
        "ccc",
        True,
        "x",
    )


async def test_upload_then_download_with_the_default_secret(azurite: Azurite, container: str) -> None:
    with Flow("roundtrip") as flow:
        name = BlobStorageUpload(container=container)(data="héllo wörld", blob_name="greeting.txt")
        text = BlobStorageDownload(container=container)(blob_name=name)
    state = await flow.run(context={"secrets": {"AZ_CONNECTION_STRING": azurite.connection_string}})
    assert state.is_successful(), state.message
    assert state.result[name].result == "greeting.txt"
    assert state.result[text].result == "héllo wörld"
    assert await read_blob(azurite, container, "greeting.txt") == "héllo wörld".encode()


async def test_bytes_are_uploaded_as_is(azurite: Azurite, container: str) -> None:
    up = BlobStorageUpload(container=container, connection_string=azurite.connection_string)
    assert await up.run(b"\x00\x01raw", blob_name="raw.bin") == "raw.bin"
    assert await read_blob(azurite, container, "raw.bin") == b"\x00\x01raw"


async def test_default_blob_name_is_a_uuid4(azurite: Azurite, container: str) -> None:
    up = BlobStorageUpload(container=container, connection_string=azurite.connection_string)
    first = await up.run("a")
    second = await up.run("b")
    assert uuid.UUID(first).version == 4
    assert uuid.UUID(second).version == 4
    assert first != second
    assert await read_blob(azurite, container, first) == b"a"


async def test_a_named_secret_at_init_and_at_the_call(azurite: Azurite, container: str) -> None:
    secrets = {"MY_AZ": azurite.connection_string}
    up = BlobStorageUpload(azure_credentials_secret="MY_AZ", container=container)
    down = BlobStorageDownload(azure_credentials_secret="MY_AZ", container=container)
    with aflow.context.temporary(secrets=secrets):
        await up.run("one", blob_name="one")
        assert await down.run("one") == "one"
        plain_up, plain_down = BlobStorageUpload(container=container), BlobStorageDownload(container=container)
        await plain_up.run("two", blob_name="two", azure_credentials_secret="MY_AZ")
        assert await plain_down.run("two", azure_credentials_secret="MY_AZ") == "two"
        with pytest.raises(SecretNotFound, match="AZ_CONNECTION_STRING"):
            await plain_down.run("two")


async def test_connection_string_wins_over_the_secret(azurite: Azurite, container: str) -> None:
    broken = "DefaultEndpointsProtocol=http;AccountName=nobody;AccountKey=bm9wZQ==;BlobEndpoint=http://127.0.0.1:9/x;"
    secrets = {"AZ_CONNECTION_STRING": broken, "GOOD": azurite.connection_string}
    with aflow.context.temporary(secrets=secrets):
        # a str at the call
        up = BlobStorageUpload(container=container)
        assert await up.run("s", blob_name="str", connection_string=azurite.connection_string) == "str"
        # a lazy Secret at init, read when the task runs
        down = BlobStorageDownload(container=container, connection_string=aflow.Secret("GOOD"))
        assert await down.run("str") == "s"
        # and at the call
        assert await BlobStorageDownload(container=container).run("str", connection_string=aflow.Secret("GOOD")) == "s"


async def test_call_values_win_over_init(azurite: Azurite, container: str) -> None:
    up = BlobStorageUpload(container="not-this-one", connection_string=azurite.connection_string)
    assert await up.run("v", blob_name="b", container=container) == "b"
    down = BlobStorageDownload(container="not-this-one", connection_string=azurite.connection_string)
    assert await down.run("b", container=container) == "v"


async def test_overwrite_refused_leaves_the_blob_unchanged(azurite: Azurite, container: str) -> None:
    up = BlobStorageUpload(container=container, connection_string=azurite.connection_string)
    await up.run("original", blob_name="same")
    with pytest.raises(signals.FAIL, match=r"'same'.*BlobAlreadyExists.*overwrite=True") as info:
        await up.run("replacement", blob_name="same")
    assert KEY not in str(info.value)
    assert await read_blob(azurite, container, "same") == b"original"
    # overwrite at the call, then at init
    await up.run("second", blob_name="same", overwrite=True)
    assert await read_blob(azurite, container, "same") == b"second"
    over = BlobStorageUpload(container=container, connection_string=azurite.connection_string, overwrite=True)
    await over.run("third", blob_name="same")
    assert await read_blob(azurite, container, "same") == b"third"


async def test_overwrite_refusal_fails_the_task_in_a_flow(azurite: Azurite, container: str) -> None:
    up = BlobStorageUpload(container=container, connection_string=azurite.connection_string)
    await up.run("kept", blob_name="taken")
    with Flow("refuse") as flow:
        up(data="lost", blob_name="taken")
    state = await flow.run()
    assert state.is_failed()
    (task_state,) = state.result.values()
    assert task_state.is_failed()
    assert "BlobAlreadyExists" in task_state.message
    assert await read_blob(azurite, container, "taken") == b"kept"


async def test_missing_container_and_blob_fail_naming_them(azurite: Azurite, container: str) -> None:
    cs = azurite.connection_string
    with pytest.raises(signals.FAIL, match=r"container 'no-such-container' failed: ContainerNotFound"):
        await BlobStorageUpload(container="no-such-container", connection_string=cs).run("x", blob_name="x")
    with pytest.raises(signals.FAIL, match=r"container 'no-such-container' failed: ContainerNotFound"):
        await BlobStorageDownload(container="no-such-container", connection_string=cs).run("x")
    with pytest.raises(signals.FAIL, match=r"blob 'absent\.txt' .* failed: BlobNotFound"):
        await BlobStorageDownload(container=container, connection_string=cs).run("absent.txt")


async def test_missing_values_are_value_errors(azurite: Azurite) -> None:
    cs = azurite.connection_string
    with pytest.raises(ValueError, match="BlobStorageDownload needs a container name"):
        await BlobStorageDownload(connection_string=cs).run("b")
    with pytest.raises(ValueError, match="BlobStorageUpload needs a container name"):
        await BlobStorageUpload(connection_string=cs).run("d")
    with pytest.raises(ValueError, match="BlobStorageDownload needs blob_name"):
        await BlobStorageDownload(container="ccc", connection_string=cs).run()
    with pytest.raises(ValueError, match="BlobStorageUpload needs data"):
        await BlobStorageUpload(container="ccc", connection_string=cs).run()
    with pytest.raises(TypeError, match="str or bytes, not dict"):
        await BlobStorageUpload(container="ccc", connection_string=cs).run({"a": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a connection string"):
        await BlobStorageUpload(container="ccc", azure_credentials_secret="").run("d")


async def test_the_account_key_is_never_shown(
    azurite: Azurite, container: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with Flow("secretive") as flow:
        BlobStorageDownload(container=container)(blob_name="nothing-here")
        BlobStorageUpload(container="no-such-container")(data="x", blob_name="y")
    state = await flow.run(context={"secrets": {"AZ_CONNECTION_STRING": azurite.connection_string}})
    assert state.is_failed()
    messages = [s.message or "" for s in state.result.values()]
    assert any("BlobNotFound" in m for m in messages)
    assert any("ContainerNotFound" in m for m in messages)
    for text in [*messages, state.message or "", caplog.text]:
        assert KEY not in text
        assert azurite.connection_string not in text
    assert redact(f"key {KEY}") == "key ****"
    assert redact(azurite.connection_string) == "****"


async def test_a_string_with_its_own_key_is_registered(azurite: Azurite) -> None:
    other_key = "b3RoZXIta2V5LWZvci1yZWRhY3Rpb24tdGVzdA=="
    cs = f"DefaultEndpointsProtocol=http;AccountName=x;AccountKey={other_key};BlobEndpoint=http://127.0.0.1:9/x;"
    with pytest.raises(signals.FAIL) as info:
        await BlobStorageDownload(container="ccc", connection_string=cs).run("b")
    assert other_key not in str(info.value)
    assert redact(other_key) == "****"


async def test_200_concurrent_uploads_share_one_client(azurite: Azurite, container: str) -> None:
    with counting_clients() as counter:
        up = BlobStorageUpload(container=container)
        with Flow("uploads") as flow:
            names = up.map(data=[f"v{i}" for i in range(200)], blob_name=[f"k/{i:03d}" for i in range(200)])
            last = BlobStorageDownload(container=container)(blob_name="k/199", upstream_tasks=[names])
        state = await flow.run(context={"secrets": {"AZ_CONNECTION_STRING": azurite.connection_string}})
        assert state.is_successful(), state.message
        assert state.result[names].result == [f"k/{i:03d}" for i in range(200)]
        assert state.result[last].result == "v199"
        assert counter.opened == 1  # 200 uploads and a download: one client
        assert counter.closed == 1  # closed when the run ended
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        listed = [b.name async for b in service.get_container_client(container).list_blobs(name_starts_with="k/")]
    assert len(listed) == 200


async def test_a_task_outside_a_flow_opens_and_closes_its_own_client(azurite: Azurite, container: str) -> None:
    with counting_clients() as counter:
        up = BlobStorageUpload(container=container, connection_string=azurite.connection_string)
        await up.run("1", blob_name="a")
        await up.run("2", blob_name="b")
        assert counter.opened == counter.closed == 2


async def test_503_is_retried_then_fails(unused_tcp_port: int) -> None:
    hits: list[str] = []

    async def busy(request: web.Request) -> web.Response:
        hits.append(request.method)
        headers = {"x-ms-error-code": "ServerBusy", "Retry-After": "0"}
        return web.Response(status=503, text="The server is busy.", headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", busy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    try:
        cs = (
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{unused_tcp_port}/devstoreaccount1;"
        )
        down = BlobStorageDownload(
            container="ccc", connection_string=cs, max_retries=2, retry_delay=timedelta(seconds=0)
        )
        with Flow("busy") as flow:
            down(blob_name="b")
        state = await flow.run()
        assert state.is_failed()
        (task_state,) = state.result.values()
        assert "ServerBusy" in task_state.message
        assert "no retries left after 3 attempts" in task_state.message
        assert len(hits) == 3  # no retries inside the SDK: the task's retries decide
        with pytest.raises(signals.FAIL, match="ServerBusy"):
            await down.run("b")  # outside a flow: nothing to retry
    finally:
        await runner.cleanup()
