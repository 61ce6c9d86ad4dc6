"""Tasks aflow creates for you: parameters, constants, item access and collections."""

from __future__ import annotations

import itertools
from collections.abc import ItemsView, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, final

from .._runtime._run_context import flow_run_var
from ._building import building
from ._edge import flatten, mapped, unmapped
from ._task import GetItem, Task

if TYPE_CHECKING:
    from ._flow import Flow

__all__ = ("Constant", "Dict", "GetItem", "List", "Parameter", "Set", "Tuple", "as_task")


class _NoDefault:
    def __repr__(self) -> str:
        return "<no default>"


NO_DEFAULT: Any = _NoDefault()


@final
class Parameter(Task):
    """A flow input, given to ``flow.run(name=value)``.

    Args:
        name: The parameter's name, unique within a flow (also its slug).
        default: The value when the run does not give one.
        required: Whether a run must give it; by default, when there is no ``default``.
        tags: Tags, as for any task.
    """

    def __init__(self, name: str, default: Any = NO_DEFAULT, required: bool | None = None, tags: Any = None) -> None:
        if required is None:
            required = default is NO_DEFAULT
        self.default = None if default is NO_DEFAULT else default
        self.required = required
        super().__init__(name=name, slug=name, tags=tags)

    def __repr__(self) -> str:
        return f"<Parameter: {self.name}>"

    def copy(self, **task_args: Any) -> Task:
        """Parameters are not copied by calls: a copy must get a new ``name``."""
        if "name" not in task_args:
            raise AttributeError("A Parameter copy needs a new name: p.copy(name='other')")
        task_args.setdefault("slug", task_args["name"])
        return super().copy(**task_args)

    def __call__(self, *args: Any, **kwargs: Any) -> Task:
        """Parameters take no arguments; calling one adds it (only ordering edges) to the flow."""
        if args or set(kwargs) - {"flow", "upstream_tasks"}:
            raise TypeError(f"Parameter {self.name!r} takes no arguments")
        return self.bind(**kwargs)

    async def run(self) -> Any:
        """Return the run's value for this parameter (or the default)."""
        frun = flow_run_var.get()
        params = frun.parameters if frun is not None else {}
        return params.get(self.name, self.default)


@final
class Constant(Task):
    """A task that returns ``value`` (made for mapped or flattened constant arguments)."""

    auto_generated = True

    def __init__(self, value: Any, name: str | None = None, **kwargs: Any) -> None:
        self.value = value
        if name is None:
            text = repr(value)
            name = text if len(text) <= 8 else f"Constant[{type(value).__name__}]"
        super().__init__(name=name, **kwargs)

    async def run(self) -> Any:
        """Return the value."""
        return self.value


def _positional(kwargs: dict[str, Any]) -> list[Any]:
    # by the strings the keys were made from (found by identity), as far as they are shared
    return [kwargs[name] for name in _arg_keys(len(kwargs))]


@final
class List(Task):
    """Collect ``arg_0 ... arg_n`` into a list (made for a list holding tasks)."""

    auto_generated = True

    async def run(self, **kwargs: Any) -> list[Any]:
        """Return the list."""
        return _positional(kwargs)


@final
class Tuple(Task):
    """Collect ``arg_0 ... arg_n`` into a tuple."""

    auto_generated = True

    async def run(self, **kwargs: Any) -> tuple[Any, ...]:
        """Return the tuple."""
        return tuple(_positional(kwargs))


@final
class Set(Task):
    """Collect ``arg_0 ... arg_n`` into a set."""

    auto_generated = True

    async def run(self, **kwargs: Any) -> set[Any]:
        """Return the set."""
        return set(_positional(kwargs))


@final
class Dict(Task):
    """Build a dict from a list of keys and a list of values."""

    auto_generated = True

    async def run(self, keys: list[Any], values: list[Any]) -> dict[Any, Any]:
        """Return ``dict(zip(keys, values))``."""
        return dict(zip(keys, values, strict=True))


_ANNOTATIONS = (unmapped, mapped, flatten)
_COLLECTIONS: dict[type, type[Task]] = {list: List, tuple: Tuple, set: Set, frozenset: Set}


def contains_task(value: Any) -> bool:
    """Whether ``value`` is a task or a collection holding one (at any depth)."""
    if isinstance(value, Task):
        return True
    if isinstance(value, _ANNOTATIONS):
        return contains_task(value.value)
    if isinstance(value, dict):
        return any(contains_task(k) or contains_task(v) for k, v in value.items())
    if type(value) in _COLLECTIONS:
        return any(contains_task(v) for v in value)
    return False


def as_task(value: Any, flow: Flow | None = None) -> Task:
    """Return ``value`` as a task.

    A task is returned as is, a collection holding tasks becomes a collection task (bound in
    ``flow``), anything else a `Constant`.
    """
    while isinstance(value, _ANNOTATIONS):
        value = value.value
    if isinstance(value, Task):
        return value
    if not contains_task(value):
        return Constant(value)
    if isinstance(value, dict):
        return Dict().bind(keys=list(value), values=list(value.values()), flow=flow)
    items = _Items(value if type(value) is list else list(value))
    task = _COLLECTIONS[type(value)]()
    found = flow if flow is not None else building.get()
    if found is not None and found.graph.add_call(task, items):
        return task  # items that are tasks of the flow or scalars: bound in one step
    return task.bind(flow=flow, **dict(items.items()))


class _Items(Mapping[str, Any]):
    """A collection's items under their ``arg_i`` names, read in order without a dict of them."""

    __slots__ = ("_names", "_values")

    def __init__(self, values: list[Any]) -> None:
        self._values = values
        self._names = list(_arg_keys(len(values)))

    def items(self) -> ItemsView[str, Any]:
        return zip(self._names, self._values, strict=True)  # type: ignore[return-value]  # a pass over them

    def __getitem__(self, key: str) -> Any:
        return dict(self.items())[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._values)


_MAX_SHARED_NAMES = 16_384
_arg_names = [f"arg_{i}" for i in range(1024)]  # "arg_0"...: shared by the collection tasks


def _arg_keys(n: int) -> Iterable[str]:
    """The ``n`` argument names ``arg_0``...: shared strings (up to `_MAX_SHARED_NAMES`), then new ones.

    The shared list is replaced when it grows, never changed in place (threads may be reading it).
    """
    global _arg_names
    names = _arg_names
    if n > len(names) and len(names) < _MAX_SHARED_NAMES:
        names = _arg_names = names + [f"arg_{i}" for i in range(len(names), min(2 * n, _MAX_SHARED_NAMES))]
    if n <= len(names):
        return names[:n]
    return itertools.chain(names, (f"arg_{i}" for i in range(len(names), n)))
