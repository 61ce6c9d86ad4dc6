"""`LocalResult`: results as files under one directory, written atomically."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, final

import anyio
import anyio.lowlevel

from ._result import Result
from ._serializers import Serializer

__all__ = ("LocalResult",)

_TEMP_SUFFIX = ".tmp"


@final
class LocalResult(Result):
    """Results stored as files under ``dir``.

    Locations are paths relative to ``dir`` with ``/`` between directories; they may not be
    absolute or contain ``..``, so a location never escapes ``dir`` (the check is on the text:
    a symlink inside ``dir`` is followed). Missing directories are created on write.

    A write is atomic: the bytes go to a hidden temporary file next to the target
    (``.<name>.<random>.tmp``), which is flushed to disk (``fsync``) and then renamed over the
    target (`os.replace`). If serializing or writing fails, or the write is cancelled, the
    temporary file is removed and the target is left as it was; a crash of the whole process
    can leave a temporary file behind, never a half-written result. The file I/O and the
    serializer run in a worker thread, so the event loop never blocks on them.

    Args:
        dir: The directory results go in (made absolute now, so a later ``chdir`` does not
            matter); None for ``~/.aflow/results``.
        location: A location template or callable (see `Result`).
        serializer: How values become bytes; None for a `PickleSerializer`.
    """

    def __init__(
        self,
        dir: str | os.PathLike[str] | None = None,
        *,
        location: str | Callable[..., str] | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        super().__init__(location=location, serializer=serializer)
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
        if not isinstance(location, str):
            raise TypeError(f"a result location must be a str, not {type(location).__name__}")
        parts = re.split(r"[/\\]", location)
        if not location or "\0" in location:
            raise ValueError(f"invalid result location {location!r}")
        if os.path.isabs(location) or location.startswith(("/", "\\")) or os.path.splitdrive(location)[0]:
            raise ValueError(f"result location {location!r} is absolute: it must be relative to {str(self.dir)!r}")
        if ".." in parts:
            raise ValueError(f"result location {location!r} contains '..': it must stay inside {str(self.dir)!r}")
        if parts[-1] in ("", "."):
            raise ValueError(f"result location {location!r} names a directory, not a file")
        return self.dir.joinpath(*(part for part in parts if part not in ("", ".")))

    async def exists(self, location: str) -> bool:
        """Tell whether a result file exists at ``location``.

        Args:
            location: A formatted location.

        Returns:
            True if the file exists.

        Raises:
            ValueError: ``location`` would escape ``dir`` (see `path`).
        """
        return await anyio.Path(self.path(location)).is_file()

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
        return await anyio.to_thread.run_sync(self._read_sync, path)

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
        # named here, before any thread starts, so cleanup knows it whatever is interrupted
        temp = path.with_name(f".{path.name[:100]}.{uuid.uuid4().hex}{_TEMP_SUFFIX}")
        try:
            await anyio.to_thread.run_sync(self._write_temp_sync, value, temp)
            await anyio.lowlevel.checkpoint_if_cancelled()  # cancelled meanwhile: do not publish
            await anyio.to_thread.run_sync(_publish_sync, temp, path)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_remove_sync, temp)
            raise
        return location

    def _write_temp_sync(self, value: Any, temp: Path) -> None:
        data = self.serializer.dumps(value)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"{type(self.serializer).__name__}.dumps returned {type(data).__name__}, not bytes")
        temp.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def __repr__(self) -> str:
        return f"LocalResult(dir={str(self.dir)!r}, location={self.location!r}, serializer={self.serializer!r})"


def _publish_sync(temp: Path, path: Path) -> None:
    os.replace(temp, path)
    if os.name == "posix":  # make the rename itself durable
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
