"""Errors raised by aflow itself (not by task code).

Every error derives from one root, and where it fits, from the builtin callers already catch::

    AflowError
     ├── FlowValidationError (ValueError)   a flow that cannot run: cycle, bad edge key, ...
     │    └── ParameterError                unknown or missing flow parameters
     ├── SecretNotFound (KeyError)          a secret in neither the run context nor the environment
     ├── TaskDefinitionError (TypeError)    a Task subclass or call that breaks the rules
     ├── NotAwaitedError (AttributeError)   ``flow.run()`` used as a state without ``await``
     └── AflowInternalError (RuntimeError)  a bug in aflow: please report it

Signals (`aflow.signals`) are not errors: they derive from `BaseException` and set a task's state.
"""

from __future__ import annotations

__all__ = (
    "AflowError",
    "AflowInternalError",
    "FlowValidationError",
    "NotAwaitedError",
    "ParameterError",
    "SecretNotFound",
    "TaskDefinitionError",
)


class AflowError(Exception):
    """Root of every error aflow raises."""


class FlowValidationError(AflowError, ValueError):
    """The flow's graph is invalid (a cycle, an unknown argument, a duplicate edge key...)."""


class ParameterError(FlowValidationError):
    """Flow parameters given to a run are unknown, or required ones are missing."""


class SecretNotFound(AflowError, KeyError):
    """A secret (`aflow.secrets.Secret`) is in neither the run context nor the environment."""

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class TaskDefinitionError(AflowError, TypeError):
    """A Task subclass, a `@task` function or a task call breaks the rules of `Task`."""


class NotAwaitedError(AflowError, AttributeError):
    """``flow.run()`` was used as its result without ``await``: ``state = flow.run()`` in a script.

    ``flow.run()`` is a coroutine: ``await flow.run()`` in async code, ``flow.run_sync()`` in a script.
    """


class AflowInternalError(AflowError, RuntimeError):
    """An invariant of aflow's engine broke: this is a bug in aflow."""
