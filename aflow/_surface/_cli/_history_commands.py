"""``aflow runs ...``: read a run store (list, show, logs, prune); click is imported when built.

Every command takes ``--history FILE`` (``--db`` is an alias), default ``$AFLOW_HISTORY``, and
names a run by any unique prefix of its id (see ``_run_store``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ._errors import BadInput
from ._run_store import history_option, resolve_run, with_store

if TYPE_CHECKING:
    import click

    from ...history import RunStore

__all__ = ("add_runs_group",)

FOLLOW_INTERVAL = 0.25  # seconds between reads of a followed run's new log records


def add_runs_group(cli: click.Group) -> click.Group:
    """Add the ``runs`` group and its commands to ``cli``; return the group."""

    @cli.group()
    def runs() -> None:
        """Read the run history (a SQLite run store written by ``aflow run --history``)."""

    for command in (_list_command(), _show_command(), _logs_command(), _prune_command()):
        runs.add_command(command)
    return runs


def _list_command() -> click.Command:
    import click

    @click.command("list")
    @history_option(click)
    @click.option("--flow", "flow_name", help="Only runs of this flow.")
    @click.option("--state", help="Only runs in this state (Running, Success, Failed...).")
    @click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True)
    def runs_list(history: str | None, flow_name: str | None, state: str | None, limit: int) -> None:
        """List the latest flow runs, newest first."""
        from ._history_output import format_runs

        async def query(store: RunStore) -> list[str]:
            return format_runs(await store.list_runs(flow_name, limit, state=state))

        for line in with_store(history, query):
            click.echo(line)

    return runs_list


def _show_command() -> click.Command:
    import click

    @click.command("show")
    @click.argument("run_id", metavar="RUN")
    @history_option(click)
    def runs_show(run_id: str, history: str | None) -> None:
        """Show run RUN (an id or its first characters): its tasks' states and attempts."""
        from ._history_output import format_run_details

        async def query(store: RunStore) -> list[str]:
            full = await resolve_run(store, run_id)
            record = await store.get_run(full)
            if record is None:  # pruned meanwhile
                raise BadInput(f"no run {run_id!r} in {history}")
            return format_run_details(record, await store.task_history(full))

        for line in with_store(history, query):
            click.echo(line)

    return runs_show


def _logs_command() -> click.Command:
    import click

    @click.command("logs")
    @click.argument("run_id", metavar="RUN")
    @click.option("--task", "task_name", metavar="NAME", help="Only the records of tasks with this name.")
    @click.option("-f", "--follow", is_flag=True, help="Keep printing new records until the run ends.")
    @history_option(click)
    def runs_logs(run_id: str, task_name: str | None, follow: bool, history: str | None) -> None:
        """Print the task log records of run RUN (an id or its first characters) in time order."""
        colour = sys.stdout.isatty()

        async def query(store: RunStore) -> list[str]:
            printed = await _print_logs(store, await resolve_run(store, run_id), task_name, follow, colour)
            if not printed:
                return ["No log records" + (f" of task {task_name!r}." if task_name else ".")]
            return []

        for line in with_store(history, query):
            click.echo(line)

    return runs_logs


async def _print_logs(store: RunStore, run_id: str, task_name: str | None, follow: bool, colour: bool) -> int:
    """Print run ``run_id``'s log records as they are read; following, until the run ends.

    Returns:
        How many records were printed.
    """
    import asyncio

    import click

    from ._history_output import format_log

    after: int | None = None
    printed = 0
    finished = not follow
    while True:
        for record in await store.task_logs(run_id, task_name, after_seq=after):
            click.echo(format_log(record, colour=colour))
            after = record.seq
            printed += 1
        if finished:
            return printed
        run = await store.get_run(run_id)
        finished = run is None or run.state != "Running"  # then one more read: the last records
        if not finished:
            await asyncio.sleep(FOLLOW_INTERVAL)


def _prune_command() -> click.Command:
    import click

    @click.command("prune")
    @click.option(
        "--older-than",
        "days",
        type=click.FloatRange(min=0),
        required=True,
        help="Delete the runs that started more than this many days ago (0: every run).",
    )
    @click.option("--flow", "flow_name", help="Only runs of this flow.")
    @history_option(click)
    def runs_prune(days: float, flow_name: str | None, history: str | None) -> None:
        """Delete old flow runs with their task states and logs from the run store."""
        from datetime import UTC, datetime, timedelta

        before = datetime.now(UTC) - timedelta(days=days)

        async def prune(store: RunStore) -> list[str]:
            deleted = await store.prune_runs(before, flow_name=flow_name)
            return [f"Deleted {deleted} run{'' if deleted == 1 else 's'}."]

        for line in with_store(history, prune):
            click.echo(line)

    return runs_prune
