"""Errors raised by aflow itself (not by task code).

Every error derives from one root, and where it fits, from the builtin callers already catch::

    AflowError
     ├── FlowValidationError (ValueError)   a flow that cannot run: cycle, bad edge key, ...
     │    └── ParameterError                unknown or missing flow parameters
     ├── TaskDefinitionError (TypeError)    a Task subclass or call that breaks the rules
     └── AflowInternalError (RuntimeError)  a bug in aflow: please report it

Signals (`aflow.signals`) are not errors: they derive from `BaseException` and set a task's state.
"""

from __future__ import annotations

__all__ = (
    "AflowError",
    "AflowInternalError",
    "FlowValidationError",
    "ParameterError",
    "TaskDefinitionError",
)


class AflowError(Exception):
    """Root of every error aflow raises."""


class FlowValidationError(AflowError, ValueError):
    """The flow's graph is invalid (a cycle, an unknown argument, a duplicate edge key...)."""


class ParameterError(FlowValidationError):
    """Flow parameters given to a run are unknown, or required ones are missing."""


class TaskDefinitionError(AflowError, TypeError):
    """A Task subclass, a `@task` function or a task call breaks the rules of `Task`."""


class AflowInternalError(AflowError, RuntimeError):
    """An invariant of aflow's engine broke: this is a bug in aflow."""
