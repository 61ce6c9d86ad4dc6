"""The Cloud Storage tasks and GCSResult against gcp-storage-emulator (and a tiny failing server)."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

import aflow
from aflow import Flow, signals
from aflow.results import JSONSerializer
from aflow.secrets import redact
from aflow_tasks.gcp import GCSBlobExists, GCSCopy, GCSDownload, GCSResult, GCSUpload, _auth, storage

from .conftest import StorageEmulator

BUCKET = "aflow-bucket"
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key-but-secret-0123456789\n-----END PRIVATE KEY-----\n"
# read through aflow.Secret, every string in it is redacted for the rest of the process: only odd values
SERVICE_ACCOUNT = {
    "project_id": "gcs-fixture-proj-5c1e",
    "private_key_id": "key-id-7f3e9a1c2b",
    "private_key": PRIVATE_KEY,
    "client_email": "tester-5c1e@gcs-fixture-proj-5c1e.iam.gserviceaccount.com",
}


async def make_bucket(name: str = BUCKET) -> None:
    await GCSUpload(name, create_bucket=True).run(data=b"seed", blob="seed")


async def metadata(bucket: str, blob: str) -> dict[str, Any]:
    from gcloud.aio.storage import Storage

    async with aiohttp.ClientSession() as session:
        return await Storage(session=session).download_metadata(bucket, blob)  # type: ignore[arg-type]


class SessionCounter:
    """Counts the sessions opened through the public seam (``_auth.sessions.override``)."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0

    @asynccontextmanager
    async def open(self) -> AsyncIterator[aiohttp.ClientSession]:
        self.opened += 1
        try:
            async with _auth.sessions.opener() as client:
                yield client
        finally:
            self.closed += 1


@contextmanager
def counting_sessions() -> Iterator[SessionCounter]:
    counter = SessionCounter()
    with _auth.sessions.override(counter.open):
        yield counter


def task_message(state: Any) -> str:
    (task_state,) = state.result.values()
    return str(task_state.message)


# ----------------------------------------------------------------------------- arguments


def test_init_defaults_are_prefect_1s() -> None:
    down = GCSDownload("b")
    assert (down.bucket, down.blob, down.project, down.chunk_size, down.request_timeout) == ("b", None, None, None, 60)
    up = GCSUpload("b")
    assert (up.blob, up.project, up.chunk_size) == (None, None, 104857600)
    assert (up.create_bucket, up.request_timeout) == (False, 60)
    copy = GCSCopy()
    assert (copy.source_bucket, copy.source_blob, copy.dest_bucket, copy.dest_blob) == (None, None, None, None)
    assert (copy.project, copy.create_bucket, copy.request_timeout) == (None, False, 60)
    exists = GCSBlobExists()
    assert (exists.bucket_name, exists.blob, exists.project) == (None, None, None)
    assert (exists.wait_seconds, exists.fail_if_not_found, exists.request_timeout) == (0, True, 60)
    with pytest.raises(TypeError):
        GCSDownload()  # type: ignore[call-arg]  # bucket is required at init, as in Prefect 1


def test_chunk_size_must_be_a_multiple_of_256_kib() -> None:
    for bad in (0, -262144, 1000, 262145):
        with pytest.raises(ValueError, match="chunk_size must be a positive multiple of 256 KiB"):
            GCSUpload("b", chunk_size=bad)
        with pytest.raises(ValueError, match="chunk_size"):
            GCSDownload("b", chunk_size=bad)


async def test_required_values_missing_give_value_errors_naming_them(gcs: StorageEmulator) -> None:
    with pytest.raises(ValueError, match=r"GCSDownload needs blob"):
        await GCSDownload("b").run()
    with pytest.raises(ValueError, match=r"GCSDownload needs bucket"):
        await GCSDownload("b").run(bucket=None, blob="x")
    with pytest.raises(ValueError, match=r"GCSUpload needs data"):
        await GCSUpload("b").run()
    with pytest.raises(ValueError, match=r"GCSUpload needs bucket"):
        await GCSUpload("").run(data="x")
    with pytest.raises(ValueError, match=r"GCSBlobExists needs bucket_name"):
        await GCSBlobExists(blob="x").run()
    with pytest.raises(ValueError, match=r"GCSBlobExists needs blob"):
        await GCSBlobExists("b").run()
    with pytest.raises(ValueError, match="wait_seconds must be 0 or more"):
        await GCSBlobExists("b", "x", wait_seconds=-1).run()
    with pytest.raises(ValueError, match="request_timeout must be positive"):
        await GCSDownload("b", request_timeout=0).run(blob="x")


