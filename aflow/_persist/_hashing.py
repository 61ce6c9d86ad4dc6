"""`stable_hash`: a digest of a value that is the same in every process.

Python's ``hash()`` of ``str``, ``bytes`` and ``datetime`` changes from one process to the next
(``PYTHONHASHSEED``), and set iteration order follows it, so neither ``hash()`` nor ``pickle`` can
tell whether a task's inputs are the ones a cached result was computed from. `stable_hash` walks
the value instead and feeds a type-tagged, length-prefixed encoding of it to SHA-256.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import PurePath, PureWindowsPath
from typing import Any

__all__ = ("stable_hash",)

_PICKLE_PROTOCOL = 5  # fixed, so a newer cloudpickle default cannot change the digests


def stable_hash(value: object) -> str:
    """Return a hex SHA-256 digest of ``value`` that does not depend on the process.

    The digest is the same in every process and Python session (it never uses ``hash()``), for:
    ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``, ``bytearray``,
    ``list``, ``tuple``, ``dict`` (whatever the key order), ``set`` and ``frozenset`` (whatever
    the iteration order), ``datetime``, ``date``, ``time``, ``timedelta``, ``Decimal``, ``UUID``,
    paths (by flavour and text: ``Path("a")`` and ``PurePosixPath("a")`` alike on POSIX),
    dataclass instances and enum members, nested in any way (reference cycles included).

    The encoding is tagged with the type, so two values hash alike only if they are alike: equal
    values of different types or spellings hash differently (``1``, ``1.0`` and ``True``;
    ``[1]`` and ``(1,)``; ``Decimal("1.0")`` and ``Decimal("1.00")``; the same instant in two
    time zones). Subclasses of the types above (a ``NamedTuple``, an ``OrderedDict``) hash like
    their base plus their qualified class name; dataclasses and enums by their qualified class
    name and their fields or member name.

    Any other value falls back to its cloudpickle bytes (protocol 5) plus its qualified class
    name. That fallback is only as stable as the pickle: an object whose state holds a ``set``
    of strings, or anything else whose order or content depends on the process, may hash
    differently in another process (a cache miss, never a false hit), and a value cloudpickle
    cannot pickle raises.

    Args:
        value: The value to digest.

    Returns:
        64 lowercase hex characters.

    Raises:
        TypeError: ``value`` holds an object of an unsupported type that cloudpickle cannot pickle.
    """
    digest = hashlib.sha256()
    _encode(digest.update, value, [])
    return digest.hexdigest()


_Feed = Callable[[bytes], object]


def _frame(feed: _Feed, tag: bytes, payload: bytes) -> None:
    feed(tag)
    feed(len(payload).to_bytes(8, "big"))
    feed(payload)


def _type_name(cls: type) -> bytes:
    return f"{cls.__module__}.{cls.__qualname__}".encode()


def _item_digest(value: object, stack: list[int]) -> bytes:
    digest = hashlib.sha256()
    _encode(digest.update, value, stack)
    return digest.digest()


def _encode(feed: _Feed, value: object, stack: list[int]) -> None:
    # exact builtin scalars first: the common case, and no subclass check needed
    cls = type(value)
    scalar = _SCALARS.get(cls)
    if scalar is not None:
        _frame(feed, *scalar(value))
        return
    if isinstance(value, PurePath):  # no class name: it moved between Python versions
        _frame(feed, *_path(value))
        return
    if isinstance(value, enum.Enum):
        _frame(feed, b"E", _type_name(cls))
        _frame(feed, b"s", value.name.encode("utf-8", "surrogatepass"))
        return
    if id(value) in stack:  # a reference cycle: encode the back-reference, as pickle's memo does
        _frame(feed, b"R", str(stack.index(id(value))).encode())
        return
    stack.append(id(value))
    try:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = dataclasses.fields(value)
            _frame(feed, b"D", _type_name(cls))
            feed(len(fields).to_bytes(8, "big"))
            for field in fields:
                _frame(feed, b"s", field.name.encode())
                _encode(feed, getattr(value, field.name), stack)
            return
        for base, encode in _CONTAINERS:
            if isinstance(value, base):
                if cls is not base:
                    _frame(feed, b"C", _type_name(cls))
                encode(feed, value, stack)
                return
        for base, scalar in _SCALARS.items():
            if base is not type(None) and isinstance(value, base):
                _frame(feed, b"C", _type_name(cls))
                _frame(feed, *scalar(value))
                return
        _frame(feed, b"P", _type_name(cls))
        _frame(feed, b"p", _pickle(value))
    finally:
        stack.pop()


def _pickle(value: object) -> bytes:
    import cloudpickle  # type: ignore[import-untyped]  # lazily: `import aflow` stays light

    try:
        data: bytes = cloudpickle.dumps(value, protocol=_PICKLE_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"stable_hash cannot digest a {type(value).__qualname__}: it is not a supported type "
            f"and cloudpickle cannot pickle it ({exc})"
        ) from exc
    return data


def _str(value: Any) -> tuple[bytes, bytes]:
    return b"s", str.encode(value, "utf-8", "surrogatepass")


def _float(value: Any) -> tuple[bytes, bytes]:
    return b"f", float.hex(value).encode()


def _tz_id(tz: tzinfo | None) -> str:
    # the zone too, not only the offset: ZoneInfo("Europe/Paris") and a fixed +01:00 differ
    if tz is None:
        return ""
    key = getattr(tz, "key", None)  # zoneinfo.ZoneInfo
    if isinstance(key, str):
        return key
    if isinstance(tz, timezone):
        return str(tz)
    return _type_name(type(tz)).decode()  # never str(): it may hold a memory address


def _datetime(value: Any) -> tuple[bytes, bytes]:
    return b"d", f"{datetime.isoformat(value)}|{_tz_id(value.tzinfo)}|{value.fold}".encode()


def _time(value: Any) -> tuple[bytes, bytes]:
    return b"h", f"{time.isoformat(value)}|{_tz_id(value.tzinfo)}|{value.fold}".encode()


def _path(value: Any) -> tuple[bytes, bytes]:
    flavour = b"W" if isinstance(value, PureWindowsPath) else b"X"
    return flavour, value.as_posix().encode("utf-8", "surrogatepass")


_SCALARS: dict[type, Callable[[Any], tuple[bytes, bytes]]] = {
    type(None): lambda value: (b"N", b""),
    bool: lambda value: (b"B", b"1" if value else b"0"),
    int: lambda value: (b"i", hex(value).encode()),  # hex: no digit limit, unlike str()
    float: _float,
    complex: lambda value: (b"j", f"{float.hex(value.real)},{float.hex(value.imag)}".encode()),
    str: _str,
    bytes: lambda value: (b"b", bytes(value)),
    bytearray: lambda value: (b"y", bytes(value)),
    datetime: _datetime,
    date: lambda value: (b"a", date.isoformat(value).encode()),
    time: _time,
    timedelta: lambda value: (b"t", f"{value.days},{value.seconds},{value.microseconds}".encode()),
    Decimal: lambda value: (b"m", Decimal.__str__(value).encode()),
    uuid.UUID: lambda value: (b"u", value.bytes),
}


def _sequence(tag: bytes) -> Callable[[_Feed, Any, list[int]], None]:
    def encode(feed: _Feed, value: Any, stack: list[int]) -> None:
        feed(tag)
        feed(len(value).to_bytes(8, "big"))
        for item in value:
            _encode(feed, item, stack)

    return encode


def _unordered(tag: bytes) -> Callable[[_Feed, Any, list[int]], None]:
    # each element is digested alone and the digests are sorted: iteration order cannot matter
    def encode(feed: _Feed, value: Any, stack: list[int]) -> None:
        feed(tag)
        feed(len(value).to_bytes(8, "big"))
        for item_digest in sorted(_item_digest(item, stack) for item in value):
            feed(item_digest)

    return encode


def _mapping(feed: _Feed, value: Any, stack: list[int]) -> None:
    feed(b"M")
    feed(len(value).to_bytes(8, "big"))
    for item_digest in sorted(_item_digest((key, item), stack) for key, item in value.items()):
        feed(item_digest)


# checked in order with isinstance; a subclass adds its class name first
_CONTAINERS: tuple[tuple[type, Callable[[_Feed, Any, list[int]], None]], ...] = (
    (list, _sequence(b"L")),
    (tuple, _sequence(b"T")),
    (dict, _mapping),
    (set, _unordered(b"S")),
    (frozenset, _unordered(b"F")),
)
