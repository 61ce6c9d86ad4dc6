"""What a task's ``run`` accepts (`RunSpec`, once per class); checks of `Task` options and ``__init__`` calls."""

from __future__ import annotations

import difflib
import functools
import inspect
import re
import typing
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from ..exceptions import TaskDefinitionError
from ._defaults import is_lazy

__all__ = (
    "NO_RUN_SPEC",
    "RESERVED_ARGS",
    "RunSpec",
    "check_retry_on",
    "check_run",
    "checked_init",
    "infer_nout",
    "init_with_hints",
    "seconds",
)

RESERVED_ARGS = frozenset({"upstream_tasks", "mapped", "task_args", "flow"})
"""Names a task's ``run`` may not use: calls take them as their own keyword arguments."""


def check_retry_on(retry_on: Any) -> tuple[type[Exception], ...] | None:
    """``retry_on`` as a tuple of exception classes (None stays None).

    Raises:
        TypeError: If an entry is not an exception class (an instance, a string, ``int``...).
    """
    if retry_on is None:
        return None
    if isinstance(retry_on, (type, str, bytes)) or not isinstance(retry_on, Iterable):
        found: tuple[Any, ...] = (retry_on,)
    else:
        found = tuple(retry_on)
    for value in found:
        if not isinstance(value, type):
            example = type(value).__name__ if isinstance(value, Exception) else "ValueError"
            raise TypeError(
                f"Invalid retry_on value {value!r}: expected an exception class, got an instance of "
                f"{type(value).__name__}; pass classes, e.g. retry_on={example}"
            )
        if not issubclass(value, Exception):
            raise TypeError(
                f"Invalid retry_on value {value!r}: expected a subclass of Exception, e.g. retry_on=ValueError"
            )
    return found


def seconds(value: float | timedelta | None, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} must be a non-negative number of seconds or a timedelta, got {value!r}")
    return float(value)


