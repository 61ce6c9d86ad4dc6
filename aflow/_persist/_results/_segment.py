"""`SegmentResult`: many small results appended to a few segment files, written in batches.

One file per result (`LocalResult`) costs a create, a write and a rename per value, plus a hand-over
to a worker thread; for a flow of thousands of small tasks that is most of the run. A
`SegmentResult` appends each value as a framed record to a segment file of its own (one per
instance and process), and every write waiting at the same moment goes in one ``os.write`` (and one
``fsync`` with ``durable=True``) from one worker-thread call: a group commit.

A record on disk::

    magic b"AFR1" | crc32 (4) | sequence (8) | kind (1) | location length (4) | value length (4)
    | location (UTF-8) | value

all little-endian; the CRC covers everything after itself. The kind says whether the value is
inline or in its own file (`LocalResult`'s layout, for values over ``inline_limit``). Reading a
segment stops at a torn record (its frame runs past the end of the file: the tail of a killed
writer) and skips a record whose CRC does not match, so a value is whole or absent.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, final

import anyio
import anyio.to_thread

from ..._runtime._threads import run_batched
from ._local import location_parts, write_file_sync
from ._result import Result
from ._serializers import Serializer

__all__ = ("SEGMENTS", "SegmentResult")

SEGMENTS = ".segments"
"""The directory, under a `SegmentResult`'s ``dir``, that holds its segment files (``*.seg``)."""

_MAGIC = b"AFR1"
_HEAD = struct.Struct("<4sIQBII")  # magic, crc32 of the rest, sequence, kind, location and value lengths
_BODY = struct.Struct("<QBII")  # the part of the head the CRC covers
_INLINE = 0
_FILE = 1
_Entry = tuple[int, bytes | None]  # (sequence, the value's bytes or None when it has its own file)


_Job = tuple[str, Any, "asyncio.Future[None]"]  # (key, value, the future its writer awaits)


class _Batch(list[_Job]):
    """Writes waiting together; ``written`` is set when a flush takes them, done when it ends."""

    __slots__ = ("written",)

    def __init__(self) -> None:
        super().__init__()
        self.written: asyncio.Future[None] | None = None


class _Writer:
    """The writes waiting on one event loop, and the task flushing them."""

    __slots__ = ("flusher", "pending")

    def __init__(self) -> None:
        self.pending = _Batch()
        self.flusher: asyncio.Task[None] | None = None


