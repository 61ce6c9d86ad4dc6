"""The `Result` base class, location templates, and `MemoryResult`."""

from __future__ import annotations

import functools
import os
import re
import string
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, final

import anyio.lowlevel

from ._serializers import PickleSerializer, Serializer

__all__ = (
    "DEFAULT_LOCATION",
    "MemoryResult",
    "Result",
    "default_location",
    "format_lazily",
    "format_location",
    "fresh_uuid",
)

DEFAULT_LOCATION = "{flow_name}/{task_full_name}.{uuid}.result"
"""The location of a `Result` made with ``location=None``; see `Result` for how it is filled."""

_ABSENT: Any = object()  # a value not given (None can be one)
_UNSAFE = re.compile(r"[^\w.\-\[\] ]")  # what a default location's names may keep


def format_location(location: str | Callable[..., str], **kwargs: Any) -> str:
    """Format a location template (a result's ``location``, a task's ``target``).

    A string is a `str.format` template (``"{flow_name}/{task_name}-{map_index}.pkl"``); a
    callable is called with every keyword argument and returns the location. ``uuid`` (a fresh
    ``uuid4().hex``) is added to the values unless given.

    Args:
        location: The template or callable.
        **kwargs: The values to format with (parameters, context values and inputs).

    Returns:
        The location.

    Raises:
        ValueError: The template names a value that is not in ``kwargs`` (the message names the
            value and the template), or cannot be formatted.
        TypeError: ``location`` is neither a string nor a callable, or the callable returned
            something other than a string.
    """
    if "uuid" not in kwargs:
        kwargs["uuid"] = fresh_uuid()
    if isinstance(location, str):
        return _format_template(location, kwargs)
    if not callable(location):
        raise TypeError(f"a result location must be a str template or a callable, not {type(location).__name__}")
    name = getattr(location, "__qualname__", repr(location))
    try:
        out = location(**kwargs)
    except KeyError as exc:
        raise ValueError(
            f"result location callable {name} needs the value {exc.args[0]!r}, "
            f"which is not among the formatting values {sorted(kwargs)}"
        ) from exc
    if isinstance(out, os.PathLike):
        out = os.fspath(out)
    if not isinstance(out, str):
        raise TypeError(f"result location callable {name} returned {type(out).__name__}, not str")
    return out


def _format_template(template: str, values: dict[str, Any]) -> str:
    fields, _ = _parse_template(template)
    for key, field in fields:
        if key == "" or key.isdigit():
            raise ValueError(
                f"result location template {template!r} has a positional field {{{field}}}: name the value instead"
            )
        if key not in values:
            raise ValueError(
                f"result location template {template!r} needs the value {key!r}, "
                f"which is not among the formatting values {sorted(values)}"
            )
    try:
        return template.format(**values)
    except (KeyError, IndexError, AttributeError, ValueError, TypeError) as exc:
        raise ValueError(f"cannot format result location template {template!r}: {exc!r}") from exc


def _default_location(**kwargs: Any) -> str:
    return _default_from(kwargs.get)


def _default_from(get: Callable[[str, Any], Any]) -> str:
    task_name = get("task_full_name", None) or get("task_name", None)
    return default_location(get("flow_name", None), task_name, get("uuid", _ABSENT))


def default_location(flow_name: Any, task_name: Any, uuid: Any = _ABSENT) -> str:
    """`DEFAULT_LOCATION` filled as `Result.format` fills it, from the values it uses.

    Args:
        flow_name: The flow's name (falsy: ``_no_flow``).
        task_name: The task run's full name, else its name (falsy: ``_no_task``).
        uuid: The ``uuid`` value; left out, a fresh one.

    Returns:
        The location, with the names made safe for a path.
    """
    key = fresh_uuid() if uuid is _ABSENT else _safe_name(uuid)  # a fresh one is safe as it is
    flow_name = flow_name or "_no_flow"
    task_name = task_name or "_no_task"
    # one directory per flow, not per task: creating a directory per result costs more than the write
    if type(flow_name) is str and type(task_name) is str:
        return f"{_default_dir(flow_name, task_name)}.{key}.result"
    return f"{_safe_name(flow_name)}/{_safe_name(task_name)}.{key}.result"