async def test_upload_refuses_other_data_types_naming_them(gcs: StorageEmulator) -> None:
    with pytest.raises(TypeError, match="data must be str, bytes or BytesIO: got list instead"):
        await GCSUpload(BUCKET).run(data=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got StringIO instead"):
        await GCSUpload(BUCKET).run(data=io.StringIO("x"))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- upload/download


async def test_upload_str_bytes_bytesio_and_empty_then_download_bytes(gcs: StorageEmulator) -> None:
    await make_bucket()
    up = GCSUpload(BUCKET)
    assert await up.run(data="héllo", blob="t.txt") == "t.txt"
    assert await up.run(data=b"\x00\x01bin", blob="b.bin") == "b.bin"
    stream = io.BytesIO(b"skip-rest")
    stream.seek(5)  # read from the stream's position, as upload_from_file does
    assert await up.run(data=stream, blob="io.bin") == "io.bin"
    assert await up.run(data=b"", blob="empty") == "empty"
    assert await up.run(data="{}", blob="doc.json") == "doc.json"  # application/json goes up fine
    down = GCSDownload(BUCKET)
    assert await down.run(blob="t.txt") == "héllo".encode()
    assert await down.run(blob="b.bin") == b"\x00\x01bin"
    assert await down.run(blob="io.bin") == b"rest"
    assert await down.run(blob="empty") == b""
    assert await down.run(blob="doc.json") == b"{}"


async def test_content_type_and_encoding(gcs: StorageEmulator) -> None:
    await make_bucket()
    up = GCSUpload(BUCKET)
    await up.run(data=b"a,b", blob="x.csv")
    await up.run(data="text", blob="plain")
    await up.run(data=b"raw", blob="raw")
    await up.run(data=b"\x1f\x8b", blob="z", content_type="application/x-tar", content_encoding="gzip")
    assert (await metadata(BUCKET, "x.csv"))["contentType"] == "text/csv"
    assert (await metadata(BUCKET, "plain"))["contentType"].startswith("text/plain")  # the emulator drops charset
    assert (await metadata(BUCKET, "raw"))["contentType"] == "application/octet-stream"
    meta = await metadata(BUCKET, "z")
    assert meta["contentType"] == "application/x-tar"
    assert meta["contentEncoding"] == "gzip"


async def test_call_values_win_over_init(gcs: StorageEmulator) -> None:
    await make_bucket("other-bucket")
    up = GCSUpload("no-such-bucket", blob="init-name", chunk_size=262144, request_timeout=5)
    assert await up.run(data=b"x", bucket="other-bucket", blob="call-name", request_timeout=10) == "call-name"
    down = GCSDownload("no-such-bucket", blob="init-name")
    assert await down.run(bucket="other-bucket", blob="call-name") == b"x"
    exists = GCSBlobExists("no-such-bucket", "init-name")
    assert await exists.run(bucket_name="other-bucket", blob="call-name") is True
    copy = GCSCopy("no-such-bucket", "a", "no-such-bucket", "b")
    assert await copy.run(source_bucket="other-bucket", source_blob="call-name", dest_bucket="other-bucket") == "b"


async def test_chunked_resumable_upload_and_chunked_download(gcs: StorageEmulator) -> None:
    await make_bucket()
    payload = os.urandom(700 * 1024)
    # above chunk_size: a resumable upload
    assert await GCSUpload(BUCKET, chunk_size=262144).run(data=payload, blob="big") == "big"
    assert await GCSDownload(BUCKET, chunk_size=262144).run(blob="big") == payload
    assert await GCSDownload(BUCKET).run(blob="big", chunk_size=524288) == payload


async def test_upload_replaces_an_object(gcs: StorageEmulator) -> None:
    await make_bucket()
    up = GCSUpload(BUCKET, blob="same")
    await up.run(data=b"one")
    await up.run(data=b"two")
    assert await GCSDownload(BUCKET, blob="same").run() == b"two"


async def test_default_blob_name_is_prefect_and_the_task_run_id(gcs: StorageEmulator) -> None:
    await make_bucket()
    up = GCSUpload(BUCKET)
    with Flow("names") as flow:
        one = up(data=b"1")
        many = up.map(data=[b"a", b"b"])
    state = await flow.run()
    assert state.is_successful(), state.message
    name = state.result[one].result
    assert name.startswith("prefect-")
    assert name.endswith("/GCSUpload-1")
    names = state.result[many].result
    assert len(set(names)) == 2
    assert all(n.startswith("prefect-") and n.endswith(("[0]", "[1]")) for n in names)
    assert await GCSDownload(BUCKET).run(blob=names[1]) == b"b"
    with aflow.context.temporary(task_run_id="abc"):
        assert await up.run(data=b"x") == "prefect-abc"


async def test_a_missing_bucket_fails_unless_create_bucket(gcs: StorageEmulator) -> None:
    with pytest.raises(signals.FAIL, match=r"GCSUpload: bucket 'new-bucket' not found \(create_bucket=True"):
        await GCSUpload("new-bucket").run(data=b"x", blob="k")
    assert await GCSUpload("new-bucket", create_bucket=True).run(data=b"x", blob="k") == "k"
    assert await GCSDownload("new-bucket").run(blob="k") == b"x"
    # the call's create_bucket wins too
    assert await GCSUpload("newer-bucket").run(data=b"y", blob="k", create_bucket=True, project="p") == "k"


async def test_download_of_a_missing_object_or_bucket_fails_naming_it(gcs: StorageEmulator) -> None:
    await make_bucket()
    with pytest.raises(signals.FAIL, match=r"GCSDownload: object gs://aflow-bucket/nope not found"):
        await GCSDownload(BUCKET).run(blob="nope")
    with pytest.raises(signals.FAIL, match=r"GCSDownload: bucket 'no-bucket' not found"):
        await GCSDownload("no-bucket").run(blob="k")
    with Flow("missing") as flow:
        GCSDownload(BUCKET)(blob="nope")
    state = await flow.run()
    assert state.is_failed()
    assert "gs://aflow-bucket/nope not found" in task_message(state)


async def test_encryption_key_is_checked_sent_and_redacted(gcs: StorageEmulator) -> None:
    await make_bucket()
    raw = b"k" * 16 + b"0123456789abcdef"
    encoded = base64.b64encode(raw).decode()
    assert await GCSUpload(BUCKET).run(data=b"secret", blob="enc", encryption_key=encoded) == "enc"
    assert await GCSDownload(BUCKET).run(blob="enc", encryption_key=raw) == b"secret"
    assert redact(f"key={encoded}") == "key=****"
    with pytest.raises(ValueError, match="encryption_key must be 32 bytes"):
        await GCSUpload(BUCKET).run(data=b"x", blob="k", encryption_key="too-short")


# ----------------------------------------------------------------------------- copy / exists


async def test_copy_between_buckets(gcs: StorageEmulator) -> None:
    await make_bucket()
    await make_bucket("dest-bucket")
    await GCSUpload(BUCKET).run(data=b"payload", blob="src")
    assert await GCSCopy(BUCKET, "src", "dest-bucket", "dst").run() == "dst"
    assert await GCSDownload("dest-bucket").run(blob="dst") == b"payload"
    assert await GCSCopy(BUCKET, "src", BUCKET, "src-copy").run() == "src-copy"  # same bucket, other name


async def test_copy_refuses_missing_or_identical_names() -> None:
    with pytest.raises(ValueError, match="missing source or destination: source_blob, dest_blob"):
        await GCSCopy("a", None, "b").run()
    with pytest.raises(ValueError, match="missing source or destination: source_bucket"):
        await GCSCopy(None, "x", "b", "y").run()
    with pytest.raises(ValueError, match=r"source and destination are identical \(gs://a/x\)"):
        await GCSCopy("a", "x", "a", "x").run()


async def test_copy_failures_name_what_is_missing(gcs: StorageEmulator) -> None:
    await make_bucket()
    await GCSUpload(BUCKET).run(data=b"p", blob="src")
    with pytest.raises(signals.FAIL, match=r"GCSCopy: source object gs://aflow-bucket/nope not found"):
        await GCSCopy(BUCKET, "nope", BUCKET, "d").run()
    with pytest.raises(signals.FAIL, match=r"GCSCopy: source bucket 'no-src' not found"):
        await GCSCopy("no-src", "src", BUCKET, "d").run()
    with pytest.raises(signals.FAIL, match=r"GCSCopy: destination bucket 'no-dest' not found \(create_bucket"):
        await GCSCopy(BUCKET, "src", "no-dest", "d").run()
    assert await GCSCopy(BUCKET, "src", "no-dest", "d", create_bucket=True).run() == "d"
    assert await GCSDownload("no-dest").run(blob="d") == b"p"


async def test_blob_exists(gcs: StorageEmulator) -> None:
    await make_bucket()
    await GCSUpload(BUCKET).run(data=b"here", blob="here")
    assert await GCSBlobExists(BUCKET, "here").run() is True
    assert await GCSBlobExists(BUCKET, "gone", fail_if_not_found=False).run() is False
    assert await GCSBlobExists("no-bucket", "gone").run(fail_if_not_found=False) is False
    with pytest.raises(signals.FAIL, match=r"GCSBlobExists: object gs://aflow-bucket/gone not found$"):
        await GCSBlobExists(BUCKET, "gone").run()
    with pytest.raises(signals.FAIL, match=r"not found after waiting 0.3s"):
        await GCSBlobExists(BUCKET, "gone", wait_seconds=0.3).run()


async def test_blob_exists_waits_for_an_object_that_appears(gcs: StorageEmulator) -> None:
    await make_bucket()

    async def later() -> None:
        await anyio.sleep(0.1)
        await GCSUpload(BUCKET).run(data=b"late", blob="late")

    async with anyio.create_task_group() as tg:
        tg.start_soon(later)
        assert await GCSBlobExists(BUCKET, "late", wait_seconds=5).run() is True


# ----------------------------------------------------------------------------- sessions, credentials


async def test_200_concurrent_uploads_in_one_flow_share_one_session(gcs: StorageEmulator) -> None:
    await make_bucket()
    with counting_sessions() as counter:
        up = GCSUpload(BUCKET)
        with Flow("uploads") as flow:
            names = up.map(data=[f"v{i}".encode() for i in range(200)], blob=[f"k/{i:03d}" for i in range(200)])
            check = GCSBlobExists(BUCKET, "k/199")(upstream_tasks=[names])
            back = GCSDownload(BUCKET, blob="k/042")(upstream_tasks=[names])
        state = await flow.run()
        assert state.is_successful(), state.message
        assert state.result[names].result == [f"k/{i:03d}" for i in range(200)]
        assert state.result[check].result is True
        assert state.result[back].result == b"v42"
        assert counter.opened == 1  # 200 uploads, a check and a download: one aiohttp session
        assert counter.closed == 1  # closed when the run ended


async def test_a_task_outside_a_flow_opens_and_closes_its_own_session(gcs: StorageEmulator) -> None:
    with counting_sessions() as counter:
        await GCSUpload("solo", create_bucket=True).run(data=b"x", blob="k")
        assert counter.opened == counter.closed == 1


async def test_credentials_from_a_secret_are_redacted(gcs: StorageEmulator) -> None:
    down = GCSDownload(BUCKET)
    with Flow("creds") as flow:
        down(blob="nope", credentials=aflow.Secret("MY_GCP"))
    state = await flow.run(context={"secrets": {"MY_GCP": SERVICE_ACCOUNT}})
    assert state.is_failed()
    message = task_message(state)
    assert "not found" in message
    assert "not-a-real-key" not in message
    assert redact(PRIVATE_KEY) == "****"
    assert redact("key-id-7f3e9a1c2b") == "****"


async def test_the_gcp_credentials_secret_is_the_default(gcs: StorageEmulator) -> None:
    await make_bucket()
    with aflow.context.temporary(secrets={"GCP_CREDENTIALS": SERVICE_ACCOUNT}):
        assert await GCSDownload(BUCKET).run(blob="seed") == b"seed"
    with aflow.context.temporary(secrets={"GCP_CREDENTIALS": "not json"}):
        with pytest.raises(ValueError, match="service account's JSON key") as info:
            await GCSDownload(BUCKET).run(blob="seed")
        assert "not json" not in str(info.value)
    with pytest.raises(ValueError, match="not a list"):
        await GCSDownload(BUCKET).run(blob="seed", credentials=[1])


def test_token_for_an_emulator_is_none() -> None:
    assert _auth.token_for(SERVICE_ACCOUNT, None, emulated=True) is None  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- transient failures


@pytest.fixture
async def failing_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[[int, float], None]]:
    """A server answering every request with a set status (after a set delay); STORAGE_EMULATOR_HOST points at it."""
    behaviour = {"status": 503, "delay": 0.0}

    async def handler(request: web.Request) -> web.Response:
        await anyio.sleep(behaviour["delay"])
        return web.Response(status=int(behaviour["status"]), text="backend busy", headers={"Retry-After": "0"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")

    def configure(status: int, delay: float = 0.0) -> None:
        behaviour.update(status=status, delay=delay)

    try:
        yield configure
    finally:
        await runner.cleanup()


async def test_5xx_and_429_retry_then_fail(failing_server: Callable[[int, float], None]) -> None:
    for status in (503, 429):
        failing_server(status, 0.0)
        up = GCSUpload(BUCKET, max_retries=1, retry_delay=0)
        with Flow("busy") as flow:
            up(data=b"x", blob="k")
        state = await flow.run()
        assert state.is_failed()
        message = task_message(state)
        assert f"GCS upload to gs://aflow-bucket/k failed: HTTP {status}" in message
        assert "backend busy" in message
        assert "no retries left after 2 attempts" in message


async def test_other_http_errors_fail_at_once(failing_server: Callable[[int, float], None]) -> None:
    failing_server(403, 0.0)
    with pytest.raises(signals.FAIL, match=r"GCS download of gs://b/k failed: HTTP 403: Forbidden: backend busy"):
        await GCSDownload("b").run(blob="k")


async def test_a_request_timeout_is_transient(failing_server: Callable[[int, float], None]) -> None:
    failing_server(200, 2.0)
    with pytest.raises(signals.FAIL, match=r"GCS check of gs://b/k failed: timed out"):
        await GCSBlobExists("b", "k", request_timeout=0.1).run()
    with pytest.raises(signals.FAIL, match="timed out"):
        await GCSDownload("b", request_timeout=(0.1, 0.1)).run(blob="k")


# ----------------------------------------------------------------------------- GCSResult


async def test_gcs_result_write_read_exists_overwrite(gcs: StorageEmulator) -> None:
    await make_bucket()
    result = GCSResult(BUCKET, serializer=JSONSerializer(), credentials=SERVICE_ACCOUNT)
    assert not await result.exists("r/one.json")
    with pytest.raises(FileNotFoundError, match=r"no result at gs://aflow-bucket/r/one\.json"):
        await result.read("r/one.json")
    assert await result.write({"a": [1, 2]}, "r/one.json") == "r/one.json"
    assert await result.exists("r/one.json")
    assert await result.read("r/one.json") == {"a": [1, 2]}
    await result.write("second", "r/one.json")
    assert await result.read("r/one.json") == "second"
    assert await GCSDownload(BUCKET).run(blob="r/one.json") == b'"second"'
    assert "not-a-real-key" not in repr(result)
    missing = GCSResult("no-such-bucket")
    with pytest.raises(FileNotFoundError):
        await missing.read("x")
    assert not await missing.exists("x")
    with pytest.raises(OSError, match="GCSResult: writing gs://no-such-bucket/x failed: HTTP 404"):
        await missing.write(1, "x")
    with pytest.raises(ValueError, match="GCSResult needs a bucket"):
        GCSResult("")
    with pytest.raises(ValueError, match="must not be empty"):
        await result.read("")


async def test_gcs_result_as_checkpoint_and_target(gcs: StorageEmulator) -> None:
    await make_bucket()
    runs: list[int] = []

    @aflow.task(target="targets/{task_name}-{x}.pkl")
    def double(x: int) -> int:
        runs.append(x)
        return 2 * x

    @aflow.task
    def plus_one(y: int) -> int:
        return y + 1

    result = GCSResult(BUCKET, location="ckpt/{task_name}.pkl")
    with Flow("ckpt", result=result, checkpoint=True) as flow:
        out = double(21)
        more = plus_one(out)
    with counting_sessions() as counter:
        first = await flow.run()
    assert first.is_successful(), first.message
    assert first.result[out].result == 42
    assert counter.opened == 1
    assert await GCSResult(BUCKET).read("targets/double-21.pkl") == 42
    assert await GCSResult(BUCKET).read("ckpt/plus_one.pkl") == 43  # checkpointed
    second = await flow.run()
    assert second.result[out].is_cached()
    assert second.result[out].result == 42
    assert second.result[more].result == 43
    assert runs == [21]


async def test_gcs_result_errors_are_os_errors(failing_server: Callable[[int, float], None]) -> None:
    failing_server(500, 0.0)
    result = GCSResult("b")
    with pytest.raises(OSError, match=r"GCSResult: reading gs://b/x failed: HTTP 500"):
        await result.read("x")
    with pytest.raises(OSError, match=r"checking gs://b/x failed"):
        await result.exists("x")


def test_storage_module_exports() -> None:
    assert storage.__all__ == ("GCSBlobExists", "GCSCopy", "GCSDownload", "GCSUpload", "storages")


# ----------------------------------------------------------------------------- real auth (a fake Google)


async def test_a_key_signs_a_token_sent_as_bearer_and_kept_out_of_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside an emulator: the key signs a JWT for a token, sent on every call, never in a message."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from gcloud.aio.storage import Storage

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    seen: list[str] = []

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        return web.json_response({"access_token": "ya29.fake-access-token-1234", "expires_in": 3600})

    async def upload(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        await request.read()
        return web.json_response({"name": request.query["name"], "bucket": request.match_info["bucket"]})

    async def download(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.Response(status=403, text="caller lacks storage.objects.get")

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_post("/upload/storage/v1/b/{bucket}/o", upload)
    app.router.add_get("/storage/v1/b/{bucket}/o/{name}", download)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    key = {**SERVICE_ACCOUNT, "type": "service_account", "private_key": pem, "token_uri": f"{url}/token"}
    opened: list[bool] = []

    @asynccontextmanager
    async def open_storage(credentials: Any, emulated: bool) -> AsyncIterator[Storage]:
        opened.append(emulated)
        async with _auth.session() as client:
            token = _auth.token_for(credentials, client, emulated=emulated)
            yield Storage(session=client, token=token, api_root=url, api_is_dev=False)  # type: ignore[arg-type]

    try:
        with storage.storages.override(open_storage):
            with Flow("auth") as flow:
                up = GCSUpload(BUCKET)(data=b"x", blob="k", credentials=key)
                down = GCSDownload(BUCKET)(blob="k", credentials=key, upstream_tasks=[up])
            state = await flow.run()
    finally:
        await runner.cleanup()
    assert state.result[up].result == "k"
    assert state.result[down].is_failed()
    message = str(state.result[down].message)
    assert "HTTP 403" in message
    assert "caller lacks storage.objects.get" in message
    assert seen == ["Bearer ya29.fake-access-token-1234"] * 2
    assert opened == [False]  # one Storage (one token) for both tasks
    assert "fake-access-token" not in message
    assert "PRIVATE KEY" not in message
    assert redact(pem) == "****"


async def test_a_json_text_key_is_accepted_and_its_private_parts_redacted(gcs: StorageEmulator) -> None:
    import json

    await make_bucket()
    text_key = {**SERVICE_ACCOUNT, "private_key": "json-text-private-key-93b1", "private_key_id": "json-kid-93b1"}
    assert await GCSDownload(BUCKET).run(blob="seed", credentials=json.dumps(text_key)) == b"seed"
    assert redact("json-text-private-key-93b1 json-kid-93b1") == "**** ****"
