"""`task`: a function (async or sync) as a `Task`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from ._task import Task
from ._task_spec import check_run

__all__ = ("FunctionTask", "task")

F = TypeVar("F", bound=Callable[..., Any])


class FunctionTask(Task):
    """A task whose ``run`` is a plain function (made by `task`).

    Args:
        fn: The async or sync function to run.
        **kwargs: `Task` attributes.
    """

    wraps_function = True

    def __init__(self, fn: Callable[..., Any], **kwargs: Any) -> None:
        if not callable(fn):
            raise TypeError(f"@task needs a function, got {fn!r}")
        if inspect.isbuiltin(fn) or isinstance(fn, type):
            raise TypeError(f"@task cannot wrap the builtin or class {fn!r}: wrap it in a def first")
        name = getattr(fn, "__name__", type(fn).__name__)
        self.run_spec = check_run(fn, name, skip_self=False)
        self.run_is_async = inspect.iscoroutinefunction(fn)
        self.run = fn  # type: ignore[method-assign]
        self.__doc__ = fn.__doc__
        kwargs.setdefault("name", name)
        super().__init__(**kwargs)


@overload
def task(fn: F, /) -> FunctionTask: ...
@overload
def task(fn: None = None, /, **task_args: Any) -> Callable[[F], FunctionTask]: ...
def task(fn: F | None = None, /, **task_args: Any) -> FunctionTask | Callable[[F], FunctionTask]:
    """Turn a function (async or sync) into a Task: ``@task`` or ``@task(max_retries=2, ...)``.

    Args:
        fn: The function to wrap.
        **task_args: `Task` attributes (``name``, ``max_retries``, ``timeout``...).
    """
    if fn is not None:
        return FunctionTask(fn, **task_args)

    def decorator(fn: F) -> FunctionTask:
        return FunctionTask(fn, **task_args)

    return decorator
