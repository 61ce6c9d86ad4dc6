"""File tasks: copy, move, remove, glob, zip, unzip, read and write local files.

The names and arguments follow Prefect 1's ``prefect.tasks.files`` (``Copy``, ``Move``,
``Remove``, ``Glob``, ``Zip``, ``Unzip``); `ReadFile` and `WriteFile` are aflow's own. Nothing
blocks the event loop: file contents go through aiofiles, path checks through `anyio.Path`, and
``shutil``/``zipfile`` work runs in a worker thread (`anyio.to_thread.run_sync`). A cancelled
task waits for a worker-thread step already under way to finish, then the cancellation goes on.

Every path argument takes a ``str`` or an ``os.PathLike``; tasks return `pathlib.Path` objects.

`Unzip` is zip-slip safe: before it writes anything it checks every member and refuses the whole
archive (a ValueError naming the member) when one is an absolute path, contains ``..``, would
land outside the extract folder through a symlink already there, or is a symlink whose target
points outside. `WriteFile` and `Zip` write atomically by default (a temporary file in the same
directory, then ``os.replace``), so a reader never sees a half-written file.

`ReadFile` and `WriteFile` need the ``files`` extra: ``pip install aflow-engine[files]``; the other
tasks need nothing beyond anyio.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import anyio
import anyio.to_thread

from aflow import Task, defaults_from_attrs
from aflow.integration import to_the_end

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("COMPRESSION_METHODS", "Copy", "Glob", "Move", "ReadFile", "Remove", "Unzip", "WriteFile", "Zip")

StrPath: TypeAlias = "str | os.PathLike[str]"
FileMode: TypeAlias = Literal["text", "bytes"]
FileData: TypeAlias = "str | bytes | bytearray | memoryview"

COMPRESSION_METHODS: dict[str, int] = {
    "store": zipfile.ZIP_STORED,
    "deflate": zipfile.ZIP_DEFLATED,
    "bzip2": zipfile.ZIP_BZIP2,
    "lzma": zipfile.ZIP_LZMA,
}
"""The values of `Zip`'s ``compression_method`` and the ``zipfile`` constants they stand for."""

_MODES = ("text", "bytes")


def _aiofiles() -> ModuleType:
    """Import aiofiles, or explain which extra provides it."""
    try:
        import aiofiles
    except ImportError as exc:
        raise ImportError("files tasks need aiofiles: pip install aflow-engine[files]") from exc
    return aiofiles


def _required(value: Any, arg: str, task: str) -> Any:
    if value is None or value == "":
        raise ValueError(f"{task} needs {arg}: give it to {task}({arg}=...) or to the call, {arg}=...")
    return value


def _check_mode(mode: str, task: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"{task}: mode must be 'text' or 'bytes', got {mode!r}")


def _compression(method: str) -> int:
    try:
        return COMPRESSION_METHODS[method]
    except KeyError:
        raise ValueError(
            f"Zip: compression_method {method!r} is not supported; use one of {', '.join(COMPRESSION_METHODS)}"
        ) from None


async def _lexists(path: anyio.Path) -> bool:
    """Whether ``path`` exists, a dangling symlink included."""
    try:
        await path.lstat()
    except FileNotFoundError:
        return False
    return True


class Copy(Task):
    """Copy a file or a directory tree.

    A file is copied with its metadata (``shutil.copy2``); when ``target_path`` is an existing
    directory the file goes into it under its own name. A directory is copied with
    ``shutil.copytree``, so ``target_path`` must not exist yet.

    Args:
        source_path: The file or directory to copy; can also be given at run time. Defaults to None.
        target_path: Where to copy it; can also be given at run time. Defaults to None.
        **kwargs: `Task` arguments (``name``, ``max_retries``...).
    """

    def __init__(self, source_path: StrPath | None = None, target_path: StrPath | None = None, **kwargs: Any) -> None:
        self.source_path = source_path
        self.target_path = target_path
        super().__init__(**kwargs)

    @defaults_from_attrs("source_path", "target_path")
    async def run(self, source_path: StrPath | None = None, target_path: StrPath | None = None) -> Path:
        """Copy ``source_path`` to ``target_path``.

        Args:
            source_path: The file or directory to copy. Defaults to the task's ``source_path``.
            target_path: Where to copy it. Defaults to the task's ``target_path``.

        Returns:
            The path of the copy.

        Raises:
            ValueError: If a path is missing or ``source_path`` does not exist.
        """
        source = Path(_required(source_path, "source_path", "Copy"))
        target = Path(_required(target_path, "target_path", "Copy"))
        src = anyio.Path(source)
        if not await src.exists():
            raise ValueError(f"Copy: source_path {str(source)!r} not found")
        self.logger.debug("Copying %s to %s", source, target)
        out: str | os.PathLike[str]
        if await src.is_dir():
            out = await anyio.to_thread.run_sync(shutil.copytree, source, target)
        else:
            out = await anyio.to_thread.run_sync(lambda: shutil.copy2(source, target))
        return Path(out)