class RunSpec:
    """What binding needs to know about a ``run`` signature, computed once per class."""

    __slots__ = ("enough", "names", "positional", "required", "signature", "var_kw")

    def __init__(self, signature: inspect.Signature) -> None:
        params = signature.parameters.values()
        self.signature = signature
        self.positional = tuple(p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD)
        self.required = tuple(p.name for p in params if p.default is p.empty and p.kind is not p.VAR_KEYWORD)
        self.names = frozenset(p.name for p in params if p.kind is not p.VAR_KEYWORD)
        self.var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
        # how many positional arguments cover every required one (a call with that many or more,
        # up to all, and no keywords needs no further check); past the end if a required one is
        # keyword-only
        pos = self.positional
        self.enough = (
            max((pos.index(n) + 1 for n in self.required), default=0)
            if all(n in pos for n in self.required)
            else len(pos) + 1
        )

    def accepts(self, key: str) -> bool:
        """Whether ``run`` takes an argument named ``key``."""
        return self.var_kw or key in self.names

    def bind(self, owner: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Map a call's arguments to ``run`` argument names (without applying defaults).

        Raises:
            TaskDefinitionError: For too many, unknown, repeated or missing arguments.
        """
        if not kwargs and self.enough <= len(args) <= len(self.positional):
            return dict(zip(self.positional, args, strict=False))  # the common call, checked already
        if len(args) > len(self.positional):
            self._fail(owner, f"takes {len(self.positional)} positional arguments but {len(args)} were given")
        out = dict(zip(self.positional, args, strict=False))
        for key in kwargs:
            if key in out:
                self._fail(owner, f"got multiple values for argument {key!r}")
            if not self.var_kw and key not in self.names:
                self._fail(owner, f"got an unexpected keyword argument {key!r}")
        out.update(kwargs)
        missing = [n for n in self.required if n not in out]
        if missing:
            self._fail(owner, f"missing required argument(s): {', '.join(map(repr, missing))}")
        return out

    def _fail(self, owner: str, problem: str) -> None:
        raise TaskDefinitionError(f"{owner}: run{self.signature} {problem}")


NO_RUN_SPEC = RunSpec(inspect.Signature())  # the spec of a class that defines no run


def check_run(fn: Callable[..., Any], owner: str, skip_self: bool) -> RunSpec:
    """Check a run function's signature and return its spec (without ``self``)."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if skip_self:
        params = params[1:]
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            raise TaskDefinitionError(
                f"{owner}.run() takes *{p.name}: task runs may not take *args, "
                "because every argument is bound by name (use named parameters or **kwargs)"
            )
        if p.kind is p.POSITIONAL_ONLY:
            raise TaskDefinitionError(
                f"{owner}.run() has positional-only parameter {p.name!r}: task arguments are bound by name"
            )
        if p.name in RESERVED_ARGS:
            raise TaskDefinitionError(
                f"{owner}.run() has a parameter named {p.name!r}, which is reserved for task calls "
                f"({', '.join(sorted(RESERVED_ARGS))}); rename it"
            )
    return RunSpec(sig.replace(parameters=params))


def infer_nout(fn: Callable[..., Any]) -> int | None:
    try:
        ret = typing.get_type_hints(fn).get("return")
    except Exception:  # unresolvable forward references: nothing to infer
        return None
    if typing.get_origin(ret) is tuple:
        args = typing.get_args(ret)
        if args and args[-1] is not Ellipsis and args != ((),):
            return len(args)
    return None


def checked_init(init: Callable[..., None], base: type) -> Callable[..., None]:
    """``init`` refusing tasks among its arguments, and explaining a mistyped keyword."""

    @functools.wraps(init)
    def checked(self: Any, *args: Any, **kwargs: Any) -> None:
        for value in (*args, *kwargs.values()):
            if isinstance(value, base) and not is_lazy(value):  # a lazy task is a lazy default
                name = getattr(value, "name", "?")
                raise TaskDefinitionError(
                    f"{type(self).__name__}() was given the task {name!r} at initialization; "
                    "__init__ takes static configuration only: pass results of other tasks to the "
                    f"call instead, e.g. {type(self).__name__}(...)(x={name})"
                )
        try:
            init(self, *args, **kwargs)
        except TypeError as exc:
            explain_bad_keyword(self, exc, kwargs)
            raise

    return checked


_UNEXPECTED_KEYWORD = re.compile(r"got an unexpected keyword argument '(\w+)'")


def _init_keywords(cls: type) -> list[str]:
    """Every keyword the ``__init__`` methods of ``cls`` and its bases name."""
    names: dict[str, None] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        init = inspect.unwrap(init)
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names[p.name] = None
    return list(names)


def explain_bad_keyword(task: Any, exc: TypeError, kwargs: dict[str, Any]) -> None:
    """Turn Python's "unexpected keyword argument" from an ``__init__`` call into an aflow error.

    Only an error raised by the call itself (not from deeper inside ``__init__``) is explained.

    Raises:
        TaskDefinitionError: Naming the class, the keyword and the nearest valid one.
    """
    if isinstance(exc, TaskDefinitionError) or exc.__traceback__ is None or exc.__traceback__.tb_next is not None:
        return
    found = _UNEXPECTED_KEYWORD.search(str(exc))
    if found is None or found[1] not in kwargs:
        return
    cls = type(task)
    key = found[1]
    valid = _init_keywords(cls)
    if key in valid:
        return
    if getattr(cls, "wraps_function", False):
        who = f"@task (for {getattr(task.run, '__name__', 'the function')!r})"
        valid = [name for name in valid if name != "fn"]
    else:
        who = f"{cls.__name__}()"
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"it takes {', '.join(sorted(valid))}"
    raise TaskDefinitionError(f"{who} got an unexpected keyword argument {key!r}: {hint}") from None


def init_with_hints(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` explaining a mistyped keyword (`Task.__init__` itself)."""

    @functools.wraps(init)
    def with_hints(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except TypeError as exc:
            explain_bad_keyword(self, exc, kwargs)
            raise

    return with_hints
