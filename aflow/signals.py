"""Signals: exceptions that a task raises to set its own state.

They derive from `BaseException`, so a task's ``except Exception`` does not swallow them::

    AflowSignal (BaseException)
     ├── FAIL         → Failed (retries apply)
     │    └── TRIGGERFAIL → TriggerFailed (never retried)
     ├── SUCCESS      → Success
     ├── SKIP         → Skipped (propagates downstream)
     ├── RETRY        → Retrying (always retries, whatever ``max_retries`` says)
     ├── LOOP         → Looped (the task runs again with ``task_loop_result`` in context)
     └── ENDRUN       → the state it carries, as is
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar

from . import states

__all__ = ("ENDRUN", "FAIL", "LOOP", "RETRY", "SKIP", "SUCCESS", "TRIGGERFAIL", "AflowSignal")


class AflowSignal(BaseException):
    """Base of all signals. ``state`` is the state the raising task ends in.

    Args:
        message: The state's message.
        result: The state's result. When None, the failure-like signals (`FAIL`,
            `TRIGGERFAIL`, `RETRY`) carry the signal itself, so a failed state's result is an
            exception; `SUCCESS`, `SKIP` and `LOOP` carry None (Prefect 1: the signal, see
            docs/prefect1.md).
    """

    state_cls: ClassVar[type[states.State]] = states.State
    #: Failure-like signals carry themselves as the state's result when none is given.
    result_is_self: ClassVar[bool] = False

    def __init__(self, message: str | None = None, *, result: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if result is None and self.result_is_self:
            result = self
        self.state: states.State = self.state_cls(message, result)


class FAIL(AflowSignal):
    """Fail the task (retries apply)."""

    state_cls = states.Failed
    result_is_self = True


class TRIGGERFAIL(FAIL):
    """The task's trigger failed."""

    state_cls = states.TriggerFailed


class SUCCESS(AflowSignal):
    """End the task successfully with ``result`` (None if not given)."""

    state_cls = states.Success


class SKIP(AflowSignal):
    """Skip the task; downstream tasks skip too unless ``skip_on_upstream_skip=False``.

    The Skipped state's result is ``result``, None if not given, like the result of a task
    skipped because its upstream was.
    """

    state_cls = states.Skipped


class RETRY(AflowSignal):
    """Retry the task now, or after ``delay`` seconds, or at ``start_time``."""

    state_cls = states.Retrying
    result_is_self = True

    def __init__(
        self,
        message: str | None = None,
        *,
        result: Any = None,
        delay: float | timedelta | None = None,
        start_time: datetime | None = None,
    ) -> None:
        super().__init__(message, result=result)
        self.delay = delay.total_seconds() if isinstance(delay, timedelta) else delay
        self.start_time = start_time


class LOOP(AflowSignal):
    """Run the task again; ``result`` is available as ``context.task_loop_result``."""

    state_cls = states.Looped


class ENDRUN(AflowSignal):
    """Stop the task run in exactly the given state (no retry, no handlers of its own)."""

    def __init__(self, state: states.State) -> None:
        BaseException.__init__(self, state.message)
        self.message = state.message
        self.state = state
