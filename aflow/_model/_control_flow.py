"""Control flow: `case` blocks, `switch`/`ifelse` branches, `merge` and `FilterTask`.

Branching works by skipping: a `CompareValue` task raises `~aflow.signals.SKIP` when its input
does not match, and the skip propagates to everything downstream. `merge` joins branches again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from types import TracebackType
from typing import TYPE_CHECKING, Any, final

from .. import signals, triggers
from ._building import current_flow
from ._builtin_tasks import Constant, Parameter, as_task
from ._task import Task, tags

if TYPE_CHECKING:
    from ._flow import Flow

__all__ = ("CompareValue", "FilterTask", "Merge", "case", "ifelse", "merge", "switch")


@final
class CompareValue(Task):
    """Skip (raise SKIP) unless the input equals ``value``; made by `case` and `switch`.

    Args:
        value: The value the input must equal for downstream tasks to run.
        **kwargs: `Task` attributes.
    """

    def __init__(self, value: Any, **kwargs: Any) -> None:
        self.value = value
        kwargs.setdefault("name", f"CompareValue: {value!r}")
        super().__init__(**kwargs)

    async def run(self, value: Any) -> None:
        """Return if ``value`` matches, else raise SKIP.

        Args:
            value: The value to compare.

        Raises:
            SKIP: If ``value`` does not equal the expected value.
        """
        if value != self.value:
            raise signals.SKIP(f"Provided value {value!r} did not match {self.value!r}")


@final
class Merge(Task):
    """Return the first non-None input, by branch position (made by `merge`).

    It runs unless every branch was skipped (then it skips too).

    Args:
        **kwargs: `Task` attributes.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("skip_on_upstream_skip", False)
        kwargs.setdefault("trigger", triggers.not_all_skipped)
        super().__init__(**kwargs)

    async def run(self, **task_results: Any) -> Any:
        """Return the first input that is not None, in branch order ``task_1, task_2, ...``.

        Args:
            **task_results: The branches' results, keyed ``task_<position>``.
        """
        for key in sorted(task_results, key=_branch_position):
            if task_results[key] is not None:
                return task_results[key]
        return None


def _branch_position(key: str) -> tuple[int, str]:
    # order by the number, not the string: task_2 before task_10 (Prefect 1 sorted strings)
    _, _, number = key.rpartition("_")
    return (int(number), key) if number.isdigit() else (-1, key)


def _keep_result(result: Any) -> bool:
    return result is not None and not isinstance(result, BaseException)


@final
class FilterTask(Task):
    """Filter a list, typically the results of a mapped task.

    By default it drops None (skipped children) and exceptions (failed children). It runs
    once every upstream finished, even if some failed or were skipped.

    Args:
        filter_func: Returns True for the items to keep; by default, items that are neither
            None nor an exception.
        log_func: If given, called with the filtered list; its return value is logged at INFO.
        **task_kwargs: `Task` attributes.
    """

    def __init__(
        self,
        filter_func: Callable[[Any], bool] | None = None,
        log_func: Callable[[list[Any]], Any] | None = None,
        **task_kwargs: Any,
    ) -> None:
        self.filter_func: Callable[[Any], bool] = filter_func if filter_func is not None else _keep_result
        self.log_func = log_func
        task_kwargs.setdefault("skip_on_upstream_skip", False)
        task_kwargs.setdefault("trigger", triggers.all_finished)
        super().__init__(**task_kwargs)

    async def run(self, task_result: list[Any] | None) -> list[Any]:
        """Return the items of ``task_result`` that pass ``filter_func``.

        Args:
            task_result: The list to filter; None (a skipped upstream) gives an empty list.
        """
        kept = [item for item in task_result or () if self.filter_func(item)]
        if self.log_func is not None:
            self.logger.info("%s", self.log_func(kept))
        return kept


def block_roots(flow: Flow, block: Mapping[Task, None], exclude: AbstractSet[Task] = frozenset()) -> list[Task]:
    """Tasks of ``block`` (in order, but for ``exclude``) with no upstream inside it."""
    return [
        t for t in block if t not in exclude and not any(e.upstream_task in block for e in flow.graph.edges_into(t))
    ]