class Move(Task):
    """Move (rename) a file or a directory, across file systems too (``shutil.move``).

    When ``target_path`` is an existing directory, the source goes into it under its own name.

    Args:
        source_path: The file or directory to move; can also be given at run time. Defaults to None.
        target_path: Where to move it; its parent directory must exist; can also be given at run
            time. Defaults to None.
        **kwargs: `Task` arguments (``name``, ``max_retries``...).
    """

    def __init__(self, source_path: StrPath | None = None, target_path: StrPath | None = None, **kwargs: Any) -> None:
        self.source_path = source_path
        self.target_path = target_path
        super().__init__(**kwargs)

    @defaults_from_attrs("source_path", "target_path")
    async def run(self, source_path: StrPath | None = None, target_path: StrPath | None = None) -> Path:
        """Move ``source_path`` to ``target_path``.

        Args:
            source_path: The file or directory to move. Defaults to the task's ``source_path``.
            target_path: Where to move it. Defaults to the task's ``target_path``.

        Returns:
            The new path of the file or directory.

        Raises:
            ValueError: If a path is missing or ``source_path`` does not exist.
        """
        source = Path(_required(source_path, "source_path", "Move"))
        target = Path(_required(target_path, "target_path", "Move"))
        if not await _lexists(anyio.Path(source)):
            raise ValueError(f"Move: source_path {str(source)!r} not found")
        self.logger.debug("Moving %s to %s", source, target)
        out = await anyio.to_thread.run_sync(shutil.move, source, target)
        return Path(out)


class Remove(Task):
    """Remove a file, a symlink or a directory.

    A symlink is removed itself, never what it points to. A directory must be empty unless
    ``recursive`` is set, in which case it is removed with everything in it.

    Args:
        path: The file or directory to remove; can also be given at run time. Defaults to None.
        missing_ok: Succeed (doing nothing) when ``path`` does not exist, instead of failing.
            Defaults to False.
        recursive: Remove a non-empty directory and all its contents. Defaults to False.
        **kwargs: `Task` arguments (``name``, ``max_retries``...).
    """

    def __init__(
        self, path: StrPath | None = None, missing_ok: bool = False, recursive: bool = False, **kwargs: Any
    ) -> None:
        self.path = path
        self.missing_ok = missing_ok
        self.recursive = recursive
        super().__init__(**kwargs)

    @defaults_from_attrs("path", "missing_ok", "recursive")
    async def run(
        self, path: StrPath | None = None, missing_ok: bool | None = None, recursive: bool | None = None
    ) -> None:
        """Remove ``path``.

        Args:
            path: The file or directory to remove. Defaults to the task's ``path``.
            missing_ok: Do nothing when ``path`` does not exist. Defaults to the task's ``missing_ok``.
            recursive: Remove a directory with its contents. Defaults to the task's ``recursive``.

        Raises:
            ValueError: If ``path`` is missing or does not exist (without ``missing_ok``), or is
                a non-empty directory (without ``recursive``).
        """
        target = anyio.Path(_required(path, "path", "Remove"))
        try:
            info = await target.lstat()
        except FileNotFoundError:
            if missing_ok:
                return
            raise ValueError(f"Remove: path {str(target)!r} not found (pass missing_ok=True to allow that)") from None
        self.logger.debug("Removing %s", target)
        if not stat.S_ISDIR(info.st_mode):  # files and symlinks (to directories too)
            await target.unlink()
        elif recursive:
            await anyio.to_thread.run_sync(shutil.rmtree, Path(target))
        else:
            try:
                await target.rmdir()
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                raise ValueError(
                    f"Remove: directory {str(target)!r} is not empty; pass recursive=True to remove it "
                    "with everything in it"
                ) from exc