@functools.lru_cache(maxsize=4096)  # flow and task names repeat from one result to the next
def _default_dir(flow_name: str, task_name: str) -> str:
    return f"{_safe_str(flow_name)}/{_safe_str(task_name)}"


def _safe_name(value: object) -> str:
    return _safe_str(value if type(value) is str else str(value))


def _safe_str(text: str) -> str:
    name = _UNSAFE.sub("_", text)
    return "_" if name in ("", ".", "..") else name


_UUIDS: list[str] = []  # random version-4 UUIDs made 256 at a time (one urandom call, not one each)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_UUIDS.clear)  # a forked child never reuses its parent's


def fresh_uuid() -> str:
    """Return what ``uuid.uuid4().hex`` returns (a new random UUID), ten times cheaper."""
    try:
        return _UUIDS.pop()
    except IndexError:
        pass
    data = bytearray(os.urandom(16 * 256))
    data[6::16] = bytes(b & 0x0F | 0x40 for b in data[6::16])  # version 4
    data[8::16] = bytes(b & 0x3F | 0x80 for b in data[8::16])  # the RFC 4122 variant
    text = data.hex()
    made = [text[i : i + 32] for i in range(0, len(text), 32)]
    _UUIDS.extend(made[1:])
    return made[0]


@functools.lru_cache(maxsize=1024)
def _parse_template(template: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...] | None]:
    """A template's fields, parsed once (for `_format_template` and `format_lazily`).

    Returns each field as ``(value name, field)``, and the value names without repeats, or None
    for those when a field is positional (``{}``, ``{0}``: `_format_template` explains).

    Raises:
        ValueError: ``template`` is not a valid format string (the message says so).
    """
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        raise ValueError(f"result location template {template!r} is not a valid format string: {exc}") from exc
    named = tuple((re.split(r"[.\[]", field, maxsplit=1)[0], field) for field in fields)
    keys = [key for key, _ in named]
    positional = any(key == "" or key.isdigit() for key in keys)
    return named, None if positional else tuple(dict.fromkeys(keys))


def format_lazily(
    location: str | Callable[..., str] | None,
    get: Callable[[str, Any], Any],
    everything: Callable[[], dict[str, Any]],
    result: Result | None = None,
) -> str:
    """`format_location` (or ``result.format``) fetching only the values a string template names.

    The same location and the same errors as ``format_location(location, **everything())``
    (or ``result.format(**everything())``), without building every value for every task run:
    a template is parsed once, ``get(name, default)`` fetches each name it uses, and ``uuid`` is
    only made when used. A callable, a `Result` subclass with its own ``format``, an invalid
    template or a failure fall back to the full values.

    Args:
        location: A template or callable; ignored when ``result`` is given (its own is used).
        get: Returns the value of a name, or its second argument when the name has no value.
        everything: Returns every value (parameters, context values and inputs merged).
        result: Format this result's location (`Result.format`) instead of ``location``.

    Returns:
        The location.
    """
    if result is not None:
        if type(result).format is not Result.format:  # a subclass formats its own way
            return result.format(**everything())
        location = result.location
        if location is None:
            return _default_from(get)
    if isinstance(location, str):
        try:
            _, keys = _parse_template(location)
        except ValueError:  # the full path below raises it again
            keys = None
        if keys is not None:
            values: dict[str, Any] = {}
            for key in keys:
                value = get(key, _ABSENT)
                if value is _ABSENT:
                    if key != "uuid":
                        break  # a missing value: the full path names every value in its error
                    value = fresh_uuid()
                values[key] = value
            else:
                try:
                    return location.format(**values)
                except Exception:  # the full path below raises the documented error
                    pass
    assert location is not None
    return format_location(location, **everything())


