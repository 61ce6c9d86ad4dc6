"""S3 tasks (`S3Upload`, `S3Download`, `S3List`) and `S3Result`, a result store on S3."""

from __future__ import annotations

import functools
import gzip
import os
import uuid
import zlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, final

import anyio

from aflow import defaults_from_attrs
from aflow.integration import to_the_end
from aflow.results import Result, Serializer

from ._client import AWSTask, aws_client, aws_errors, cleanup, error_code, require_aiobotocore

__all__ = ("S3Download", "S3List", "S3Result", "S3Upload")

MiB = 1024 * 1024
_MIN_PART = 5 * MiB  # S3's smallest part (all but the last)
_MAX_PARTS = 10_000
_DOWNLOAD_CHUNK = MiB
_COMPRESSIONS = (None, "gzip")
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


def _check_compression(compression: str | None) -> str | None:
    if compression not in _COMPRESSIONS:
        raise ValueError(f"compression must be None or 'gzip', got {compression!r}")
    return compression


def _need(value: Any, task: str, arg: str) -> None:
    if value is None:
        raise ValueError(
            f"{task} needs {arg}: give it at initialization ({task}({arg}=...)) or to the call ({arg}=...)"
        )


class S3Upload(AWSTask):
    """Upload bytes, text or a file to S3 and return the key.

    Data larger than ``multipart_threshold`` goes up as a multipart upload of
    ``multipart_chunksize`` parts, ``max_concurrency`` parts at a time (a file is read one part
    at a time, so at most ``max_concurrency`` parts are in memory); a failed or cancelled
    multipart upload is aborted.

    Args:
        bucket: The bucket. Defaults to None (give it to the call).
        compression: ``"gzip"`` to compress bytes or text before upload. Defaults to None.
        upload_args: More ``put_object``/``create_multipart_upload`` arguments (``ContentType``,
            ``Metadata``...). Defaults to None.
        multipart_threshold: Size in bytes above which a multipart upload is used. Defaults to 8 MiB.
        multipart_chunksize: Size in bytes of each part (at least 5 MiB). Defaults to 8 MiB.
        max_concurrency: How many parts are uploaded at once. Defaults to 4.
        credentials: See `aflow_tasks.aws.AWSTask` (also ``region_name``, ``endpoint_url``,
            ``client_kwargs``). Defaults to None.
        **kwargs: Client settings and `aflow.Task` arguments.
    """

    def __init__(
        self,
        bucket: Any = None,
        compression: str | None = None,
        upload_args: Mapping[str, Any] | None = None,
        multipart_threshold: int = 8 * MiB,
        multipart_chunksize: int = 8 * MiB,
        max_concurrency: int = 4,
        credentials: Any = None,
        **kwargs: Any,
    ) -> None:
        if multipart_chunksize < _MIN_PART:
            raise ValueError(f"multipart_chunksize must be at least 5 MiB ({_MIN_PART}), got {multipart_chunksize}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.bucket = bucket
        self.compression = _check_compression(compression)
        self.upload_args = dict(upload_args or {})
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize
        self.max_concurrency = max_concurrency
        super().__init__(credentials=credentials, **kwargs)

    @defaults_from_attrs("bucket", "compression", "upload_args", "credentials")
    async def run(
        self,
        data: bytes | str | os.PathLike[str] | None = None,
        key: str | None = None,
        credentials: Any = None,
        bucket: str | None = None,
        compression: str | None = None,
        upload_args: Mapping[str, Any] | None = None,
    ) -> str:
        """Upload ``data``.

        Args:
            data: Bytes, a str (sent as UTF-8), or a path (``pathlib.Path``/``os.PathLike``) of a
                file to upload.
            key: The object key. Defaults to None (a new uuid4).
            credentials: AWS credentials (default: the initialization's).
            bucket: The bucket (default: the initialization's; required).
            compression: ``"gzip"`` or None (default: the initialization's); bytes and text only.
            upload_args: More upload arguments (default: the initialization's).

        Returns:
            The key.

        Raises:
            ValueError: No data or bucket, or compression asked for a file.
            FAIL: S3 refused the upload (the error code and message in the message).
            RETRY: Throttling or a 5xx while the task has retries left.
        """
        _need(data, "S3Upload", "data")
        _need(bucket, "S3Upload", "bucket")
        assert data is not None
        assert bucket is not None
        key = key or str(uuid.uuid4())
        extra = dict(upload_args or {})
        compression = _check_compression(compression)
        label = f"S3 upload to s3://{bucket}/{key}"
        async with self._client("s3", credentials) as client, aws_errors(self, label):
            if isinstance(data, os.PathLike):
                if compression:
                    raise ValueError("S3Upload compresses bytes and text only, not files (compression='gzip')")
                await self._upload_file(client, bucket, key, os.fspath(data), extra)
            else:
                body = data.encode() if isinstance(data, str) else bytes(data)
                if compression == "gzip":
                    body = await _maybe_in_thread(gzip.compress, body)
                await self._upload_bytes(client, bucket, key, body, extra)
        return key

    async def _upload_bytes(self, client: Any, bucket: str, key: str, body: bytes, extra: dict[str, Any]) -> None:
        if len(body) <= self.multipart_threshold:
            await client.put_object(Bucket=bucket, Key=key, Body=body, **extra)
            return
        view = memoryview(body)
        offset = 0

        async def read_part() -> bytes:
            nonlocal offset
            part = bytes(view[offset : offset + self.multipart_chunksize])
            offset += len(part)
            return part

        await self._multipart(client, bucket, key, len(body), read_part, extra)

    async def _upload_file(self, client: Any, bucket: str, key: str, path: str, extra: dict[str, Any]) -> None:
        size = (await anyio.Path(path).stat()).st_size
        async with await _open(path, "rb") as file:
            if size <= self.multipart_threshold:
                await client.put_object(Bucket=bucket, Key=key, Body=await file.read(), **extra)
                return

            async def read_part() -> bytes:
                return await file.read(self.multipart_chunksize)

            await self._multipart(client, bucket, key, size, read_part, extra)

    async def _multipart(
        self,
        client: Any,
        bucket: str,
        key: str,
        size: int,
        read_part: Callable[[], Awaitable[bytes]],
        extra: dict[str, Any],
    ) -> None:
        if -(-size // self.multipart_chunksize) > _MAX_PARTS:
            raise ValueError(
                f"{size} bytes need more than {_MAX_PARTS} parts of {self.multipart_chunksize} bytes: "
                "raise multipart_chunksize"
            )

        async def abort_upload(created: Mapping[str, Any]) -> None:
            abort = functools.partial(
                client.abort_multipart_upload, Bucket=bucket, Key=key, UploadId=created["UploadId"]
            )
            await cleanup(abort, f"abort the multipart upload of s3://{bucket}/{key}", self.logger)

        # the upload's id comes with the answer: a cancellation landing meanwhile waits for it, then
        # aborts the upload, so no unfinished upload (whose parts are billed) is left unknown
        created = await to_the_end(client.create_multipart_upload(Bucket=bucket, Key=key, **extra), abort_upload)
        upload_id = created["UploadId"]
        etags: dict[int, str] = {}
        errors: list[Exception] = []
        slots = anyio.Semaphore(self.max_concurrency)
        try:
            async with anyio.create_task_group() as tg:

                async def upload(number: int, body: bytes) -> None:
                    try:
                        response = await client.upload_part(
                            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
                        )
                        etags[number] = response["ETag"]
                    except Exception as exc:
                        errors.append(exc)
                        tg.cancel_scope.cancel()
                    finally:
                        slots.release()

                number = 0
                while True:
                    await slots.acquire()  # read a part only when a slot is free: bounded memory
                    body = await read_part()
                    if not body:
                        slots.release()
                        break
                    number += 1
                    tg.start_soon(upload, number, body)
            if errors:
                raise errors[0]
            parts = [{"ETag": etags[n], "PartNumber": n} for n in sorted(etags)]
            await client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            await abort_upload(created)
            raise
        self.logger.debug("uploaded s3://%s/%s in %d parts", bucket, key, len(parts))


async def _open(path: str | anyio.Path, mode: str) -> anyio.AsyncFile[bytes]:
    """``anyio.open_file``, whose file is closed if a cancellation lands while a thread opens it."""

    async def close(file: anyio.AsyncFile[bytes]) -> None:
        await file.aclose()

    return await to_the_end(anyio.open_file(path, mode), close)  # type: ignore[call-overload]


async def _maybe_in_thread(fn: Callable[[bytes], bytes], data: bytes) -> bytes:
    if len(data) < MiB:
        return fn(data)
    return await anyio.to_thread.run_sync(fn, data)


class S3Download(AWSTask):
    """Download an S3 object: as text, as bytes, or streamed to a file.

    With ``path`` the object is written to that file chunk by chunk (never held in memory
    whole) and the path is returned; a partial file is removed when the download fails.

    Args:
        bucket: The bucket. Defaults to None (give it to the call).
        compression: ``"gzip"`` to decompress the object. Defaults to None.
        as_bytes: Return bytes instead of text decoded as UTF-8. Defaults to False.
        credentials: See `aflow_tasks.aws.AWSTask` (also ``region_name``, ``endpoint_url``,
            ``client_kwargs``). Defaults to None.
        **kwargs: Client settings and `aflow.Task` arguments.
    """

    def __init__(
        self,
        bucket: Any = None,
        compression: str | None = None,
        as_bytes: bool = False,
        credentials: Any = None,
        **kwargs: Any,
    ) -> None:
        self.bucket = bucket
        self.compression = _check_compression(compression)
        self.as_bytes = as_bytes
        super().__init__(credentials=credentials, **kwargs)

    @defaults_from_attrs("bucket", "compression", "as_bytes", "credentials")
    async def run(
        self,
        key: str | None = None,
        credentials: Any = None,
        bucket: str | None = None,
        compression: str | None = None,
        as_bytes: bool | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> str | bytes:
        """Download the object at ``key``.

        Args:
            key: The object key (required).
            credentials: AWS credentials (default: the initialization's).
            bucket: The bucket (default: the initialization's; required).
            compression: ``"gzip"`` or None (default: the initialization's).
            as_bytes: Return bytes, not text (default: the initialization's).
            path: A file to stream the object to; its directory is created if needed.

        Returns:
            The text or the bytes, or the file's path (a str) when ``path`` is given.

        Raises:
            ValueError: No key or bucket.
            FAIL: S3 refused the download (``NoSuchKey``...).
            RETRY: Throttling or a 5xx while the task has retries left.
        """
        _need(key, "S3Download", "key")
        _need(bucket, "S3Download", "bucket")
        compression = _check_compression(compression)
        label = f"S3 download of s3://{bucket}/{key}"
        async with self._client("s3", credentials) as client, aws_errors(self, label):
            response = await client.get_object(Bucket=bucket, Key=key)
            async with response["Body"] as body:
                if path is not None:
                    return await _stream_to_file(body, os.fspath(path), compression)
                data: bytes = await body.read()
        if compression == "gzip":
            data = await _maybe_in_thread(gzip.decompress, data)
        return data if as_bytes else data.decode()


async def _stream_to_file(body: Any, path: str, compression: str | None) -> str:
    target = anyio.Path(path)
    await target.parent.mkdir(parents=True, exist_ok=True)
    decompressor = zlib.decompressobj(wbits=31) if compression == "gzip" else None
    try:
        async with await _open(target, "wb") as file:
            while chunk := await body.read(_DOWNLOAD_CHUNK):
                if decompressor is not None:
                    chunk = decompressor.decompress(chunk)
                await file.write(chunk)
            if decompressor is not None:
                await file.write(decompressor.flush())
    except BaseException:
        await to_the_end(target.unlink(missing_ok=True))
        raise
    return path


def _as_datetime(value: datetime | str | None, arg: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{arg} must be a datetime or an ISO 8601 string, got {value!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class S3List(AWSTask):
    """List the keys of a bucket (all pages), under a prefix, optionally by modification time.

    Args:
        bucket: The bucket. Defaults to None (give it to the call).
        credentials: See `aflow_tasks.aws.AWSTask` (also ``region_name``, ``endpoint_url``,
            ``client_kwargs``). Defaults to None.
        **kwargs: Client settings and `aflow.Task` arguments.
    """

    def __init__(self, bucket: Any = None, credentials: Any = None, **kwargs: Any) -> None:
        self.bucket = bucket
        super().__init__(credentials=credentials, **kwargs)

    @defaults_from_attrs("bucket", "credentials")
    async def run(
        self,
        prefix: str = "",
        delimiter: str = "",
        page_size: int | None = None,
        max_items: int | None = None,
        credentials: Any = None,
        bucket: str | None = None,
        last_modified_begin: datetime | str | None = None,
        last_modified_end: datetime | str | None = None,
    ) -> list[str]:
        """List the keys.

        Args:
            prefix: Only keys starting with it. Defaults to ``""``.
            delimiter: Group keys by it: keys below a further delimiter are left out (as
                ``list_objects_v2``'s ``CommonPrefixes``). Defaults to ``""``.
            page_size: Keys per request (S3's maximum is 1000). Defaults to None.
            max_items: Stop after this many keys. Defaults to None (all).
            credentials: AWS credentials (default: the initialization's).
            bucket: The bucket (default: the initialization's; required).
            last_modified_begin: Only keys modified at or after this time (a datetime, naive
                meaning UTC, or an ISO 8601 string). Defaults to None.
            last_modified_end: Only keys modified before this time. Defaults to None.

        Returns:
            The keys, in S3's (lexicographic) order.

        Raises:
            ValueError: No bucket, or an unreadable time.
            FAIL: S3 refused the listing (``NoSuchBucket``...).
        """
        _need(bucket, "S3List", "bucket")
        begin = _as_datetime(last_modified_begin, "last_modified_begin")
        end = _as_datetime(last_modified_end, "last_modified_end")
        config: dict[str, int] = {}
        if page_size is not None:
            config["PageSize"] = page_size
        if max_items is not None:
            config["MaxItems"] = max_items
        keys: list[str] = []
        async with self._client("s3", credentials) as client, aws_errors(self, f"S3 listing of s3://{bucket}/{prefix}"):
            paginator = client.get_paginator("list_objects_v2")
            pages = paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter=delimiter, PaginationConfig=config)
            async for page in pages:
                for obj in page.get("Contents", ()):
                    modified = obj["LastModified"]
                    if (begin is None or modified >= begin) and (end is None or modified < end):
                        keys.append(obj["Key"])
        return keys


@final
class S3Result(Result):
    """Results stored as objects in an S3 bucket: usable as a flow's checkpoint store.

    The formatted location is the object key. Inside a flow run the result uses the run's shared
    S3 client; a write is one ``put_object``, so readers see the old object or the new one.

    Args:
        bucket: The bucket.
        location: A location template or callable (see `aflow.results.Result`).
        serializer: How values become bytes; None for a `aflow.results.PickleSerializer`.
        credentials: AWS credentials (a dict or a lazy value such as an `aflow.Secret`);
            None for the ``AWS_CREDENTIALS`` secret or botocore's default chain.
        region_name: The AWS region.
        endpoint_url: Another endpoint URL (S3-compatible stores, local test servers).
        client_kwargs: More client arguments (``config=botocore.config.Config(...)``).
    """

    def __init__(
        self,
        bucket: str,
        *,
        location: str | Callable[..., str] | None = None,
        serializer: Serializer | None = None,
        credentials: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        require_aiobotocore()
        if not bucket:
            raise ValueError("S3Result needs a bucket")
        super().__init__(location=location, serializer=serializer)
        self.bucket = bucket
        self.credentials = credentials
        self.region_name = region_name
        self.endpoint_url = endpoint_url
        self.client_kwargs = dict(client_kwargs or {})

    def _client(self) -> Any:
        return aws_client(
            "s3",
            credentials=self.credentials,
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            client_kwargs=self.client_kwargs,
        )

    async def exists(self, location: str) -> bool:
        """Tell whether an object exists at ``location``.

        Args:
            location: A formatted location (the key).

        Returns:
            True if `read` would find a value there.

        Raises:
            OSError: S3 answered with another error than "not found".
        """
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        async with self._client() as client:
            try:
                await client.head_object(Bucket=self.bucket, Key=_check_key(location))
            except ClientError as exc:
                if error_code(exc) in _NOT_FOUND:
                    return False
                raise OSError(f"S3Result: checking s3://{self.bucket}/{location} failed: {exc}") from exc
        return True

    async def read(self, location: str) -> Any:
        """Read and deserialize the object at ``location``.

        Args:
            location: A formatted location (the key).

        Returns:
            The value.

        Raises:
            FileNotFoundError: There is no object at ``location``.
            OSError: S3 answered with another error.
        """
        from botocore.exceptions import ClientError

        async with self._client() as client:
            try:
                response = await client.get_object(Bucket=self.bucket, Key=_check_key(location))
                async with response["Body"] as body:
                    data = await body.read()
            except ClientError as exc:
                if error_code(exc) in _NOT_FOUND:
                    raise FileNotFoundError(f"no result at s3://{self.bucket}/{location}") from None
                raise OSError(f"S3Result: reading s3://{self.bucket}/{location} failed: {exc}") from exc
        return self.serializer.loads(data)

    async def write(self, value: Any, location: str) -> str:
        """Serialize ``value`` and store it at ``location`` (one ``put_object``).

        Args:
            value: The value to store.
            location: A formatted location (the key).

        Returns:
            ``location``.

        Raises:
            OSError: S3 refused the write.
        """
        from botocore.exceptions import ClientError

        data = self.serializer.dumps(value)
        async with self._client() as client:
            try:
                await client.put_object(Bucket=self.bucket, Key=_check_key(location), Body=data)
            except ClientError as exc:
                raise OSError(f"S3Result: writing s3://{self.bucket}/{location} failed: {exc}") from exc
        return location

    def __repr__(self) -> str:
        return (
            f"S3Result(bucket={self.bucket!r}, location={self.location!r}, serializer={self.serializer!r}, "
            f"region_name={self.region_name!r}, endpoint_url={self.endpoint_url!r})"
        )


def _check_key(location: str) -> str:
    if not isinstance(location, str):
        raise TypeError(f"a result location must be a str, not {type(location).__name__}")
    if not location:
        raise ValueError("a result location must not be empty")
    return location
