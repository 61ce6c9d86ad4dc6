"""Read and (atomically) write a file's contents."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from aflow import Task, defaults_from_attrs
from aflow.integration import to_the_end

if TYPE_CHECKING:
    pass

from ._common import (
    FileData,
    FileMode,
    StrPath,
    _aiofiles,
    _check_mode,
    _required,
)

__all__ = ("ReadFile", "WriteFile")


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
