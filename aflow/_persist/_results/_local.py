"""`LocalResult`: results as files under one directory, written atomically."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, final

from ..._runtime._threads import run_batched
from ._result import Result
from ._serializers import Serializer

__all__ = ("LocalResult", "location_parts", "write_file_sync")

_TEMP_SUFFIX = ".tmp"


@final
class LocalResult(Result):
    """Results stored as files under ``dir``.

    Locations are paths relative to ``dir`` with ``/`` between directories; they may not be
    absolute or contain ``..``, so a location never escapes ``dir`` (the check is on the text:
    a symlink inside ``dir`` is followed). Missing directories are created on write.

    A write is atomic: the bytes go to a hidden temporary file next to the target
    (``.<name>.<random>.tmp``), which is then renamed over the target (`os.replace`). If
    serializing or writing fails, the temporary file is removed and the target is left as it
    was; a crash of the process can leave a temporary file behind, never a half-written result.
    With ``durable=True`` the file and the rename are also flushed to disk (``fsync``), so the
    result survives a power loss too, at the price of a disk flush per result (often 100 times
    slower on small results). Serializing and the file I/O run together in one worker-thread
    call, so the event loop never blocks on them.

    Args:
        dir: The directory results go in (made absolute now, so a later ``chdir`` does not
            matter); None for ``~/.aflow/results``.
        location: A location template or callable (see `Result`).
        serializer: How values become bytes; None for a `PickleSerializer`.
        durable: Flush each result file and its rename to disk before the write returns.
    """

    def __init__(
        self,
        dir: str | os.PathLike[str] | None = None,
        *,
        location: str | Callable[..., str] | None = None,
        serializer: Serializer | None = None,
        durable: bool = False,
    ) -> None:
        super().__init__(location=location, serializer=serializer)
        self.durable = durable
        self._dirs: set[Path] = set()  # directories this result has made (or found)
        base = Path("~/.aflow/results").expanduser() if dir is None else Path(dir)
        self.dir = Path(os.path.abspath(base))

    def path(self, location: str) -> Path:
        """Return the file that holds ``location``.

        Args:
            location: A formatted location.

        Returns:
            The absolute path under ``dir``.

        Raises:
            ValueError: ``location`` is empty, absolute, names a directory or contains ``..``.
            TypeError: ``location`` is not a string.
        """
        return self.dir.joinpath(*location_parts(location, self.dir))

    async def exists(self, location: str) -> bool:
        """Tell whether a result file exists at ``location``.

        Args:
            location: A formatted location.

        Returns:
            True if the file exists.

        Raises:
            ValueError: ``location`` would escape ``dir`` (see `path`).
        """
        return await run_batched(self.path(location).is_file)

    async def read(self, location: str) -> Any:
        """Read and deserialize the file at ``location``.

        Args:
            location: A formatted location.

        Returns:
            The value.

        Raises:
            FileNotFoundError: There is no file at ``location``.
            ValueError: ``location`` would escape ``dir`` (see `path`).
        """
        path = self.path(location)
        return await run_batched(self._read_sync, path)

    def _read_sync(self, path: Path) -> Any:
        return self.serializer.loads(path.read_bytes())

    async def write(self, value: Any, location: str) -> str:
        """Serialize ``value`` and write it to ``location`` atomically.

        Args:
            value: The value to store.
            location: A formatted location.

        Returns:
            ``location``.

        Raises:
            ValueError: ``location`` would escape ``dir`` (see `path`).
        """
        path = self.path(location)
        await run_batched(self._write_sync, value, path)
        return location

    def _write_sync(self, value: Any, path: Path) -> None:
        data = self.serializer.dumps(value)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"{type(self.serializer).__name__}.dumps returned {type(data).__name__}, not bytes")
        write_file_sync(data, path, self.durable, self._dirs)

    def __repr__(self) -> str:
        return (
            f"LocalResult(dir={str(self.dir)!r}, location={self.location!r}, "
            f"serializer={self.serializer!r}, durable={self.durable!r})"
        )


def location_parts(location: str, dir: Path) -> list[str]:
    """The path parts of ``location`` under ``dir`` (see `LocalResult.path` for the rules)."""
    if not isinstance(location, str):
        raise TypeError(f"a result location must be a str, not {type(location).__name__}")
    parts = re.split(r"[/\\]", location)
    if not location or "\0" in location:
        raise ValueError(f"invalid result location {location!r}")
    if os.path.isabs(location) or location.startswith(("/", "\\")) or os.path.splitdrive(location)[0]:
        raise ValueError(f"result location {location!r} is absolute: it must be relative to {str(dir)!r}")
    if ".." in parts:
        raise ValueError(f"result location {location!r} contains '..': it must stay inside {str(dir)!r}")
    if parts[-1] in ("", "."):
        raise ValueError(f"result location {location!r} names a directory, not a file")
    return [part for part in parts if part not in ("", ".")]


def write_file_sync(data: bytes | bytearray | memoryview, path: Path, durable: bool, dirs: set[Path]) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file renamed over it), as `LocalResult` does.

    Args:
        data: The bytes.
        path: The file to write.
        durable: Flush the file and its rename to disk.
        dirs: Directories known to exist (``path``'s is added once made).
    """
    temp = path.with_name(f".{path.name[:100]}.{uuid.uuid4().hex}{_TEMP_SUFFIX}")
    try:
        _write_bytes_sync(data, temp, durable, dirs)
        _publish_sync(temp, path, durable)
    except BaseException:
        _remove_sync(temp)
        raise


def _write_bytes_sync(data: bytes | bytearray | memoryview, temp: Path, durable: bool, dirs: set[Path]) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    if temp.parent not in dirs:  # one mkdir per directory, not per write
        temp.parent.mkdir(parents=True, exist_ok=True)
        dirs.add(temp.parent)
    try:
        fd = os.open(temp, flags, 0o666)
    except FileNotFoundError:  # the directory was removed since: make it again
        temp.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, flags, 0o666)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def _publish_sync(temp: Path, path: Path, durable: bool) -> None:
    os.replace(temp, path)
    if durable and os.name == "posix":  # make the rename itself durable
        try:
            fd = os.open(path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


def _remove_sync(temp: Path) -> None:
    try:
        os.unlink(temp)
    except FileNotFoundError:
        pass
