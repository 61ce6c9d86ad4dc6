"""The run store a command reads: the ``--history`` option, opening the store, naming a run.

``aflow runs ...`` and ``aflow ui`` take ``--history FILE`` (``--db`` is an alias), default
``$AFLOW_HISTORY``, and name a run by any unique prefix of its id. click is imported by the caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._errors import BadInput, fail, one_line

if TYPE_CHECKING:
    from ...history import RunStore

__all__ = ("HISTORY_ENV", "history_option", "require_store", "resolve_run", "with_store")

HISTORY_ENV = "AFLOW_HISTORY"


def history_option(click: Any) -> Callable[[Any], Any]:
    """The ``--history FILE`` option (alias ``--db``, default ``$AFLOW_HISTORY``), as ``history``."""
    option: Callable[[Any], Any] = click.option(
        "--history",
        "--db",
        "history",
        type=click.Path(dir_okay=False),
        envvar=HISTORY_ENV,
        metavar="FILE",
        help=f"The run store's file (default: ${HISTORY_ENV}); --db is an alias.",
    )
    return option


def require_store(history: str | None, how: str) -> str:
    """The run store's path, checked to be a file.

    Args:
        history: The ``--history`` value (None when neither given nor in ``$AFLOW_HISTORY``).
        how: How to pass one, for the message (``"--history PATH"``).

    Raises:
        BadInput: No store was given, or there is no such file.
    """
    from pathlib import Path

    if history is None:
        raise BadInput(f"no run store: pass {how} (or set ${HISTORY_ENV})")
    if not Path(history).is_file():
        raise BadInput(f"no run store at {history}: run a flow with --history {history} first")
    return history


def with_store(history: str | None, query: Callable[[RunStore], Awaitable[list[str]]]) -> list[str]:
    """Open the run store ``history``, run ``query`` on it in a new event loop, return its lines.

    Raises:
        BadInput: No store was given, or there is no such file.
        SystemExit: The store cannot be read (code 1, one line on stderr).
    """
    import asyncio

    history = require_store(history, "--db PATH or --history PATH")

    async def main() -> list[str]:
        from ...history import RunStore

        async with RunStore(history) as store:
            return await query(store)

    try:
        return asyncio.run(main())
    except BadInput:
        raise
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except ImportError as exc:
        fail(one_line(exc), 1)
    except Exception as exc:
        fail(f"cannot read the run store {history}: {type(exc).__name__}: {one_line(exc)}", 1)


async def resolve_run(store: RunStore, prefix: str) -> str:
    """The id of the run ``prefix`` names.

    Raises:
        BadInput: No run, or several runs, have ids starting with ``prefix`` (the candidates listed).
    """
    from ...history import AmbiguousRunId, RunNotFound

    try:
        return await store.resolve_run_id(prefix)
    except AmbiguousRunId as exc:
        raise BadInput(f"run id {prefix!r} is ambiguous: it starts {', '.join(exc.candidates)}") from exc
    except RunNotFound as exc:
        raise BadInput(f"no run {prefix!r} in {store.path} (`aflow runs list` shows the runs)") from exc
