"""Task loggers that stamp run ids on records, and ``log_stdout`` routing of ``print``."""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from .. import secrets
from ..secrets import RedactSecrets
from ._run_context import flow_run_var, task_run_var

if TYPE_CHECKING:
    from .._persist._history._batches import Recorder
    from ._run_context import TaskRunContext

__all__ = ("RunLoggerAdapter", "engine_logger", "get_logger", "level_number", "routed_stdout")


def level_number(value: int | str, what: str) -> int:
    """A logging level given as a number or a name (``"info"``, ``"WARNING"``...), as a number.

    Raises:
        ValueError: ``value`` is a negative number or an unknown name.
        TypeError: ``value`` is neither a number nor a name.
    """
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a logging level name or number, not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{what} must be a non-negative logging level, got {value!r}")
        return value
    if isinstance(value, str):
        number = logging.getLevelName(value.strip().upper())
        if isinstance(number, int):
            return number
        raise ValueError(f"{what}={value!r} is not a logging level: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    raise TypeError(f"{what} must be a logging level name or number, not {value!r}")


def _keep(recorder: Recorder, trun: TaskRunContext, level: int, msg: Any, args: Any, exc_info: Any) -> None:
    """Append a task log record to the run store's recorder (the message formatted, secrets redacted)."""
    if args and len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        args = args[0]  # log("%(n)s", {"n": 1}), as logging.LogRecord does
    try:
        message = str(msg) % args if args else str(msg)
    except Exception:  # the handler would report it; keep what was given
        message = f"{msg!s} {args!r}"
    if exc_info:
        if isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        elif not isinstance(exc_info, tuple):
            exc_info = sys.exc_info()
        if exc_info[0] is not None:
            message = f"{message}\n{_FORMATTER.formatException(exc_info)}"
    message = secrets.redact(message)
    task = trun.task
    recorder.logs.append(
        (
            recorder.run_id,
            recorder.timestamp(),
            level,
            task.slug or task.name,
            task.name,
            trun.map_index,
            trun.run_count,
            message,
        )
    )


_FORMATTER = logging.Formatter()


class RunLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger whose records carry the run context.

    Records get ``flow_name``, ``flow_run_id``, ``task_name``, ``task_slug``, ``task_run_id``,
    ``map_index`` and ``task_run_count`` (the attempt; None outside a run).

    Inside a task run of a flow run with a run store, records at or above the run's
    ``history_log_level`` (default INFO; a task's own wins) are also kept in the store,
    whatever the logger's level and handlers: the store does not depend on the program's
    logging setup.
    """

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        """Log ``msg % args`` at ``level``, and keep it in the run store (see the class)."""
        trun = task_run_var.get()
        if trun is not None:
            frun = trun.flow_run
            recorder = frun.recorder if frun is not None else None
            if recorder is not None:
                threshold = trun.task.history_log_level
                if level >= (recorder.log_level if threshold is None else threshold):
                    _keep(recorder, trun, level, msg, args, kwargs.get("exc_info"))
        if self.logger.isEnabledFor(level):
            msg, kw = self.process(msg, kwargs)
            kw["stacklevel"] = kw.get("stacklevel", 1) + 1  # the caller, not this method
            self.logger.log(level, msg, *args, **kw)

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
            "task_run_count": trun.run_count if trun else None,
        }
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


def get_logger(name: str) -> RunLoggerAdapter:
    """Return the run-aware logger ``aflow.<name>`` (secret values in its records are redacted)."""
    adapter = _adapters.get(name)
    if adapter is None:  # one per name: each copy of a task (one per call) shares it
        adapter = _adapters[name] = RunLoggerAdapter(engine_logger(name), {})
    return adapter


_adapters: dict[str, RunLoggerAdapter] = {}  # adapters hold nothing but their logger


def engine_logger(name: str) -> logging.Logger:
    """Return the plain logger ``aflow.<name>``, redacting secret values in its records."""
    logger = logging.getLogger(f"aflow.{name}")
    logger.addFilter(_REDACT)  # a no-op while no secret is registered (see aflow.secrets); set once
    return logger


_REDACT = RedactSecrets()


class _StdoutRouter(io.TextIOBase):
    """Stands in for ``sys.stdout``: lines printed by a ``log_stdout`` task go to its logger.

    What a log handler writes to stdout while a line is being logged goes to the real stdout (a
    handler on ``sys.stdout`` would otherwise log its own output again, forever); rich finds
    the real stream through ``rich_proxied_file``, as it does behind its own proxies.
    """

    def __init__(self, real: TextIO) -> None:
        self.real = real

    @property
    def rich_proxied_file(self) -> TextIO:
        """The stream under this one (and under a rich proxy), for a rich console writing to stdout."""
        real: TextIO = getattr(self.real, "rich_proxied_file", self.real)
        return real

    def write(self, s: str) -> int:
        trun = task_run_var.get()
        if trun is None or not trun.task.log_stdout or getattr(_routing, "active", False):
            return self.real.write(s)
        text = trun.stdout_tail + s
        *lines, trun.stdout_tail = text.split("\n")
        _routing.active = True
        try:
            for line in lines:
                trun.task.logger.info(line)
        finally:
            _routing.active = False
        return len(s)

    def flush(self) -> None:
        self.real.flush()


_routing = threading.local()  # .active: this thread is logging a routed line
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
