"""``aflow runs ...``: read a run store (list, show, logs, prune); click is imported by the caller.

Every command takes ``--history FILE`` (``--db`` is an alias), default ``$AFLOW_HISTORY``, and
names a run by any unique prefix of its id. Other commands over a run store (``aflow ui``) reuse
`history_option`, `with_store` and `resolve_run`.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._cli_support import BadInput

if TYPE_CHECKING:
    import click

    from ..history import RunStore

__all__ = ("HISTORY_ENV", "add_runs_group", "history_option", "require_store", "resolve_run", "with_store")

HISTORY_ENV = "AFLOW_HISTORY"
FOLLOW_INTERVAL = 0.25  # seconds between reads of a followed run's new log records


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

    from ._cli import _fail, _one_line

    history = require_store(history, "--db PATH or --history PATH")

    async def main() -> list[str]:
        from ..history import RunStore

        async with RunStore(history) as store:
            return await query(store)

    try:
        return asyncio.run(main())
    except BadInput:
        raise
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except ImportError as exc:
        _fail(_one_line(exc), 1)
    except Exception as exc:
        _fail(f"cannot read the run store {history}: {type(exc).__name__}: {_one_line(exc)}", 1)


async def resolve_run(store: RunStore, prefix: str) -> str:
    """The id of the run ``prefix`` names.

    Raises:
        BadInput: No run, or several runs, have ids starting with ``prefix`` (the candidates listed).
    """
    from ..history import AmbiguousRunId, RunNotFound

    try:
        return await store.resolve_run_id(prefix)
    except AmbiguousRunId as exc:
        raise BadInput(f"run id {prefix!r} is ambiguous: it starts {', '.join(exc.candidates)}") from exc
    except RunNotFound as exc:
        raise BadInput(f"no run {prefix!r} in {store.path} (`aflow runs list` shows the runs)") from exc


def add_runs_group(cli: click.Group) -> click.Group:
    """Add the ``runs`` group and its commands to ``cli``; return the group."""
    import click

    @cli.group()
    def runs() -> None:
        """Read the run history (a SQLite run store written by ``aflow run --history``)."""

    with_history = history_option(click)

    @runs.command("list")
    @with_history
    @click.option("--flow", "flow_name", help="Only runs of this flow.")
    @click.option("--state", help="Only runs in this state (Running, Success, Failed...).")
    @click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True)
    def runs_list(history: str | None, flow_name: str | None, state: str | None, limit: int) -> None:
        """List the latest flow runs, newest first."""
        from ._cli_support import format_runs

        async def query(store: RunStore) -> list[str]:
            return format_runs(await store.list_runs(flow_name, limit, state=state))

        for line in with_store(history, query):
            click.echo(line)

    @runs.command("show")
    @click.argument("run_id", metavar="RUN")
    @with_history
    def runs_show(run_id: str, history: str | None) -> None:
        """Show run RUN (an id or its first characters): its tasks' states and attempts."""
        from ._cli_history import format_run_details

        async def query(store: RunStore) -> list[str]:
            full = await resolve_run(store, run_id)
            record = await store.get_run(full)
            if record is None:  # pruned meanwhile
                raise BadInput(f"no run {run_id!r} in {history}")
            return format_run_details(record, await store.task_history(full))

        for line in with_store(history, query):
            click.echo(line)

    @runs.command("logs")
    @click.argument("run_id", metavar="RUN")
    @click.option("--task", "task_name", metavar="NAME", help="Only the records of tasks with this name.")
    @click.option("-f", "--follow", is_flag=True, help="Keep printing new records until the run ends.")
    @with_history
    def runs_logs(run_id: str, task_name: str | None, follow: bool, history: str | None) -> None:
        """Print the task log records of run RUN (an id or its first characters) in time order."""
        from ._cli_history import format_log

        colour = sys.stdout.isatty()

        async def query(store: RunStore) -> list[str]:
            import asyncio

            full = await resolve_run(store, run_id)
            after: int | None = None
            printed = 0
            finished = not follow
            while True:
                for record in await store.task_logs(full, task_name, after_seq=after):
                    click.echo(format_log(record, colour=colour))
                    after = record.seq
                    printed += 1
                if finished:
                    break
                run = await store.get_run(full)
                finished = run is None or run.state != "Running"  # then one more read: the last records
                if not finished:
                    await asyncio.sleep(FOLLOW_INTERVAL)
            if not printed:
                return ["No log records" + (f" of task {task_name!r}." if task_name else ".")]
            return []

        for line in with_store(history, query):
            click.echo(line)

    @runs.command("prune")
    @click.option(
        "--older-than",
        "days",
        type=click.FloatRange(min=0),
        required=True,
        help="Delete the runs that started more than this many days ago (0: every run).",
    )
    @click.option("--flow", "flow_name", help="Only runs of this flow.")
    @with_history
    def runs_prune(days: float, flow_name: str | None, history: str | None) -> None:
        """Delete old flow runs with their task states and logs from the run store."""
        from datetime import UTC, datetime, timedelta

        before = datetime.now(UTC) - timedelta(days=days)

        async def prune(store: RunStore) -> list[str]:
            deleted = await store.prune_runs(before, flow_name=flow_name)
            return [f"Deleted {deleted} run{'' if deleted == 1 else 's'}."]

        for line in with_store(history, prune):
            click.echo(line)

    return runs
