from __future__ import annotations

import gzip
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import aflow
from aflow import Flow, signals
from aflow.results import JSONSerializer
from aflow_tasks.aws import S3Download, S3List, S3Result, S3Upload, aws_client, clients

from .conftest import CREDS, Moto

BUCKET = "aflow-bucket"
MiB = 1024 * 1024


async def make_bucket(moto: Moto, name: str = BUCKET) -> None:
    async with aws_client("s3", **moto.settings) as s3:
        await s3.create_bucket(Bucket=name)


async def read_object(moto: Moto, key: str, bucket: str = BUCKET) -> bytes:
    async with aws_client("s3", **moto.settings) as s3:
        response = await s3.get_object(Bucket=bucket, Key=key)
        async with response["Body"] as body:
            data: bytes = await body.read()
            return data


class ClientCounter:
    """Counts the clients opened through the public seam (``clients.override``) and whether each was closed."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.closed: list[str] = []

    @asynccontextmanager
    async def open(self, service: str, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        self.opened.append(service)
        try:
            async with clients.opener(service, kwargs) as client:
                yield client
        finally:
            self.closed.append(service)


@contextmanager
def counting_clients() -> Iterator[ClientCounter]:
    counter = ClientCounter()
    with clients.override(counter.open):
        yield counter


def test_missing_aiobotocore_gives_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiobotocore", None)
    monkeypatch.setitem(sys.modules, "aiobotocore.session", None)
    with pytest.raises(ImportError, match=r"aws tasks need aiobotocore: pip install aflow-engine\[aws\]"):
        S3Upload()
    with pytest.raises(ImportError, match=r"pip install aflow-engine\[aws\]"):
        S3Result("bucket-x")


def test_init_defaults_are_stored() -> None:
    up = S3Upload()
    assert (up.bucket, up.compression, up.upload_args, up.credentials) == (None, None, {}, None)
    assert (up.multipart_threshold, up.multipart_chunksize, up.max_concurrency) == (8 * MiB, 8 * MiB, 4)
    assert (up.region_name, up.endpoint_url, up.client_kwargs) == (None, None, {})
    down = S3Download(bucket="b-x", as_bytes=True, region_name="eu-west-1")
    assert (down.bucket, down.compression, down.as_bytes, down.region_name) == ("b-x", None, True, "eu-west-1")
    assert S3List().bucket is None


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="compression must be None or 'gzip'"):
        S3Upload(compression="zip")
    with pytest.raises(ValueError, match="at least 5 MiB"):
        S3Upload(multipart_chunksize=MiB)


async def test_required_values_missing_give_value_errors(moto: Moto) -> None:
    with pytest.raises(ValueError, match=r"S3Upload needs bucket: give it at initialization"):
        await S3Upload(**moto.settings).run(b"x")
    with pytest.raises(ValueError, match=r"S3Upload needs data"):
        await S3Upload(bucket=BUCKET, **moto.settings).run()
    with pytest.raises(ValueError, match=r"S3Download needs key"):
        await S3Download(bucket=BUCKET, **moto.settings).run()
    with pytest.raises(ValueError, match=r"S3List needs bucket"):
        await S3List(**moto.settings).run()


async def test_upload_and_download_text_and_bytes(moto: Moto) -> None:
    await make_bucket(moto)
    up = S3Upload(bucket=BUCKET, upload_args={"ContentType": "text/plain"}, **moto.settings)
    assert await up.run("héllo", key="greeting.txt") == "greeting.txt"
    key = await up.run(b"\x00\x01")
    assert len(key) == 36  # a uuid4
    down = S3Download(bucket=BUCKET, **moto.settings)
    assert await down.run(key="greeting.txt") == "héllo"
    assert await down.run(key=key, as_bytes=True) == b"\x00\x01"


async def test_call_overrides_win_over_init(moto: Moto) -> None:
    await make_bucket(moto)
    await make_bucket(moto, "other-bucket")
    await S3Upload(bucket="no-such-bucket", **moto.settings).run("v", key="k", bucket="other-bucket")
    assert await read_object(moto, "k", "other-bucket") == b"v"
    down = S3Download(bucket="no-such-bucket", as_bytes=True, **moto.settings)
    assert await down.run(key="k", bucket="other-bucket", as_bytes=False) == "v"


async def test_gzip_compression_both_ways(moto: Moto, tmp_path: Path) -> None:
    await make_bucket(moto)
    await S3Upload(bucket=BUCKET, compression="gzip", **moto.settings).run("zipped " * 100, key="z.gz")
    assert gzip.decompress(await read_object(moto, "z.gz")) == b"zipped " * 100
    down = S3Download(bucket=BUCKET, compression="gzip", **moto.settings)
    assert await down.run(key="z.gz") == "zipped " * 100
    out = await down.run(key="z.gz", path=tmp_path / "z.txt")
    assert isinstance(out, str)
    assert await anyio.Path(out).read_bytes() == b"zipped " * 100
    with pytest.raises(ValueError, match="compresses bytes and text only"):
        await S3Upload(bucket=BUCKET, compression="gzip", **moto.settings).run(tmp_path / "z.txt")


async def test_11_mib_multipart_upload_reads_back_byte_for_byte(moto: Moto, tmp_path: Path) -> None:
    await make_bucket(moto)
    payload = os.urandom(11 * MiB)
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    up = S3Upload(bucket=BUCKET, multipart_chunksize=5 * MiB, max_concurrency=2, **moto.settings)
    assert await up.run(source, key="big.bin") == "big.bin"
    async with aws_client("s3", **moto.settings) as s3:
        head = await s3.head_object(Bucket=BUCKET, Key="big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 1 MiB
    assert head["ContentLength"] == 11 * MiB
    target = tmp_path / "sub" / "copy.bin"
    down = S3Download(bucket=BUCKET, **moto.settings)
    assert await down.run(key="big.bin", path=target) == str(target)
    assert target.read_bytes() == payload
    # bytes go up in parts too
    await up.run(payload, key="big-bytes")
    assert await down.run(key="big-bytes", as_bytes=True) == payload


async def test_failed_download_fails_clearly_and_leaves_no_file(moto: Moto, tmp_path: Path) -> None:
    await make_bucket(moto)
    target = tmp_path / "missing.bin"
    down = S3Download(bucket=BUCKET, **moto.settings)
    with pytest.raises(signals.FAIL, match=r"^S3 download of s3://aflow-bucket/nope failed: NoSuchKey: "):
        await down.run(key="nope", path=target)
    assert not target.exists()


async def test_upload_to_a_missing_bucket_fails(moto: Moto) -> None:
    up = S3Upload(bucket="no-such-bucket", **moto.settings)
    with pytest.raises(signals.FAIL, match=r"S3 upload to s3://no-such-bucket/k failed: NoSuchBucket"):
        await up.run(b"x", key="k")
    big = S3Upload(bucket="no-such-bucket", multipart_threshold=10, multipart_chunksize=5 * MiB, **moto.settings)
    with pytest.raises(signals.FAIL, match=r"NoSuchBucket"):
        await big.run(b"x" * 100, key="k")


async def test_list_paginates_past_1000_keys(moto: Moto) -> None:
    await make_bucket(moto)
    async with aws_client("s3", **moto.settings) as s3:
        limit = anyio.CapacityLimiter(10)

        async def put(i: int) -> None:
            async with limit:
                await s3.put_object(Bucket=BUCKET, Key=f"many/{i:05d}", Body=b"")

        async with anyio.create_task_group() as tg:
            for i in range(1005):
                tg.start_soon(put, i)
        await s3.put_object(Bucket=BUCKET, Key="many/sub/deeper", Body=b"")
        await s3.put_object(Bucket=BUCKET, Key="other", Body=b"")
    lister = S3List(bucket=BUCKET, **moto.settings)
    keys = await lister.run(prefix="many/")
    assert keys == [f"many/{i:05d}" for i in range(1005)] + ["many/sub/deeper"]
    assert await lister.run(prefix="many/", page_size=300) == keys
    assert len(await lister.run(prefix="many/", max_items=1001)) == 1001
    assert len(await lister.run(prefix="many/", delimiter="/")) == 1005
    assert len(await lister.run()) == 1007


async def test_list_filters_on_last_modified(moto: Moto) -> None:
    await make_bucket(moto)
    await S3Upload(bucket=BUCKET, **moto.settings).run(b"x", key="a")
    lister = S3List(bucket=BUCKET, **moto.settings)
    now = datetime.now(UTC)
    assert await lister.run(last_modified_begin=now - timedelta(hours=1)) == ["a"]
    assert await lister.run(last_modified_begin=(now + timedelta(hours=1)).isoformat()) == []
    assert await lister.run(last_modified_end=now - timedelta(hours=1)) == []
    naive_future = (now + timedelta(hours=1)).replace(tzinfo=None)
    assert await lister.run(last_modified_end=naive_future) == ["a"]
    with pytest.raises(ValueError, match="last_modified_begin must be a datetime or an ISO 8601 string"):
        await lister.run(last_modified_begin="yesterday")


async def test_list_of_a_missing_bucket_fails(moto: Moto) -> None:
    with pytest.raises(signals.FAIL, match=r"S3 listing of s3://no-such-bucket/ failed: NoSuchBucket"):
        await S3List(bucket="no-such-bucket", **moto.settings).run()


async def test_200_task_flow_shares_one_client(moto: Moto) -> None:
    await make_bucket(moto)
    with counting_clients() as counter:
        upload = S3Upload(bucket=BUCKET, **moto.settings)
        with Flow("uploads") as flow:
            keys = upload.map(data=[f"v{i}".encode() for i in range(200)], key=[f"k/{i:03d}" for i in range(200)])
            listed = S3List(bucket=BUCKET, **moto.settings)(prefix="k/", upstream_tasks=[keys])
        state = await flow.run()
        assert state.is_successful(), state.message
        assert state.result[listed].result == [f"k/{i:03d}" for i in range(200)]
        assert counter.opened == ["s3"]  # 200 uploads and the listing: one client
        assert counter.closed == ["s3"]  # closed when the run ended
        assert await read_object(moto, "k/199") == b"v199"


async def test_a_failing_flow_still_closes_its_clients(moto: Moto) -> None:
    with counting_clients() as counter:
        with Flow("fails") as flow:
            S3Upload(bucket="no-such-bucket", **moto.settings)(data=b"x", key="k")
        state = await flow.run()
        assert state.is_failed()
        (task_state,) = state.result.values()
        assert "NoSuchBucket" in task_state.message
        assert counter.opened == counter.closed == ["s3"]


async def test_different_settings_get_different_clients(moto: Moto) -> None:
    await make_bucket(moto)
    with counting_clients() as counter:
        other = {**CREDS, "ACCESS_KEY": "another-access-key"}
        with Flow("two") as flow:
            S3Upload(bucket=BUCKET, **moto.settings)(data=b"1", key="a")
            S3Upload(bucket=BUCKET, **moto.settings)(data=b"2", key="b")
            S3Upload(bucket=BUCKET, **{**moto.settings, "credentials": other})(data=b"3", key="c")
        assert (await flow.run()).is_successful()
        assert counter.opened == ["s3", "s3"]


async def test_credentials_from_the_aws_credentials_secret(moto: Moto) -> None:
    await make_bucket(moto)
    settings: dict[str, Any] = {"region_name": "us-east-1", "endpoint_url": moto.url}
    with Flow("secret-creds") as flow:
        S3Upload(bucket=BUCKET, **settings)(data=b"s", key="from-secret")
    state = await flow.run(context={"secrets": {"AWS_CREDENTIALS": CREDS}})
    assert state.is_successful(), state.message
    assert await read_object(moto, "from-secret") == b"s"
    # and a Secret as the credentials argument
    up = S3Upload(bucket=BUCKET, credentials=aflow.Secret("MY_AWS"), **settings)
    with aflow.context.temporary(secrets={"MY_AWS": CREDS}):
        assert await up.run(b"t", key="from-named") == "from-named"


async def test_bad_credentials_dict_is_refused(moto: Moto) -> None:
    up = S3Upload(bucket=BUCKET, region_name="us-east-1", endpoint_url=moto.url)
    with pytest.raises(ValueError, match="AWS credentials lack SECRET_ACCESS_KEY"):
        await up.run(b"x", credentials={"ACCESS_KEY": "abc"})


async def test_s3_result_write_read_exists(moto: Moto) -> None:
    await make_bucket(moto)
    result = S3Result(BUCKET, serializer=JSONSerializer(), **moto.settings)
    assert not await result.exists("r/one.json")
    with pytest.raises(FileNotFoundError, match=r"no result at s3://aflow-bucket/r/one\.json"):
        await result.read("r/one.json")
    assert await result.write({"a": [1, 2]}, "r/one.json") == "r/one.json"
    assert await result.exists("r/one.json")
    assert await result.read("r/one.json") == {"a": [1, 2]}
    assert await read_object(moto, "r/one.json") == b'{"a": [1, 2]}'
    assert "testing-secret" not in repr(result)
    missing = S3Result("no-such-bucket", **moto.settings)
    with pytest.raises(OSError, match="writing s3://no-such-bucket/x failed"):
        await missing.write(1, "x")


async def test_s3_result_as_a_flows_checkpoint_store(moto: Moto) -> None:
    await make_bucket(moto)
    runs: list[int] = []

    @aflow.task(target="targets/{task_name}-{x}.pkl")
    def double(x: int) -> int:
        runs.append(x)
        return 2 * x

    with Flow("ckpt", result=S3Result(BUCKET, **moto.settings), checkpoint=True) as flow:
        out = double(21)
    first = await flow.run()
    assert first.result[out].result == 42
    assert await S3Result(BUCKET, **moto.settings).read("targets/double-21.pkl") == 42
    second = await flow.run()
    assert second.result[out].is_cached()
    assert second.result[out].result == 42
    assert runs == [21]


async def test_a_task_outside_a_flow_opens_and_closes_its_own_client(moto: Moto) -> None:
    await make_bucket(moto)
    with counting_clients() as counter:
        up = S3Upload(bucket=BUCKET, **moto.settings)
        await up.run(b"1", key="a")
        assert counter.opened == counter.closed == ["s3"]
        await up.run(b"2", key="b")
        assert counter.opened == counter.closed == ["s3", "s3"]
