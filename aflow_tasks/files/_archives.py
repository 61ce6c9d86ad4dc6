"""Zip and (zip-slip safe) unzip."""

from __future__ import annotations

import os
import re
import secrets
import stat
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from aflow import Task, defaults_from_attrs

if TYPE_CHECKING:
    from collections.abc import Sequence

from ._common import (
    StrPath,
    _compression,
    _required,
)

__all__ = ("Unzip", "Zip")


def _zip_entries(sources: Sequence[Path]) -> list[tuple[Path, str]]:
    """The (file, name in the archive) pairs for ``sources``; directories keep their own name."""
    entries: list[tuple[Path, str]] = []
    for given in sources:
        source = Path(os.path.abspath(given))  # "." gets its real name, symlinks are not followed
        if source.is_dir():
            for root, dirs, files in os.walk(source):
                dirs.sort()
                here = Path(root)
                if not dirs and not files:  # keep empty directories
                    entries.append((here, here.relative_to(source.parent).as_posix() + "/"))
                entries.extend((here / f, (here / f).relative_to(source.parent).as_posix()) for f in sorted(files))
        elif source.exists():
            entries.append((source, source.name))
        else:
            raise ValueError(f"Zip: source_path {str(given)!r} not found")
    seen: set[str] = set()
    for _, name in entries:
        if name in seen:
            raise ValueError(f"Zip: two sources would both be stored as {name!r} in the archive")
        seen.add(name)
    return entries


