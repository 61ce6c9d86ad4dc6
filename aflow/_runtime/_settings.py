"""`RunSettings`: what one flow run runs with.

Built in one place from the flow's defaults and the run's arguments, and checked there: a bad
value fails before anything starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ._clock import SYSTEM_CLOCK, Clock
from ._logging import level_number

if TYPE_CHECKING:
    from ..executors import Executor
    from ..history import RunStore

__all__ = ("DEFAULT_CANCEL_GRACE", "DEFAULT_WARN_BLOCKING", "RunSettings", "check_grace", "check_threshold")

DEFAULT_CANCEL_GRACE = 10.0  # seconds a cancelled body gets to end before the run gives up on it
DEFAULT_WARN_BLOCKING = 0.25  # seconds of a blocked loop worth a warning


class FlowDefaults(Protocol):
    """The run defaults a flow carries (`aflow.Flow` has them)."""

    max_concurrency: int | None
    concurrency: dict[str, int]
    history: RunStore | str | os.PathLike[str] | None


def check_grace(value: Any) -> float:
    """``value`` as a grace period in seconds, or a ValueError saying what is wrong."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"cancel_grace must be a non-negative number of seconds, got {value!r}")
    return float(value)


def check_threshold(value: Any) -> float | None:
    """``value`` as a threshold in seconds, None when off; a ValueError saying what is wrong."""
    if value is None or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"warn_blocking must be a number of seconds (or None to turn the check off), got {value!r}")
    return float(value) or None


@dataclass(frozen=True, slots=True)
class RunSettings:
    """The settings of one flow run (see `aflow.Flow.run` for what each means)."""

    max_concurrency: int | None = None
    concurrency: Mapping[str, int] = field(default_factory=dict)
    clock: Clock = SYSTEM_CLOCK
    flow_run_name: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    history: RunStore | str | os.PathLike[str] | None = None
    executor: Executor | None = None
    cancel_grace: float = DEFAULT_CANCEL_GRACE
    warn_blocking: float | None = DEFAULT_WARN_BLOCKING
    history_log_level: int = logging.INFO

    @classmethod
    def build(
        cls,
        flow: FlowDefaults,
        *,
        max_concurrency: int | None = None,
        concurrency: Mapping[str, int] | None = None,
        clock: Clock | None = None,
        flow_run_name: str | None = None,
        context: Mapping[str, Any] | None = None,
        history: RunStore | str | os.PathLike[str] | None = None,
        executor: Executor | None = None,
        cancel_grace: float | None = None,
        warn_blocking: float | None = DEFAULT_WARN_BLOCKING,
        history_log_level: int | str | None = None,
    ) -> RunSettings:
        """The flow's defaults overridden by the run's arguments, each checked.

        Raises:
            ValueError: Naming the argument and what it takes.
        """
        if max_concurrency is None:
            max_concurrency = flow.max_concurrency
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        limits = {**flow.concurrency, **(concurrency or {})}
        bad = {tag: n for tag, n in limits.items() if not isinstance(n, int) or n < 1}
        if bad:
            raise ValueError(f"concurrency limits must be positive ints, got {bad}")
        return cls(
            max_concurrency=max_concurrency,
            concurrency=limits,
            clock=clock or SYSTEM_CLOCK,
            flow_run_name=flow_run_name,
            context=dict(context or {}),
            history=history if history is not None else flow.history,
            executor=executor,
            cancel_grace=DEFAULT_CANCEL_GRACE if cancel_grace is None else check_grace(cancel_grace),
            warn_blocking=check_threshold(warn_blocking),
            history_log_level=(
                logging.INFO if history_log_level is None else level_number(history_log_level, "history_log_level")
            ),
        )
