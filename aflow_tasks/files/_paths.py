"""Copy, move, remove and glob paths."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from aflow import Task, defaults_from_attrs

if TYPE_CHECKING:
    pass

from ._common import (
    StrPath,
    _lexists,
    _required,
)

__all__ = ("Copy", "Glob", "Move", "Remove")


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