class Glob(Task):
    """List the paths in a directory that match a pattern, sorted.

    Patterns are `pathlib.Path.glob` patterns: ``*.csv``, ``data/*.json``, ``**/*.py``
    (recursive).

    Args:
        path: The directory to search; can also be given at run time. Defaults to None.
        pattern: The glob pattern. Defaults to ``"*"`` (every entry of ``path``).
        **kwargs: `Task` arguments (``name``, ``max_retries``...).
    """

    def __init__(self, path: StrPath | None = None, pattern: str = "*", **kwargs: Any) -> None:
        self.path = path
        self.pattern = pattern
        super().__init__(**kwargs)

    @defaults_from_attrs("path", "pattern")
    async def run(self, path: StrPath | None = None, pattern: str | None = None) -> list[Path]:
        """Return the paths under ``path`` that match ``pattern``.

        Args:
            path: The directory to search. Defaults to the task's ``path``.
            pattern: The glob pattern. Defaults to the task's ``pattern``.

        Returns:
            The matching paths, sorted.

        Raises:
            ValueError: If ``path`` or ``pattern`` is missing, or ``path`` is not a directory.
        """
        root = Path(_required(path, "path", "Glob"))
        pattern = _required(pattern, "pattern", "Glob")
        if not await anyio.Path(root).is_dir():
            raise ValueError(f"Glob: path {str(root)!r} is not an existing directory")
        return await anyio.to_thread.run_sync(lambda: sorted(root.glob(pattern)))


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


class ReadFile(Task):
    """Read a whole file, as text or as bytes.

    Args:
        path: The file to read; can also be given at run time. Defaults to None.
        mode: ``"text"`` (return a ``str``) or ``"bytes"``. Defaults to ``"text"``.
        encoding: The text encoding (text mode only). Defaults to ``"utf-8"``.
        **kwargs: `Task` arguments (``name``, ``max_retries``...).

    Raises:
        ValueError: If ``mode`` is not ``"text"`` or ``"bytes"``.
    """

    def __init__(
        self, path: StrPath | None = None, mode: FileMode = "text", encoding: str = "utf-8", **kwargs: Any
    ) -> None:
        _check_mode(mode, "ReadFile")
        self.path = path
        self.mode = mode
        self.encoding = encoding
        super().__init__(**kwargs)

    @defaults_from_attrs("path", "mode", "encoding")
    async def run(
        self, path: StrPath | None = None, mode: FileMode | None = None, encoding: str | None = None
    ) -> str | bytes:
        """Return the contents of ``path``.

        Args:
            path: The file to read. Defaults to the task's ``path``.
            mode: ``"text"`` or ``"bytes"``. Defaults to the task's ``mode``.
            encoding: The text encoding. Defaults to the task's ``encoding``.

        Returns:
            The file's contents: a ``str`` in text mode, ``bytes`` in bytes mode.

        Raises:
            ValueError: If ``path`` is missing or ``mode`` is not valid.
            OSError: If the file cannot be read (``FileNotFoundError``...).
        """
        aiofiles = _aiofiles()
        source = Path(_required(path, "path", "ReadFile"))
        mode = _required(mode, "mode", "ReadFile")
        _check_mode(str(mode), "ReadFile")
        if mode == "bytes":
            async with aiofiles.open(source, "rb") as fb:
                data: bytes = await fb.read()
            return data
        async with aiofiles.open(source, encoding=_required(encoding, "encoding", "ReadFile")) as ft:
            text: str = await ft.read()
        return text