@final
class SegmentResult(Result):
    """Results appended to segment files under ``dir``: fast for many small values.

    Locations are keys as for `LocalResult`, with the same rules (relative, no ``..``, not a
    directory; ``a//b`` and ``a/./b`` are ``a/b``). A value is serialized, then appended as a
    record to this instance's segment file, ``dir/.segments/<time>-<pid>-<random>.seg``; the
    writes waiting at the same moment, from any number of tasks, go to the file in one system
    call from one worker thread. `write` returns once the value's bytes are in the file, so a
    process killed after that (SIGKILL included) never loses it; with ``durable=True`` the batch
    is also flushed to disk (``fsync``) before any of its writes returns, so a value survives a
    power loss too, at the price of one disk flush per batch rather than per result. A value
    whose bytes exceed ``inline_limit`` is written as its own file at ``dir/<location>``
    (atomically, as `LocalResult` does) and the segment records that it is there.

    A location written more than once holds its newest value: each record carries a sequence
    number (the wall clock in nanoseconds, above every sequence this instance has seen), and
    the highest wins across all segments.

    Reading: the first `read` or `exists` of an instance reads every segment under ``dir`` and
    keeps the newest record of each location in memory (small values' bytes included: memory
    grows with the values stored); later reads are a dict look-up and a deserialization, without
    a thread. The segments are read in one worker-thread call (file I/O never blocks the event
    loop), which concurrent first reads wait for together. A
    record cut short (the tail of a killed process) or whose CRC does not match is ignored, so
    a value is whole or absent. An instance sees what other instances or processes wrote before
    its first read, and everything it wrote itself; `refresh` reads what they appended since.

    Segments only grow: a location written again keeps its older records on disk (they are
    skipped on reading). Use `LocalResult` for results other tools read as files, or that are
    rewritten very often.

    Args:
        dir: The directory results go in (made absolute now); None for ``~/.aflow/results``.
        location: A location template or callable (see `Result`).
        serializer: How values become bytes; None for a `PickleSerializer`.
        durable: Flush each batch of writes to disk before any of them returns.
        inline_limit: The largest value, in bytes once serialized, kept in a segment; a bigger
            one gets its own file.

    Raises:
        ValueError: ``inline_limit`` is negative.
    """

    def __init__(
        self,
        dir: str | os.PathLike[str] | None = None,
        *,
        location: str | Callable[..., str] | None = None,
        serializer: Serializer | None = None,
        durable: bool = False,
        inline_limit: int = 64 * 1024,
    ) -> None:
        super().__init__(location=location, serializer=serializer)
        if inline_limit < 0:
            raise ValueError(f"inline_limit must be >= 0, not {inline_limit!r}")
        self.durable = durable
        self.inline_limit = inline_limit
        base = Path("~/.aflow/results").expanduser() if dir is None else Path(dir)
        self.dir = Path(os.path.abspath(base))
        self._start()

    def _start(self) -> None:
        """The state of an instance that has read and written nothing yet."""
        self._lock = threading.Lock()  # segment appends, scans and the index (threads, several loops)
        self._index: dict[str, _Entry] = {}
        self._loaded = False
        self._scanned: dict[str, int] = {}  # other segments' names: bytes read so far
        self._segment: Path | None = None  # this instance's segment, made at its first write
        self._pid = os.getpid()
        self._own: set[str] = set()  # the segments this instance wrote
        self._seq = 0  # the highest sequence seen or written
        self._dirs: set[Path] = set()
        self._writers: dict[asyncio.AbstractEventLoop, _Writer] = {}
        self._loading: dict[asyncio.AbstractEventLoop, tuple[asyncio.Task[None], list[asyncio.Future[None]]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        # what configures it, not its files, locks or tasks (it is pickled with its tasks for dask)
        keep = ("location", "serializer", "durable", "inline_limit", "dir")
        return {name: self.__dict__[name] for name in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._start()

    def path(self, location: str) -> Path:
        """Return the file that holds ``location`` when its value is too big for a segment.

        Args:
            location: A formatted location.

        Returns:
            The absolute path under ``dir``.

        Raises:
            ValueError: ``location`` is empty, absolute, names a directory or contains ``..``.
            TypeError: ``location`` is not a string.
        """
        return self.dir.joinpath(*location_parts(location, self.dir))

    def _key(self, location: str) -> str:
        if _PLAIN and type(location) is str and location and "\\" not in location and "\0" not in location:
            parts = location.split("/")
            if parts[0] and parts[-1] and "" not in parts and "." not in parts and ".." not in parts:
                return location  # already what location_parts would make of it (the common case)
        return "/".join(location_parts(location, self.dir))

    # -- reading ----------------------------------------------------------------------------------

    async def exists(self, location: str) -> bool:
        """Tell whether a value is stored at ``location``.

        Args:
            location: A formatted location.

        Returns:
            True if `read` would find a value there.

        Raises:
            ValueError: ``location`` would escape ``dir`` (see `path`).
        """
        key = self._key(location)
        if not self._loaded:
            await self._load()
        entry = self._index.get(key)
        if entry is None:
            return False
        if entry[1] is None:
            return await run_batched(self._file(key).is_file)
        return True

    async def read(self, location: str) -> Any:
        """Return the newest value stored at ``location``.

        Args:
            location: A formatted location.

        Returns:
            The value, deserialized.

        Raises:
            FileNotFoundError: Nothing is stored at ``location``.
            ValueError: ``location`` would escape ``dir`` (see `path`).
        """
        key = self._key(location)
        if not self._loaded:
            await self._load()
        entry = self._index.get(key)
        if entry is None:
            raise FileNotFoundError(f"no result at {location!r} in {str(self.dir)!r}")
        data = entry[1]
        if data is None:
            return await run_batched(self._read_file_sync, key)
        return self.serializer.loads(data)

    def _file(self, key: str) -> Path:
        return self.dir.joinpath(*key.split("/"))

    def _read_file_sync(self, key: str) -> Any:
        return self.serializer.loads(self._file(key).read_bytes())

    async def prepare(self) -> None:
        """Read the segments' index now (once per instance), so later reads need no wait."""
        if not self._loaded:
            await self._load()

    async def refresh(self) -> None:
        """Read the records other instances and processes appended since this one last looked."""
        await anyio.to_thread.run_sync(self._scan_sync)

    async def _load(self) -> None:
        """Read every segment once; concurrent first reads wait for the one scan."""
        loop = asyncio.get_running_loop()
        loading = self._loading.get(loop)
        if loading is None:
            waiters: list[asyncio.Future[None]] = []
            loading = self._loading[loop] = (loop.create_task(self._load_task(loop, waiters)), waiters)
        waiter: asyncio.Future[None] = loop.create_future()  # one each: cancelling one cancels no other
        loading[1].append(waiter)
        await waiter

    async def _load_task(self, loop: asyncio.AbstractEventLoop, waiters: list[asyncio.Future[None]]) -> None:
        error: BaseException | None = None
        try:
            await anyio.to_thread.run_sync(self._scan_sync)
        except BaseException as exc:  # the waiters get it (cancelled: the loop is shutting down)
            error = exc
        self._loading.pop(loop, None)
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            elif isinstance(error, asyncio.CancelledError):
                waiter.cancel()
            else:
                waiter.set_exception(error)
        if isinstance(error, asyncio.CancelledError):
            raise error

    def _scan_sync(self) -> None:
        """Index the records appended to other segments since the last scan."""
        with self._lock:
            folder = self.dir / SEGMENTS
            try:
                names = sorted(os.listdir(folder))
            except FileNotFoundError:
                names = []
            for name in names:
                if not name.endswith(".seg") or name in self._own:
                    continue
                start = self._scanned.get(name, 0)
                try:
                    with open(folder / name, "rb") as f:
                        f.seek(start)
                        data = f.read()
                except (FileNotFoundError, IsADirectoryError):
                    continue
                self._scanned[name] = start + self._parse(data)
            self._loaded = True

    def _parse(self, data: bytes) -> int:
        """Index the whole records of ``data``; return how many bytes they took (up to a torn one)."""
        index, head, view, end, pos = self._index, _HEAD.size, memoryview(data), len(data), 0
        top = self._seq
        while pos + head <= end:
            magic, crc, seq, kind, key_len, value_len = _HEAD.unpack_from(data, pos)
            if magic != _MAGIC:
                break  # not a record: nothing after it can be trusted
            stop = pos + head + key_len + value_len
            if stop > end:
                break  # torn: the tail of a write that did not finish
            if zlib.crc32(view[pos + 8 : stop]) == crc and kind in (_INLINE, _FILE):
                try:
                    key = data[pos + head : pos + head + key_len].decode()
                except UnicodeDecodeError:
                    key = ""
                if key:
                    old = index.get(key)
                    if old is None or seq >= old[0]:
                        index[key] = (seq, data[pos + head + key_len : stop] if kind == _INLINE else None)
                    top = max(top, seq)
            pos = stop  # a record with a bad CRC is skipped
        self._seq = top
        return pos

    # -- writing ----------------------------------------------------------------------------------

    async def write(self, value: Any, location: str) -> str:
        """Serialize ``value`` and append it to this instance's segment (in a batch with others).

        Returns once the value's bytes are in the file (and on disk, with ``durable=True``). If
        the caller is cancelled before its batch is taken, nothing is written; after, the batch
        finishes first, then the cancellation goes on.

        Args:
            value: The value to store.
            location: A formatted location.

        Returns:
            ``location``.

        Raises:
            ValueError: ``location`` would escape ``dir`` (see `path`).
            TypeError: The serializer did not return bytes.
        """
        key = self._key(location)
        loop = asyncio.get_running_loop()
        writer = self._writers.get(loop)
        if writer is None:
            writer = self._writers[loop] = _Writer()
        pending = writer.pending
        future: asyncio.Future[None] = loop.create_future()
        pending.append((key, value, future))
        if writer.flusher is None:
            writer.flusher = loop.create_task(self._flush(loop, writer))
        try:
            await future
        except asyncio.CancelledError:
            if pending.written is not None:  # taken: the batch is being written, wait for its end
                with anyio.CancelScope(shield=True):
                    await asyncio.wait([pending.written])
            raise
        return location

    async def _flush(self, loop: asyncio.AbstractEventLoop, writer: _Writer) -> None:
        """Write the pending writes, a batch per worker-thread call, until none is left."""
        try:
            while writer.pending:
                taken, writer.pending = writer.pending, _Batch()
                written = taken.written = loop.create_future()
                jobs = [job for job in taken if not job[2].done()]  # done: cancelled before it was taken
                outcomes: list[BaseException | None] = [None] * len(jobs)
                ran: list[bool] = []
                try:
                    if jobs:
                        await anyio.to_thread.run_sync(self._write_batch_sync, jobs, outcomes, ran)
                finally:
                    for (_, _, future), outcome in zip(jobs, outcomes, strict=True):
                        if future.done():
                            continue
                        if not ran:  # cancelled before the thread started: nothing was written
                            future.cancel()
                        elif outcome is None:
                            future.set_result(None)
                        else:
                            future.set_exception(outcome)
                    written.set_result(None)
        finally:
            for _, _, future in writer.pending:  # only when the flusher itself was cancelled
                future.cancel()
            writer.pending = _Batch()
            writer.flusher = None
            if self._writers.get(loop) is writer:
                del self._writers[loop]

    def _write_batch_sync(self, jobs: list[_Job], outcomes: list[BaseException | None], ran: list[bool]) -> None:
        """In a worker thread: serialize each value, then append every record in one write."""
        ran.append(True)
        dumps, limit = self.serializer.dumps, self.inline_limit
        records: list[tuple[int, bytes, bytes, int]] = []  # (job index, key, value bytes, kind)
        for i, (key, value, _) in enumerate(jobs):
            try:
                data = dumps(value)
                if type(data) is not bytes:
                    if not isinstance(data, bytearray | memoryview):
                        name = type(self.serializer).__name__
                        raise TypeError(f"{name}.dumps returned {type(data).__name__}, not bytes")
                    data = bytes(data)
                if len(data) > limit:  # its own file first, then the record saying so
                    write_file_sync(data, self._file(key), self.durable, self._dirs)
                    records.append((i, key.encode(), b"", _FILE))
                else:
                    records.append((i, key.encode(), data, _INLINE))
            except Exception as exc:  # this write fails; the others go on
                outcomes[i] = exc
        if not records:
            return
        pack, crc32, magic = _BODY.pack, zlib.crc32, _MAGIC
        with self._lock:
            seq = first = max(time.time_ns(), self._seq + 1)
            parts: list[bytes] = []
            for _, key_bytes, data, kind in records:
                body = pack(seq, kind, len(key_bytes), len(data))
                parts += (
                    magic,
                    crc32(data, crc32(key_bytes, crc32(body))).to_bytes(4, "little"),
                    body,
                    key_bytes,
                    data,
                )
                seq += 1
            try:
                self._append_sync(b"".join(parts))
            except Exception as exc:
                for i, _, _, _ in records:
                    outcomes[i] = exc
                return
            index = self._index
            for seq, (i, _, data, kind) in enumerate(records, first):
                index[jobs[i][0]] = (seq, data if kind == _INLINE else None)
            self._seq = seq

    def _append_sync(self, data: bytes) -> None:
        """Append ``data`` to this instance's segment (made first if needed); hold the lock."""
        if self._segment is None or self._pid != os.getpid():  # a forked child gets its own
            folder = self.dir / SEGMENTS
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.seg"
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _BINARY, 0o666)
            self._segment, self._pid = folder / name, os.getpid()
            self._own.add(name)
            if self.durable:
                _fsync_dir(folder)
        else:
            fd = os.open(self._segment, os.O_WRONLY | os.O_APPEND | _BINARY)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.durable:
                os.fsync(fd)
        except BaseException:
            self._segment = None  # a part may have been written: the next batch starts a new segment
            raise
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return (
            f"SegmentResult(dir={str(self.dir)!r}, location={self.location!r}, serializer={self.serializer!r}, "
            f"durable={self.durable!r}, inline_limit={self.inline_limit!r})"
        )


_BINARY = getattr(os, "O_BINARY", 0)
_PLAIN = os.name == "posix"  # where a location without "\\" or "." parts is a plain relative path


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
