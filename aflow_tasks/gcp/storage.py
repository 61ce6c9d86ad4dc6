"""Google Cloud Storage tasks on gcloud-aio-storage: `GCSDownload`, `GCSUpload`, `GCSCopy`, `GCSBlobExists`.

Every task of a flow run shares the run's aiohttp session (`aflow_tasks.gcp._auth`) and one
``gcloud.aio.storage.Storage`` per credentials (`storages`). ``STORAGE_EMULATOR_HOST`` (with its
scheme, ``http://127.0.0.1:9023``) points them at an emulator, with no auth.
"""

from __future__ import annotations

import io
import uuid
from typing import TYPE_CHECKING, Any

import anyio

from aflow import Task, context, defaults_from_attrs
from aflow.signals import FAIL

from ._gcs import (
    Timeout,
    as_bytes,
    bucket_exists,
    check_chunk_size,
    client_timeout_of,
    content_type_for,
    encryption_headers,
    gcs_errors,
    make_bucket,
    need,
    object_exists,
    project_of,
    status_of,
    storage_client,
    storages,
    upload_bytes,
)

if TYPE_CHECKING:
    from gcloud.aio.storage import Storage

__all__ = ("GCSBlobExists", "GCSCopy", "GCSDownload", "GCSUpload", "storages")


class _GCSTask(Task):
    def _missing(self, what: str, hint: str = "") -> FAIL:
        return FAIL(f"{type(self).__name__}: {what} not found{hint}")