def new_tasks(flow: Flow, before: AbstractSet[Task]) -> dict[Task, None]:
    """The tasks added to ``flow`` since ``before`` was taken, in order, but parameters and constants.

    Those two are never gated by a block, nor count as being inside it.
    """
    return {t: None for t in flow.graph.tasks if t not in before and not isinstance(t, (Parameter, Constant))}


def _need_flow(what: str) -> Flow:
    flow = current_flow()
    if flow is None:
        raise ValueError(f"{what} must be used inside `with Flow(...):`")
    return flow


@final
class case:
    """Run the tasks created in the block only if ``task``'s result equals ``value``.

    On exit, one `CompareValue` task is bound to ``task`` and made the upstream of every task of
    the block that has no upstream inside the block (parameters and constants are never gated).
    On a mismatch it raises SKIP, which skips those tasks and everything downstream of them.
    Cases nest.

    Example::

        with Flow("f") as flow:
            cond = check()
            with case(cond, True):
                run_if_true()

    Args:
        task: The task (or value) whose result is compared.
        value: The expected value; it may not be a Task.

    Raises:
        TypeError: If ``value`` is a Task.
    """

    def __init__(self, task: Any, value: Any) -> None:
        if isinstance(value, Task):
            raise TypeError(
                f"case() compares a task's result with a constant: value may not be a Task (got {value!r}); "
                "compare two results in a task and use case(that_task, True)"
            )
        self.task = task
        self.value = value
        self._flow: Flow | None = None
        self._before: set[Task] = set()

    def __enter__(self) -> case:
        self._flow = _need_flow("case()")
        self._before = set(self._flow.graph.tasks)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        flow, self._flow = self._flow, None
        if flow is None or exc_type is not None:
            return
        block = new_tasks(flow, self._before)
        exclude = flow.graph.ancestors(self.task) if isinstance(self.task, Task) else set()
        roots = block_roots(flow, block, exclude)
        if not roots:
            return
        cond = CompareValue(self.value).bind(value=self.task, flow=flow)
        for child in roots:
            flow.add_edge(cond, child)


def switch(condition: Any, cases: Mapping[Any, Any], mapped: bool = False) -> None:
    """Run only the branch whose key equals ``condition``'s result; skip the others.

    Each branch task gets a `CompareValue` upstream (tagged ``switch``); the skip of the other
    branches propagates downstream, so join the branches with `merge`.

    Args:
        condition: The task (or value) whose result selects the branch.
        cases: Value → the task to run when ``condition`` equals that value.
        mapped: Map the comparison (and the branch dependency) over a mapped ``condition``.
    """
    flow = _need_flow("switch()")
    for value, branch in cases.items():
        with tags("switch"):
            match = CompareValue(value).bind(value=condition, mapped=mapped, flow=flow)
        flow.set_dependencies(as_task(branch, flow), upstream_tasks=[match], mapped=mapped)


async def _as_bool(x: Any) -> bool:
    return bool(x)


def ifelse(condition: Any, true_task: Any, false_task: Any, mapped: bool = False) -> None:
    """Run ``true_task`` if ``condition``'s result is truthy, else ``false_task``.

    The other one is skipped, with everything downstream of it. Either task may be None.

    Args:
        condition: The task (or value) whose truth selects the branch.
        true_task: The task to run when the condition is truthy.
        false_task: The task to run when it is falsy.
        mapped: Map over a mapped ``condition``.
    """
    from ._function_task import FunctionTask

    cases = {value: t for value, t in ((True, true_task), (False, false_task)) if t is not None}
    if not cases:
        return
    as_bool = FunctionTask(_as_bool, name="as_bool")
    bool_condition = as_bool(condition, mapped=mapped)
    switch(bool_condition, cases, mapped=mapped)


def merge(*tasks: Any, flow: Flow | None = None, mapped: bool = False, **task_kwargs: Any) -> Task:
    """Join branches: a `Merge` task returning the first non-None result, by argument position.

    It is skipped only if every branch was skipped.

    Args:
        *tasks: The branch tasks, in order of preference.
        flow: The flow to bind in (default: the enclosing one).
        mapped: Merge mapped branches child by child.
        **task_kwargs: `Task` attributes of the Merge task.

    Returns:
        The Merge task.
    """
    branches = {f"task_{i}": t for i, t in enumerate(tasks, start=1)}
    return Merge(**task_kwargs).bind(flow=flow, mapped=mapped, **branches)
