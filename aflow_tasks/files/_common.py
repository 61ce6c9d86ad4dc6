"""Shared pieces of the file tasks: path and data types, argument checks, the aiofiles import."""

from __future__ import annotations

import os
import zipfile
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import anyio
import anyio.to_thread

if TYPE_CHECKING:
    pass


__all__ = ("COMPRESSION_METHODS", "FileData", "FileMode", "StrPath")

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