class WriteFile(Task):
    """Write text or bytes to a file, atomically by default.

    With ``atomic`` (the default) the data goes to a temporary file in the same directory,
    which is flushed to disk and then renamed over ``path`` (``os.replace``): readers see the
    old file or the new one, never a partial write, and a failed or cancelled write leaves the
    old file as it was. An existing file keeps its permission bits; a symlink ``path`` is
    followed, so the file it points to is replaced. With ``append`` the existing contents are
    kept in front of the new data (atomically, they are copied into the temporary file first;
    for large files, ``atomic=False`` appends in place instead). The parent directory must exist.

    Args:
        path: The file to write; can also be given at run time. Defaults to None.
        data: The contents: a ``str`` in text mode, bytes-like in bytes mode; usually given at
            run time by an upstream task. Defaults to None.
        mode: ``"text"`` or ``"bytes"``. Defaults to ``"text"``.
        encoding: The text encoding (text mode only). Defaults to ``"utf-8"``.
        append: Add to the end of an existing file instead of replacing it. Defaults to False.
        atomic: Write through a temporary file and ``os.replace``. Defaults to True.
        **kwargs: `Task` arguments (``name``, ``max_retries``...).

    Raises:
        ValueError: If ``mode`` is not ``"text"`` or ``"bytes"``.
    """

    def __init__(
        self,
        path: StrPath | None = None,
        data: FileData | None = None,
        mode: FileMode = "text",
        encoding: str = "utf-8",
        append: bool = False,
        atomic: bool = True,
        **kwargs: Any,
    ) -> None:
        _check_mode(mode, "WriteFile")
        self.path = path
        self.data = data
        self.mode = mode
        self.encoding = encoding
        self.append = append
        self.atomic = atomic
        super().__init__(**kwargs)

    @defaults_from_attrs("path", "data", "mode", "encoding", "append", "atomic")
    async def run(
        self,
        path: StrPath | None = None,
        data: FileData | None = None,
        mode: FileMode | None = None,
        encoding: str | None = None,
        append: bool | None = None,
        atomic: bool | None = None,
    ) -> Path:
        """Write ``data`` to ``path``.

        Args:
            path: The file to write. Defaults to the task's ``path``.
            data: The contents. Defaults to the task's ``data``.
            mode: ``"text"`` or ``"bytes"``. Defaults to the task's ``mode``.
            encoding: The text encoding. Defaults to the task's ``encoding``.
            append: Append instead of replacing. Defaults to the task's ``append``.
            atomic: Write atomically. Defaults to the task's ``atomic``.

        Returns:
            The path written.

        Raises:
            ValueError: If ``path`` or ``data`` is missing or ``mode`` is not valid.
            TypeError: If ``data`` does not fit ``mode`` (``str`` for text, bytes-like for bytes).
            OSError: If the file cannot be written.
        """
        aiofiles = _aiofiles()
        target = anyio.Path(_required(path, "path", "WriteFile"))
        if data is None:
            raise ValueError("WriteFile needs data: give it to WriteFile(data=...) or to the call, data=...")
        mode = _required(mode, "mode", "WriteFile")
        _check_mode(str(mode), "WriteFile")
        if mode == "text" and not isinstance(data, str):
            raise TypeError(f"WriteFile: mode='text' needs str data, got {type(data).__name__} (use mode='bytes')")
        if mode == "bytes" and not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"WriteFile: mode='bytes' needs bytes-like data, got {type(data).__name__}")
        kind = "" if mode == "text" else "b"
        text_encoding = _required(encoding, "encoding", "WriteFile") if mode == "text" else None
        if await target.is_symlink():
            target = await target.resolve()
        self.logger.debug("Writing %s", target)
        if not atomic:
            async with aiofiles.open(target, ("a" if append else "w") + kind, encoding=text_encoding) as f:
                await f.write(data)
            return Path(target)

        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            existing = await target.exists()
            if append and existing:
                await anyio.to_thread.run_sync(shutil.copyfile, target, tmp)
            async with aiofiles.open(tmp, ("a" if append and existing else "x") + kind, encoding=text_encoding) as f:
                await f.write(data)
                await f.flush()
                await anyio.to_thread.run_sync(os.fsync, f.fileno())
            if existing:
                await anyio.to_thread.run_sync(shutil.copymode, target, tmp)
            await anyio.to_thread.run_sync(os.replace, tmp, target)
        except BaseException:
            await to_the_end(tmp.unlink(missing_ok=True))  # a second cancellation cannot leave it behind
            raise
        return Path(target)
