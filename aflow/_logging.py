"""Task loggers that stamp run ids on records, and ``log_stdout`` routing of ``print``."""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

from ._run_context import flow_run_var, task_run_var
from .secrets import RedactSecrets

__all__ = ("RunLoggerAdapter", "engine_logger", "get_logger", "routed_stdout")


class RunLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger whose records carry the run context.

    Records get ``flow_name``, ``flow_run_id``, ``task_name``, ``task_slug``, ``task_run_id``
    and ``map_index`` (None outside a run).
    """

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        """Add the run context to the record's ``extra``."""
        frun = flow_run_var.get()
        trun = task_run_var.get()
        extra = {
            "flow_name": frun.flow_name if frun else None,
            "flow_run_id": frun.flow_run_id if frun else None,
            "task_name": trun.task.name if trun else None,
            "task_slug": trun.task.slug if trun else None,
            "task_run_id": trun.task_run_id if trun else None,
            "map_index": trun.map_index if trun else None,
        }
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


def get_logger(name: str) -> RunLoggerAdapter:
    """Return the run-aware logger ``aflow.<name>`` (secret values in its records are redacted)."""
    return RunLoggerAdapter(engine_logger(name), {})


def engine_logger(name: str) -> logging.Logger:
    """Return the plain logger ``aflow.<name>``, redacting secret values in its records."""
    logger = logging.getLogger(f"aflow.{name}")
    logger.addFilter(_REDACT)  # a no-op while no secret is registered (see aflow.secrets); set once
    return logger


_REDACT = RedactSecrets()


class _StdoutRouter(io.TextIOBase):
    """Stands in for ``sys.stdout``: lines printed by a ``log_stdout`` task go to its logger."""

    def __init__(self, real: TextIO) -> None:
        self.real = real

    def write(self, s: str) -> int:
        trun = task_run_var.get()
        if trun is None or not trun.task.log_stdout:
            return self.real.write(s)
        text = trun.stdout_tail + s
        *lines, trun.stdout_tail = text.split("\n")
        for line in lines:
            trun.task.logger.info(line)
        return len(s)

    def flush(self) -> None:
        self.real.flush()


_lock = threading.Lock()  # guards the swap of sys.stdout, never taken on a hot path
_users = 0


@contextmanager
def routed_stdout() -> Iterator[None]:
    """Route ``print`` of ``log_stdout`` tasks to their loggers while the block runs.

    Unlike a process-wide ``redirect_stdout``, output of other tasks (and of the rest of the
    program) keeps going to the real stdout, because routing follows the run context.
    """
    global _users
    with _lock:
        if _users == 0:
            sys.stdout = _StdoutRouter(sys.stdout)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and isinstance(sys.stdout, _StdoutRouter):
                sys.stdout = sys.stdout.real
