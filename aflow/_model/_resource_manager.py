"""`resource_manager`: set a resource up before a block of tasks and clean it up after them."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final, overload

import anyio.to_thread

from .. import signals, triggers
from ._control_flow import block_roots, new_tasks
from ._task import Task
from ._task_spec import RunSpec, check_run

if TYPE_CHECKING:
    from ..states import State
    from ._edge import Edge
    from ._flow import Flow

__all__ = (
    "ResourceCleanupTask",
    "ResourceContext",
    "ResourceInitTask",
    "ResourceManager",
    "ResourceSetupTask",
    "resource_cleanup_trigger",
    "resource_manager",
)

R = TypeVar("R")


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Await an ``async def`` method; run a plain one in a worker thread."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await anyio.to_thread.run_sync(functools.partial(fn, *args))
    if inspect.isawaitable(result):
        result = await result
    return result


class _ResourceTask(Task):
    #: Cleanup tasks set it: `Flow.reference_tasks` leaves them out when it picks terminal tasks.
    not_reference_task = False


@final
class ResourceInitTask(_ResourceTask):
    """Create the resource manager object: ``resource_class(*args, **kwargs)``.

    Args:
        resource_class: The class decorated with `resource_manager`.
        **kwargs: `Task` attributes.
    """

    def __init__(self, resource_class: type, **kwargs: Any) -> None:
        self.resource_class = resource_class
        init = resource_class.__init__  # type: ignore[misc]  # the class itself, not an instance
        if init is object.__init__:
            self.run_spec = RunSpec(inspect.Signature())
        else:
            self.run_spec = check_run(init, resource_class.__name__, skip_self=True)
        kwargs.setdefault("name", resource_class.__name__)
        super().__init__(**kwargs)

    async def run(self, **kwargs: Any) -> Any:
        """Instantiate the resource class (in a worker thread) with the bound arguments.

        Args:
            **kwargs: The arguments of the resource class's ``__init__``.
        """
        return await anyio.to_thread.run_sync(functools.partial(self.resource_class, **kwargs))


@final
class ResourceSetupTask(_ResourceTask):
    """Call ``setup()`` on the manager object and return the resource.

    Args:
        **kwargs: `Task` attributes.
    """

    async def run(self, mgr: Any) -> Any:
        """Return ``mgr.setup()`` (awaited if it is ``async def``).

        Args:
            mgr: The resource manager object.
        """
        return await _call(mgr.setup)


def resource_cleanup_trigger(upstream_states: Mapping[Edge, State]) -> bool:
    """Run the cleanup if the resource was set up, whatever happened to the block's tasks.

    Raises:
        SKIP: If creating or setting up the resource failed or was skipped.
    """
    for edge, state in upstream_states.items():
        if edge.key in ("mgr", "resource") and (state.is_skipped() or not state.is_successful()):
            raise signals.SKIP("The resource was not set up, so there is nothing to clean up")
    return triggers.all_finished(upstream_states)


@final
class ResourceCleanupTask(_ResourceTask):
    """Call ``cleanup(resource)`` on the manager object.

    It is downstream of every task of the block, runs whenever the setup succeeded (even if
    block tasks failed), is skipped when the setup did not, and is not a reference task.

    Args:
        **kwargs: `Task` attributes.
    """

    not_reference_task = True
    run_on_cancel = True

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trigger", resource_cleanup_trigger)
        kwargs.setdefault("skip_on_upstream_skip", False)
        super().__init__(**kwargs)

    async def run(self, mgr: Any, resource: Any) -> None:
        """Call ``mgr.cleanup(resource)`` (awaited if it is ``async def``).

        Args:
            mgr: The resource manager object.
            resource: What ``setup()`` returned.
        """
        await _call(mgr.cleanup, resource)


@final
class ResourceContext:
    """The ``with`` block of a resource: made by calling a `resource_manager` class in a flow.

    Entering it returns the setup task, whose result is the resource.

    Args:
        init_task: The task creating the manager object.
        setup_task: The task calling ``setup()``.
        cleanup_task: The task calling ``cleanup(resource)``.
        flow: The flow the tasks belong to.
    """

    def __init__(
        self, init_task: ResourceInitTask, setup_task: ResourceSetupTask, cleanup_task: ResourceCleanupTask, flow: Flow
    ) -> None:
        self.init_task = init_task
        self.setup_task = setup_task
        self.cleanup_task = cleanup_task
        self.flow = flow
        self._before: set[Task] | None = None

    def __enter__(self) -> ResourceSetupTask:
        self._before = set(self.flow.graph.tasks)
        return self.setup_task

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        before, self._before = self._before, None
        if before is None or exc_type is not None:
            return
        flow = self.flow
        block = new_tasks(flow, before)
        for child in block_roots(flow, block):
            flow.add_edge(self.setup_task, child)
        for child in block:
            if child is not self.cleanup_task:
                flow.add_edge(child, self.cleanup_task)


@final
class ResourceManager(Generic[R]):
    """A class decorated with `resource_manager`: call it inside a flow to get a `ResourceContext`.

    Args:
        resource_class: The class with ``__init__``, ``setup()`` and ``cleanup(resource)``.
        name: The base name of the tasks (default: the class name).
        init_task_kwargs: `Task` attributes of the init task.
        setup_task_kwargs: `Task` attributes of the setup task.
        cleanup_task_kwargs: `Task` attributes of the cleanup task.
    """

    def __init__(
        self,
        resource_class: type[R],
        name: str | None = None,
        init_task_kwargs: dict[str, Any] | None = None,
        setup_task_kwargs: dict[str, Any] | None = None,
        cleanup_task_kwargs: dict[str, Any] | None = None,
    ) -> None:
        for method in ("setup", "cleanup"):
            if not callable(getattr(resource_class, method, None)):
                raise TypeError(f"@resource_manager class {resource_class.__name__} needs a {method}() method")
        self.resource_class = resource_class
        self.name = name if name is not None else resource_class.__name__
        self.init_task_kwargs = dict(init_task_kwargs or {})
        self.setup_task_kwargs = dict(setup_task_kwargs or {})
        self.cleanup_task_kwargs = dict(cleanup_task_kwargs or {})
        functools.update_wrapper(self, resource_class, updated=())

    def __call__(self, *args: Any, flow: Flow | None = None, **kwargs: Any) -> ResourceContext:
        """Add the init, setup and cleanup tasks to the flow and return the ``with`` block.

        Args:
            *args: Arguments of the resource class's ``__init__`` (tasks or values).
            flow: The flow to add to (default: the enclosing one).
            **kwargs: Keyword arguments of ``__init__``.

        Raises:
            ValueError: If there is no flow.
        """
        from ._building import current_flow

        flow = flow if flow is not None else current_flow()
        if flow is None:
            raise ValueError(
                f"Could not infer an active Flow for resource {self.name!r}: use it inside `with Flow(...):` "
                "or pass flow="
            )
        init_task = ResourceInitTask(self.resource_class, **{"name": self.name, **self.init_task_kwargs})
        init_task.bind(*args, flow=flow, **kwargs)
        setup_task = ResourceSetupTask(**{"name": f"{self.name}.setup", **self.setup_task_kwargs})
        setup_task.bind(mgr=init_task, flow=flow)
        cleanup_task = ResourceCleanupTask(**{"name": f"{self.name}.cleanup", **self.cleanup_task_kwargs})
        cleanup_task.bind(mgr=init_task, resource=setup_task, flow=flow)
        return ResourceContext(init_task, setup_task, cleanup_task, flow)


@overload
def resource_manager(resource_class: type[R], /) -> ResourceManager[R]: ...
@overload
def resource_manager(
    resource_class: None = None,
    /,
    *,
    name: str | None = None,
    init_task_kwargs: dict[str, Any] | None = None,
    setup_task_kwargs: dict[str, Any] | None = None,
    cleanup_task_kwargs: dict[str, Any] | None = None,
) -> Callable[[type[R]], ResourceManager[R]]: ...
def resource_manager(
    resource_class: type[R] | None = None,
    /,
    *,
    name: str | None = None,
    init_task_kwargs: dict[str, Any] | None = None,
    setup_task_kwargs: dict[str, Any] | None = None,
    cleanup_task_kwargs: dict[str, Any] | None = None,
) -> ResourceManager[R] | Callable[[type[R]], ResourceManager[R]]:
    """Turn a class with ``__init__``, ``setup()`` and ``cleanup(resource)`` into a flow resource.

    ``setup`` and ``cleanup`` may be ``async def`` or plain (run in a worker thread). Inside a
    flow, ``with MyResource(args) as r:`` adds three tasks: one creates the object, one calls
    ``setup()`` (``r``: its result, the resource, is passed to tasks called with ``r``), and one
    calls ``cleanup(resource)`` after every task of the block, even failed ones, as long as the
    setup succeeded. Tasks of the block with no upstream in the block run after the setup.
    The cleanup is never a reference task, so a failed block still fails the flow.

    Example::

        @resource_manager
        class Db:
            def __init__(self, url): self.url = url
            async def setup(self): return await connect(self.url)
            async def cleanup(self, conn): await conn.close()

        with Flow("f") as flow:
            with Db(url) as conn:
                query(conn)

    Args:
        resource_class: The class (when used as ``@resource_manager``).
        name: The base name of the tasks (default: the class name).
        init_task_kwargs: `Task` attributes of the init task.
        setup_task_kwargs: `Task` attributes of the setup task.
        cleanup_task_kwargs: `Task` attributes of the cleanup task.

    Returns:
        A `ResourceManager`, or a decorator making one.
    """

    def decorate(cls: type[R]) -> ResourceManager[R]:
        return ResourceManager(
            cls,
            name=name,
            init_task_kwargs=init_task_kwargs,
            setup_task_kwargs=setup_task_kwargs,
            cleanup_task_kwargs=cleanup_task_kwargs,
        )

    if resource_class is not None:
        return decorate(resource_class)
    return decorate
