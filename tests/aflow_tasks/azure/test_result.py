from __future__ import annotations

import uuid

import pytest

import aflow
from aflow import Flow
from aflow.results import JSONSerializer
from aflow_tasks.azure import AzureResult

from .conftest import KEY, Azurite
from .test_blobstorage import counting_clients, make_container, read_blob


@pytest.fixture
async def container(azurite: Azurite) -> str:
    name = f"r-{uuid.uuid4().hex[:12]}"
    await make_container(azurite, name)
    return name


async def test_write_read_exists_and_overwrite(azurite: Azurite, container: str) -> None:
    result = AzureResult(container, azurite.connection_string, serializer=JSONSerializer())
    assert not await result.exists("r/one.json")
    with pytest.raises(FileNotFoundError, match=r"no result at blob 'r/one\.json' in container 'r-.*': no such blob"):
        await result.read("r/one.json")
    assert await result.write({"a": [1, 2]}, "r/one.json") == "r/one.json"
    assert await result.exists("r/one.json")
    assert await result.read("r/one.json") == {"a": [1, 2]}
    assert await read_blob(azurite, container, "r/one.json") == b'{"a": [1, 2]}'
    await result.write({"b": 3}, "r/one.json")  # a write overwrites
    assert await result.read("r/one.json") == {"b": 3}
    assert KEY not in repr(result)


async def test_a_missing_container(azurite: Azurite) -> None:
    result = AzureResult("no-such-container", azurite.connection_string)
    assert not await result.exists("x")
    with pytest.raises(FileNotFoundError, match="container 'no-such-container': no such container"):
        await result.read("x")
    with pytest.raises(OSError, match="writing blob 'x' in container 'no-such-container' failed: ContainerNotFound"):
        await result.write(1, "x")


async def test_connection_string_sources(azurite: Azurite, container: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    nowhere = AzureResult(container)  # no error until first used
    with pytest.raises(ValueError, match="AZURE_STORAGE_CONNECTION_STRING"):
        await nowhere.write(1, "x")
    with pytest.raises(ValueError, match="connection_string_secret"):
        await nowhere.exists("x")
    # the environment variable, read when used
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    await nowhere.write(1, "from-env")
    assert await nowhere.read("from-env") == 1
    # a named secret wins over the environment
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "garbage")
    named = AzureResult(container, connection_string_secret="AZ_RESULTS")
    with aflow.context.temporary(secrets={"AZ_RESULTS": azurite.connection_string}):
        await named.write(2, "from-secret")
        assert await named.read("from-secret") == 2
        # a lazy Secret as connection_string
        lazy = AzureResult(container, aflow.Secret("AZ_RESULTS"))
        assert await lazy.read("from-secret") == 2
    # the explicit string wins over everything
    explicit = AzureResult(container, azurite.connection_string, connection_string_secret="UNSET")
    assert await explicit.read("from-env") == 1


def test_a_container_is_required() -> None:
    with pytest.raises(ValueError, match="AzureResult needs a container"):
        AzureResult("")


async def test_as_a_flows_checkpoint_and_target_store(azurite: Azurite, container: str) -> None:
    runs: list[int] = []

    @aflow.task(target="targets/{task_name}-{x}.pkl")
    def double(x: int) -> int:
        runs.append(x)
        return 2 * x

    @aflow.task
    def plus_one(y: int) -> int:
        return y + 1

    result = AzureResult(container, azurite.connection_string, location="ckpt/{task_name}.pkl")
    with Flow("ckpt", result=result, checkpoint=True) as flow:
        out = double(21)
        more = plus_one(out)
    with counting_clients() as counter:
        first = await flow.run()
        assert first.is_successful(), first.message
        assert counter.opened == 1  # the result store shares the run's client
        assert counter.closed == 1
    assert first.result[out].result == 42
    assert await AzureResult(container, azurite.connection_string).read("targets/double-21.pkl") == 42
    assert await AzureResult(container, azurite.connection_string).read("ckpt/plus_one.pkl") == 43
    second = await flow.run()
    assert second.result[out].is_cached()
    assert second.result[out].result == 42
    assert second.result[more].result == 43
    assert runs == [21]
