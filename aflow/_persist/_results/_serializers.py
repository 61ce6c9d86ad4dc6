"""Serializers: how a `Result` turns a value into bytes and back."""

from __future__ import annotations

import json
import pickle
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, final

__all__ = ("JSONSerializer", "PickleSerializer", "Serializer")


class Serializer(ABC):
    """Turns values into bytes and back. Subclass it to store values in another format.

    Two serializers are equal when they have the same type and the same attributes.
    """

    @abstractmethod
    def dumps(self, value: Any) -> bytes:
        """Serialize ``value``.

        Args:
            value: The value to store.

        Returns:
            The bytes that `loads` turns back into an equal value.
        """

    @abstractmethod
    def loads(self, data: bytes) -> Any:
        """Deserialize what `dumps` returned.

        Args:
            data: Bytes written by `dumps`.

        Returns:
            The value.
        """

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return getattr(self, "__dict__", {}) == getattr(other, "__dict__", {})

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_SCALARS = frozenset({int, float, complex, str, bytes, bool, type(None)})  # pickled by value, never by reference


@final
class PickleSerializer(Serializer):
    """Serializes with cloudpickle, so lambdas, closures and local classes work too (the default).

    Only read pickles you wrote yourself: unpickling runs code chosen by whoever wrote the bytes.

    Args:
        protocol: The pickle protocol; None for cloudpickle's default.
    """

    def __init__(self, protocol: int | None = None) -> None:
        self.protocol = protocol

    def dumps(self, value: Any) -> bytes:
        """Pickle ``value`` with cloudpickle.

        Args:
            value: The value to store.

        Returns:
            The pickle.
        """
        if type(value) in _SCALARS:  # the same bytes cloudpickle makes, without making a CloudPickler
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL if self.protocol is None else self.protocol)
        import cloudpickle  # type: ignore[import-untyped]  # lazily: `import aflow` stays light

        data: bytes = cloudpickle.dumps(value, protocol=self.protocol)
        return data

    def loads(self, data: bytes) -> Any:
        """Unpickle ``data``.

        Args:
            data: A pickle written by `dumps`.

        Returns:
            The value.
        """
        return pickle.loads(data)  # what cloudpickle.loads is


@final
class JSONSerializer(Serializer):
    """Serializes to UTF-8 JSON, for values other programs should read too.

    Args:
        dumps_kwargs: Extra keyword arguments for `json.dumps` (``default=``, ``sort_keys=``...).
        loads_kwargs: Extra keyword arguments for `json.loads` (``object_hook=``...).
    """

    def __init__(
        self,
        dumps_kwargs: Mapping[str, Any] | None = None,
        loads_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.dumps_kwargs = dict(dumps_kwargs or {})
        self.loads_kwargs = dict(loads_kwargs or {})

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` as JSON.

        Args:
            value: A JSON-serializable value.

        Returns:
            UTF-8 JSON text.

        Raises:
            TypeError: ``value`` is not JSON-serializable.
        """
        return json.dumps(value, **self.dumps_kwargs).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        """Decode JSON.

        Args:
            data: UTF-8 JSON text.

        Returns:
            The decoded value.
        """
        return json.loads(data.decode("utf-8"), **self.loads_kwargs)

    def __repr__(self) -> str:
        return f"JSONSerializer(dumps_kwargs={self.dumps_kwargs!r}, loads_kwargs={self.loads_kwargs!r})"