class Result(ABC):
    """Where and how a task's return value is stored. Subclass it for another store.

    A subclass implements `exists`, `read` and `write`, each taking a formatted location (a
    key relative to the store, ``/``-separated). The engine formats the location by calling
    `format` with the run's parameters, context values and the task's inputs merged.

    With ``location=None`` the location is ``DEFAULT_LOCATION``,
    ``"{flow_name}/{task_full_name}.{uuid}.result"``: unique for each write, with the names made
    safe for a path (characters other than letters, digits, ``._-[] `` become ``_``) and
    ``_no_flow``/``_no_task`` standing in for a name that was not given.

    Args:
        location: A `str.format` template or a callable taking ``**kwargs`` (see `format_location`),
            or None for the default.
        serializer: How values become bytes; None for a `PickleSerializer`.
    """

    def __init__(
        self,
        *,
        location: str | Callable[..., str] | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        self.location = location
        self.serializer: Serializer = serializer if serializer is not None else PickleSerializer()

    def format(self, **kwargs: Any) -> str:
        """Return this result's location, formatted with ``kwargs``.

        Args:
            **kwargs: Parameters, context values and inputs; ``uuid`` is added unless given.

        Returns:
            The location to pass to `exists`, `read` and `write`.

        Raises:
            ValueError: The template names a value missing from ``kwargs`` (see `format_location`).
            TypeError: The location is neither a string nor a callable returning one.
        """
        if self.location is None:
            return format_location(_default_location, **kwargs)
        return format_location(self.location, **kwargs)

    async def prepare(self) -> None:
        """Get ready for reads; the engine awaits it once per flow run whose targets read this store.

        It runs before any task of the run starts, so a store that loads an index (`SegmentResult`)
        does it here once instead of making the first task reads wait for it. The default does
        nothing.
        """
        return None

    @abstractmethod
    async def exists(self, location: str) -> bool:
        """Tell whether a value was written at ``location``.

        Args:
            location: A formatted location.

        Returns:
            True if `read` would find a value there.
        """

    @abstractmethod
    async def read(self, location: str) -> Any:
        """Read the value stored at ``location``.

        Args:
            location: A formatted location.

        Returns:
            The value, deserialized.

        Raises:
            FileNotFoundError: Nothing was written at ``location`` (every store raises this).
        """

    @abstractmethod
    async def write(self, value: Any, location: str) -> str:
        """Store ``value`` at ``location``, replacing what was there.

        A write is atomic: a reader sees the old value or the new one, never a part of it.

        Args:
            value: The value to store.
            location: A formatted location.

        Returns:
            The location written.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(location={self.location!r}, serializer={self.serializer!r})"


@final
class MemoryResult(Result):
    """Results kept in a dict for the life of this object (each instance has its own store).

    Values go through the serializer both ways, as with a real store: a value must be
    serializable, and every `read` returns a new copy, so mutating a value after writing it or
    after reading it never changes what is stored.

    Args:
        location: A location template or callable (see `Result`).
        serializer: How values become bytes; None for a `PickleSerializer`.
    """

    def __init__(
        self,
        *,
        location: str | Callable[..., str] | None = None,
        serializer: Serializer | None = None,
    ) -> None:
        super().__init__(location=location, serializer=serializer)
        self._store: dict[str, bytes] = {}

    async def exists(self, location: str) -> bool:
        """Tell whether a value was written at ``location``.

        Args:
            location: A formatted location.

        Returns:
            True if `read` would find a value there.
        """
        await anyio.lowlevel.checkpoint()
        return _check_key(location) in self._store

    async def read(self, location: str) -> Any:
        """Return a copy of the value stored at ``location``.

        Args:
            location: A formatted location.

        Returns:
            The value, deserialized.

        Raises:
            FileNotFoundError: Nothing was written at ``location``.
        """
        await anyio.lowlevel.checkpoint()
        try:
            data = self._store[_check_key(location)]
        except KeyError:
            raise FileNotFoundError(f"no result at {location!r} in this MemoryResult") from None
        return self.serializer.loads(data)

    async def write(self, value: Any, location: str) -> str:
        """Store ``value`` at ``location``.

        Args:
            value: The value to store.
            location: A formatted location.

        Returns:
            ``location``.
        """
        await anyio.lowlevel.checkpoint()
        self._store[_check_key(location)] = self.serializer.dumps(value)
        return location


def _check_key(location: str) -> str:
    if not isinstance(location, str):
        raise TypeError(f"a result location must be a str, not {type(location).__name__}")
    if not location:
        raise ValueError("a result location must not be empty")
    return location