class GCSDownload(_GCSTask):
    """Download an object from Google Cloud Storage and return its bytes.

    Args:
        bucket: The default bucket to download from (required here, as in Prefect 1).
        blob: The default object name. Defaults to None (give it to the call).
        project: The default Google Cloud project. Defaults to None.
        chunk_size: Read the object in pieces of this many bytes (a multiple of 256 KiB).
            Defaults to None (one read).
        request_timeout: Seconds to wait for the service, or ``(connect, read)``. Defaults to 60.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        bucket: str,
        blob: str | None = None,
        project: str | None = None,
        chunk_size: int | None = None,
        request_timeout: Timeout = 60,
        **kwargs: Any,
    ) -> None:
        self.bucket = bucket
        self.blob = blob
        self.project = project
        self.chunk_size = check_chunk_size(chunk_size)
        self.request_timeout = request_timeout
        super().__init__(**kwargs)

    @defaults_from_attrs("bucket", "blob", "project", "chunk_size", "request_timeout")
    async def run(
        self,
        bucket: str | None = None,
        blob: str | None = None,
        project: str | None = None,
        chunk_size: int | None = None,
        credentials: Any = None,
        encryption_key: str | bytes | None = None,
        request_timeout: Timeout | None = None,
    ) -> bytes:
        """Download ``gs://bucket/blob``.

        Args:
            bucket: The bucket (default: the initialization's).
            blob: The object name (default: the initialization's; required).
            project: The project (unused by a download; kept for Prefect 1's signature).
            chunk_size: Read in pieces of this many bytes (default: the initialization's).
            credentials: A service-account key (a dict, its JSON text, or a lazy `aflow.Secret`);
                None for the ``GCP_CREDENTIALS`` secret, else Application Default Credentials.
            encryption_key: A customer-supplied AES-256 key (32 bytes, raw or base64).
            request_timeout: Seconds, or ``(connect, read)`` (default: the initialization's).

        Returns:
            The object's bytes.

        Raises:
            ValueError: No bucket or blob, or a bad chunk_size/encryption_key.
            FAIL: The bucket or the object does not exist, or GCS refused the download.
            RETRY: A 429/5xx or a timeout while the task has retries left.
        """
        need(bucket, "GCSDownload", "bucket")
        need(blob, "GCSDownload", "blob")
        assert bucket is not None
        assert blob is not None
        chunk_size = check_chunk_size(chunk_size)
        timeout = client_timeout_of(request_timeout)
        headers = encryption_headers(encryption_key)
        async with storage_client(credentials) as storage, gcs_errors(f"GCS download of gs://{bucket}/{blob}"):
            try:
                if chunk_size is None:
                    return await storage.download(bucket, blob, headers=dict(headers), timeout=timeout)
                stream = await storage.download_stream(bucket, blob, headers=dict(headers), timeout=timeout)
                parts = []
                while part := await stream.read(chunk_size):
                    parts.append(part)
                return b"".join(parts)
            except Exception as exc:
                if status_of(exc) in (404, 410):
                    if not await bucket_exists(storage, bucket, timeout):
                        raise self._missing(f"bucket {bucket!r}") from None
                    raise self._missing(f"object gs://{bucket}/{blob}") from None
                raise


class GCSUpload(_GCSTask):
    """Upload str (as UTF-8), bytes or ``io.BytesIO`` to Google Cloud Storage; return the object name.

    Objects larger than ``chunk_size`` (or than 5 MiB) go up as a resumable upload; smaller ones
    in one request, with their content type and encoding. An object of the same name is replaced.

    Args:
        bucket: The default bucket to upload to (required here, as in Prefect 1).
        blob: The default object name. Defaults to None: ``"prefect-"`` and the task run's id.
        project: The default project (used to create a bucket). Defaults to None.
        chunk_size: Size in bytes above which the upload is resumable (a multiple of 256 KiB).
            Defaults to 104857600 (100 MiB).
        create_bucket: Create the bucket when it does not exist. Defaults to False.
        request_timeout: Seconds to wait for the service, or ``(connect, read)``. Defaults to 60.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        bucket: str,
        blob: str | None = None,
        project: str | None = None,
        chunk_size: int = 104857600,
        create_bucket: bool = False,
        request_timeout: Timeout = 60,
        **kwargs: Any,
    ) -> None:
        self.bucket = bucket
        self.blob = blob
        self.project = project
        self.chunk_size = check_chunk_size(chunk_size)
        self.create_bucket = create_bucket
        self.request_timeout = request_timeout
        super().__init__(**kwargs)

    @defaults_from_attrs("bucket", "blob", "project", "chunk_size", "create_bucket", "request_timeout")
    async def run(
        self,
        data: str | bytes | io.BytesIO | None = None,
        bucket: str | None = None,
        blob: str | None = None,
        project: str | None = None,
        chunk_size: int | None = None,
        credentials: Any = None,
        encryption_key: str | bytes | None = None,
        create_bucket: bool = False,
        content_type: str | None = None,
        content_encoding: str | None = None,
        request_timeout: Timeout | None = None,
    ) -> str:
        """Upload ``data`` to ``gs://bucket/blob``.

        Args:
            data: The data: str (sent as UTF-8), bytes or ``io.BytesIO`` (read from its position).
            bucket: The bucket (default: the initialization's).
            blob: The object name (default: the initialization's, else ``"prefect-<task_run_id>"``).
            project: The project a created bucket belongs to (default: the initialization's, else
                the credentials').
            chunk_size: Size above which the upload is resumable (default: the initialization's).
            credentials: A service-account key (a dict, its JSON text, or a lazy `aflow.Secret`);
                None for the ``GCP_CREDENTIALS`` secret, else Application Default Credentials.
            encryption_key: A customer-supplied AES-256 key (32 bytes, raw or base64).
            create_bucket: Create a missing bucket (default: the initialization's).
            content_type: The object's ``Content-Type`` (default: guessed from its name, else
                ``text/plain; charset=utf-8`` for str and ``application/octet-stream`` for bytes).
            content_encoding: The object's ``Content-Encoding`` (``"gzip"`` for gzipped data).
            request_timeout: Seconds, or ``(connect, read)`` (default: the initialization's).

        Returns:
            The object name.

        Raises:
            TypeError: ``data`` is not str, bytes or BytesIO.
            ValueError: No data or bucket, or a bad chunk_size/encryption_key.
            FAIL: The bucket does not exist (without ``create_bucket``), or GCS refused the upload.
            RETRY: A 429/5xx or a timeout while the task has retries left.
        """
        need(data, "GCSUpload", "data")
        need(bucket, "GCSUpload", "bucket")
        assert bucket is not None
        body = as_bytes(data)
        if blob is None:
            blob = "prefect-" + str(context.get("task_run_id", "no-id-" + str(uuid.uuid4())))
        chunk_size = check_chunk_size(chunk_size)
        timeout = client_timeout_of(request_timeout)
        headers = encryption_headers(encryption_key)
        kind = content_type_for(blob, data, content_type)
        resumable = True if chunk_size is not None and len(body) > chunk_size else None

        async def upload(storage: Storage) -> None:
            await upload_bytes(
                storage,
                bucket,
                blob,
                body,
                content_type=kind,
                content_encoding=content_encoding,
                headers=headers,
                resumable=resumable,
                client_timeout=timeout,
            )

        async with storage_client(credentials) as storage, gcs_errors(f"GCS upload to gs://{bucket}/{blob}"):
            try:
                await upload(storage)
            except Exception as exc:
                if status_of(exc) != 404 or await bucket_exists(storage, bucket, timeout):
                    raise
                if not create_bucket:
                    raise self._missing(f"bucket {bucket!r}", " (create_bucket=True creates it)") from None
                await make_bucket(storage, bucket, project or project_of(credentials), timeout, self)
                await upload(storage)
        return blob


class GCSCopy(_GCSTask):
    """Copy an object from one place in Google Cloud Storage to another, without downloading it.

    Args:
        source_bucket: The default source bucket. Defaults to None.
        source_blob: The default source object name. Defaults to None.
        dest_bucket: The default destination bucket. Defaults to None.
        dest_blob: The default destination object name. Defaults to None.
        project: The default project (used to create a bucket). Defaults to None.
        create_bucket: Create the destination bucket when it does not exist. Defaults to False.
        request_timeout: Seconds to wait for the service, or ``(connect, read)``. Defaults to 60.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        source_bucket: str | None = None,
        source_blob: str | None = None,
        dest_bucket: str | None = None,
        dest_blob: str | None = None,
        project: str | None = None,
        create_bucket: bool = False,
        request_timeout: Timeout = 60,
        **kwargs: Any,
    ) -> None:
        self.source_bucket = source_bucket
        self.source_blob = source_blob
        self.dest_bucket = dest_bucket
        self.dest_blob = dest_blob
        self.project = project
        self.create_bucket = create_bucket
        self.request_timeout = request_timeout
        super().__init__(**kwargs)

    @defaults_from_attrs(
        "source_bucket", "source_blob", "dest_bucket", "dest_blob", "project", "create_bucket", "request_timeout"
    )
    async def run(
        self,
        source_bucket: str | None = None,
        source_blob: str | None = None,
        dest_bucket: str | None = None,
        dest_blob: str | None = None,
        project: str | None = None,
        credentials: Any = None,
        create_bucket: bool = False,
        request_timeout: Timeout | None = None,
    ) -> str:
        """Copy ``gs://source_bucket/source_blob`` to ``gs://dest_bucket/dest_blob``.

        Args:
            source_bucket: The source bucket (default: the initialization's).
            source_blob: The source object name (default: the initialization's).
            dest_bucket: The destination bucket (default: the initialization's).
            dest_blob: The destination object name (default: the initialization's).
            project: The project a created bucket belongs to (default: the initialization's).
            credentials: A service-account key (a dict, its JSON text, or a lazy `aflow.Secret`);
                None for the ``GCP_CREDENTIALS`` secret, else Application Default Credentials.
            create_bucket: Create a missing destination bucket (default: the initialization's).
            request_timeout: Seconds, or ``(connect, read)`` (default: the initialization's).

        Returns:
            ``dest_blob``.

        Raises:
            ValueError: One of the four names is missing, or source and destination are the same.
            FAIL: A bucket or the source object does not exist, or GCS refused the copy.
            RETRY: A 429/5xx or a timeout while the task has retries left.
        """
        names = {
            "source_bucket": source_bucket,
            "source_blob": source_blob,
            "dest_bucket": dest_bucket,
            "dest_blob": dest_blob,
        }
        missing = [name for name, value in names.items() if not value]
        if missing:
            raise ValueError(f"GCSCopy: missing source or destination: {', '.join(missing)}")
        assert source_bucket
        assert source_blob
        assert dest_bucket
        assert dest_blob
        if (source_bucket, source_blob) == (dest_bucket, dest_blob):
            raise ValueError(f"GCSCopy: source and destination are identical (gs://{source_bucket}/{source_blob})")
        timeout = client_timeout_of(request_timeout)
        action = f"GCS copy of gs://{source_bucket}/{source_blob} to gs://{dest_bucket}/{dest_blob}"

        async def copy(storage: Storage) -> None:
            await storage.copy(source_bucket, source_blob, dest_bucket, new_name=dest_blob, timeout=timeout)

        async with storage_client(credentials) as storage, gcs_errors(action):
            try:
                await copy(storage)
            except Exception as exc:
                if status_of(exc) != 404:
                    raise
                if not await bucket_exists(storage, source_bucket, timeout):
                    raise self._missing(f"source bucket {source_bucket!r}") from None
                if await bucket_exists(storage, dest_bucket, timeout):
                    raise self._missing(f"source object gs://{source_bucket}/{source_blob}") from None
                if not create_bucket:
                    hint = " (create_bucket=True creates it)"
                    raise self._missing(f"destination bucket {dest_bucket!r}", hint) from None
                await make_bucket(storage, dest_bucket, project or project_of(credentials), timeout, self)
                await copy(storage)
        return dest_blob


class GCSBlobExists(_GCSTask):
    """Tell whether an object exists in Google Cloud Storage, waiting up to ``wait_seconds`` for it.

    Args:
        bucket_name: The default bucket. Defaults to None.
        blob: The default object name. Defaults to None.
        project: The default project (unused by the check; kept for Prefect 1's signature).
            Defaults to None.
        wait_seconds: Check again (after 0.25, 0.5, 1... seconds) until the object exists or this
            many seconds have passed. Defaults to 0 (one check).
        fail_if_not_found: Fail the task when the object is not there. Defaults to True.
        request_timeout: Seconds to wait for the service, or ``(connect, read)``. Defaults to 60.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        bucket_name: str | None = None,
        blob: str | None = None,
        project: str | None = None,
        wait_seconds: float = 0,
        fail_if_not_found: bool = True,
        request_timeout: Timeout = 60,
        **kwargs: Any,
    ) -> None:
        self.bucket_name = bucket_name
        self.blob = blob
        self.project = project
        self.wait_seconds = wait_seconds
        self.fail_if_not_found = fail_if_not_found
        self.request_timeout = request_timeout
        super().__init__(**kwargs)

    @defaults_from_attrs("bucket_name", "blob", "project", "wait_seconds", "fail_if_not_found", "request_timeout")
    async def run(
        self,
        bucket_name: str | None = None,
        blob: str | None = None,
        project: str | None = None,
        wait_seconds: float = 0,
        fail_if_not_found: bool = True,
        credentials: Any = None,
        request_timeout: Timeout | None = None,
    ) -> bool:
        """Check for ``gs://bucket_name/blob``.

        Args:
            bucket_name: The bucket (default: the initialization's).
            blob: The object name (default: the initialization's).
            project: The project (default: the initialization's; unused by the check).
            wait_seconds: How long to keep checking (default: the initialization's).
            fail_if_not_found: Fail when not found (default: the initialization's).
            credentials: A service-account key (a dict, its JSON text, or a lazy `aflow.Secret`);
                None for the ``GCP_CREDENTIALS`` secret, else Application Default Credentials.
            request_timeout: Seconds, or ``(connect, read)`` (default: the initialization's).

        Returns:
            True when the object exists; False when not and ``fail_if_not_found`` is False.

        Raises:
            ValueError: No bucket_name or blob.
            FAIL: The object was not found (``fail_if_not_found``), or GCS refused the check.
            RETRY: A 429/5xx or a timeout while the task has retries left.
        """
        need(bucket_name, "GCSBlobExists", "bucket_name")
        need(blob, "GCSBlobExists", "blob")
        assert bucket_name is not None
        assert blob is not None
        if wait_seconds is None or wait_seconds < 0:
            raise ValueError(f"wait_seconds must be 0 or more, got {wait_seconds!r}")
        timeout = client_timeout_of(request_timeout)
        deadline = anyio.current_time() + wait_seconds
        delay = 0.25
        async with storage_client(credentials) as storage, gcs_errors(f"GCS check of gs://{bucket_name}/{blob}"):
            while True:
                if await object_exists(storage, bucket_name, blob, timeout):
                    return True
                left = deadline - anyio.current_time()
                if left <= 0:
                    break
                await anyio.sleep(min(delay, left))
                delay *= 2
        if fail_if_not_found:
            waited = f" after waiting {wait_seconds:g}s" if wait_seconds else ""
            raise FAIL(f"GCSBlobExists: object gs://{bucket_name}/{blob} not found{waited}")
        return False
