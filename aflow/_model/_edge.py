from __future__ import annotations

from collections.abc import Sized
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

if TYPE_CHECKING:
    from ._task import Task

__all__ = ("SCALARS", "Edge", "flatten", "is_mappable", "mapped", "new_edge", "unmapped")

T = TypeVar("T")

SCALARS = frozenset({int, float, str, bytes, bool, type(None)})  # types of values that can hold no task


def is_mappable(value: Any) -> bool:
    """Whether the engine maps over ``value``: a sized value other than a string, bytes or a dict."""
    return isinstance(value, Sized) and not isinstance(value, (str, bytes, dict))


class _EdgeFields:
    """The fields of an `Edge` (its slots), shared with the mutable twin `new_edge` fills in."""

    __slots__ = ("downstream_task", "flattened", "key", "mapped", "upstream_task")
    upstream_task: Task
    downstream_task: Task
    key: str | None
    mapped: bool
    flattened: bool


@final
class Edge(_EdgeFields):
    """A dependency from ``upstream_task`` to ``downstream_task``.

    Args:
        upstream_task: The task whose result (or completion) is needed.
        downstream_task: The task that needs it.
        key: The ``run`` argument that receives the upstream result; None for an ordering-only edge.
        mapped: Whether the downstream task maps over the upstream result.
        flattened: Whether the upstream result is un-nested one level before mapping.
    """

    __slots__ = ()

    def __init__(
        self,
        upstream_task: Task,
        downstream_task: Task,
        key: str | None = None,
        mapped: bool = False,
        flattened: bool = False,
    ) -> None:
        if key is not None and not key.isidentifier():
            raise ValueError(f"Edge key {key!r} is not a valid Python identifier")
        _set_up(self, upstream_task)
        _set_down(self, downstream_task)
        _set_key(self, key)
        _set_mapped(self, mapped)
        _set_flattened(self, flattened)

    def _tuple(self) -> tuple[int, int, str | None, bool, bool]:
        return (id(self.upstream_task), id(self.downstream_task), self.key, self.mapped, self.flattened)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Edge):
            return NotImplemented
        return self._tuple() == other._tuple()

    def __hash__(self) -> int:  # computed when asked (once per dict an edge joins), not stored
        return hash((id(self.upstream_task), id(self.downstream_task), self.key, self.mapped, self.flattened))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Edge is immutable")

    def __repr__(self) -> str:
        flags = "".join(f", {f}=True" for f in ("mapped", "flattened") if getattr(self, f))
        key = f", key={self.key!r}" if self.key else ""
        return f"<Edge {self.upstream_task.name} -> {self.downstream_task.name}{key}{flags}>"


class _NewEdge(_EdgeFields):
    """An `Edge` being filled in by `new_edge`: plain slot stores, then it becomes an Edge."""

    __slots__ = ()


_new = object.__new__
# the slots' own setters: what object.__setattr__ ends up calling, without the look-up by name
_set_up, _set_down, _set_key, _set_mapped, _set_flattened = (
    vars(_EdgeFields)[name].__set__ for name in ("upstream_task", "downstream_task", "key", "mapped", "flattened")
)


def new_edge(upstream_task: Task, downstream_task: Task, key: str) -> Edge:
    """A plain data edge, as ``Edge(upstream_task, downstream_task, key)``, for a key known valid."""
    edge = _new(_NewEdge)  # the slots are set as any attribute (no call per field), then frozen
    edge.upstream_task = upstream_task
    edge.downstream_task = downstream_task
    edge.key = key
    edge.mapped = False
    edge.flattened = False
    edge.__class__ = Edge  # type: ignore[assignment]
    return edge  # type: ignore[return-value]


class _Annotation(Generic[T]):
    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


@final
class unmapped(_Annotation[T]):
    """Pass the whole value to every child of a mapped call: ``t.map(xs, y=unmapped(ys))``."""

    __slots__ = ()


@final
class mapped(_Annotation[T]):
    """Map over this one argument in an ordinary call: ``t(mapped(xs), y=ys)``."""

    __slots__ = ()


@final
class flatten(_Annotation[T]):
    """Un-nest a list of lists one level before mapping over it: ``t.map(flatten(xss))``."""

    __slots__ = ()