def _zip_sync(sources: Sequence[Path], zip_path: Path, compression: int, level: int | None) -> None:
    entries = _zip_entries(sources)
    final = zip_path.resolve()
    tmp = zip_path.with_name(f".{zip_path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with zipfile.ZipFile(tmp, "x", compression=compression, compresslevel=level) as archive:
            for file, name in entries:
                if file.resolve() != final:  # an archive written inside its source directory
                    archive.write(file, name)
        os.replace(tmp, zip_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Zip(Task):
    """Make a zip archive of a file, a directory tree or a list of them.

    A file is stored under its own name; a directory is stored with its own name as the top
    folder (``data/a.csv``, ``data/sub/b.csv``), empty directories included. The archive is
    written to a temporary file next to ``zip_path`` and then renamed, so it replaces an existing
    archive only once complete.

    Args:
        source_path: A file or directory, or a list of them, to put in the archive; can also be
            given at run time. Defaults to None.
        zip_path: The archive to write (replaced if it exists); its parent directory must
            exist; can also be given at run time. Defaults to None.
        compression_method: ``"deflate"``, ``"store"``, ``"bzip2"`` or ``"lzma"``. Defaults to
            ``"deflate"``.
        compression_level: The level for the method (see `zipfile.ZipFile`), or None for its
            default. Defaults to None.
        **kwargs: `Task` arguments (``name``, ``max_retries``...).

    Raises:
        ValueError: If ``compression_method`` is not supported.
    """

    def __init__(
        self,
        source_path: StrPath | Sequence[StrPath] | None = None,
        zip_path: StrPath | None = None,
        compression_method: str = "deflate",
        compression_level: int | None = None,
        **kwargs: Any,
    ) -> None:
        _compression(compression_method)
        self.source_path = source_path
        self.zip_path = zip_path
        self.compression_method = compression_method
        self.compression_level = compression_level
        super().__init__(**kwargs)

    @defaults_from_attrs("source_path", "zip_path", "compression_method", "compression_level")
    async def run(
        self,
        source_path: StrPath | Sequence[StrPath] | None = None,
        zip_path: StrPath | None = None,
        compression_method: str | None = None,
        compression_level: int | None = None,
    ) -> Path:
        """Write the archive.

        Args:
            source_path: What to archive. Defaults to the task's ``source_path``.
            zip_path: The archive to write. Defaults to the task's ``zip_path``.
            compression_method: The compression method. Defaults to the task's.
            compression_level: The compression level. Defaults to the task's.

        Returns:
            The archive's path.

        Raises:
            ValueError: If an argument is missing, a source does not exist, two sources would
                have the same name in the archive, or the method is not supported.
        """
        given = _required(source_path, "source_path", "Zip")
        target = Path(_required(zip_path, "zip_path", "Zip"))
        method = _compression(_required(compression_method, "compression_method", "Zip"))
        sources = [Path(p) for p in given] if isinstance(given, (list, tuple)) else [Path(given)]
        if not sources:
            raise ValueError("Zip needs source_path: got an empty list")
        self.logger.debug("Creating zip archive %s from %s", target, ", ".join(map(str, sources)))
        await anyio.to_thread.run_sync(_zip_sync, sources, target, method, compression_level)
        return target


_SEPARATORS = re.compile(r"[\\/]")


def _unsafe(archive: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path, pwd: bytes | None) -> str | None:
    """Why extracting ``info`` under the resolved ``root`` is unsafe, or None when it is safe."""
    name = info.filename
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive:
        return "is an absolute path"
    if ".." in _SEPARATORS.split(name):
        return "contains '..'"
    dest = (root / name).resolve()
    if not dest.is_relative_to(root):
        return "would be written outside the extract folder (through a symlink already there)"
    if stat.S_ISLNK(info.external_attr >> 16):
        link = archive.read(info, pwd=pwd).decode("utf-8", "surrogateescape")
        pointed = (dest.parent / link).resolve()
        if link.startswith(("/", "\\")) or PureWindowsPath(link).drive or not pointed.is_relative_to(root):
            return f"is a symlink pointing outside the extract folder (to {link!r})"
    return None


def _unzip_sync(zip_path: Path, extract_dir: Path, pwd: bytes | None) -> None:
    if not zip_path.is_file():
        raise ValueError(f"Unzip: zip_path {str(zip_path)!r} not found")
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise ValueError(f"Unzip: zip_path {str(zip_path)!r} is not a zip file") from None
    with archive:
        root = extract_dir.resolve()
        for info in archive.infolist():  # every member is checked before anything is written
            reason = _unsafe(archive, info, root, pwd)
            if reason is not None:
                raise ValueError(
                    f"Unzip: refusing {str(zip_path)!r}: member {info.filename!r} {reason}; nothing was extracted"
                )
        extract_dir.mkdir(parents=True, exist_ok=True)
        archive.extractall(extract_dir, pwd=pwd)


class Unzip(Task):
    """Extract a zip archive into a directory, refusing archives that would write outside it.

    Every member is checked before anything is written (zip-slip protection): an absolute
    member name, a name with a ``..`` part, a name that resolves outside ``extract_dir`` through
    a symlink already in it, or a symlink member pointing outside makes the task fail with a
    ValueError naming the member, and nothing is extracted. Like `zipfile`, Unzip never creates
    symlinks: a symlink member that stays inside is written as a small file holding its target.
    The check cannot guard against another process changing ``extract_dir`` while the task runs.

    Args:
        zip_path: The archive to extract; can also be given at run time. Defaults to None.
        extract_dir: The directory to extract into, created (with its parents) if missing; can
            also be given at run time. Defaults to None (the current working directory).
        password: The password of an encrypted archive (``str`` is UTF-8 encoded); can also be
            given at run time. Defaults to None.
        **kwargs: `Task` arguments (``name``, ``max_retries``...).
    """

    def __init__(
        self,
        zip_path: StrPath | None = None,
        extract_dir: StrPath | None = None,
        password: str | bytes | None = None,
        **kwargs: Any,
    ) -> None:
        self.zip_path = zip_path
        self.extract_dir = extract_dir
        self.password = password
        super().__init__(**kwargs)

    @defaults_from_attrs("zip_path", "extract_dir", "password")
    async def run(
        self,
        zip_path: StrPath | None = None,
        extract_dir: StrPath | None = None,
        password: str | bytes | None = None,
    ) -> Path:
        """Extract the archive.

        Args:
            zip_path: The archive. Defaults to the task's ``zip_path``.
            extract_dir: Where to extract it. Defaults to the task's ``extract_dir``, then to the
                current working directory.
            password: The archive's password. Defaults to the task's ``password``.

        Returns:
            The directory the archive was extracted into.

        Raises:
            ValueError: If ``zip_path`` is missing, not found or not a zip file, or a member is
                unsafe (see the class docs).
        """
        source = Path(_required(zip_path, "zip_path", "Unzip"))
        target = Path(extract_dir) if extract_dir not in (None, "") else Path(await anyio.Path.cwd())
        pwd = password.encode("utf-8") if isinstance(password, str) else password
        self.logger.debug("Extracting %s to %s", source, target)
        await anyio.to_thread.run_sync(_unzip_sync, source, target, pwd)
        return target
