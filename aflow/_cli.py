"""The ``aflow`` command (``pip install aflow[cli]``): run and draw flows, read the run history.

::

    aflow run etl.py:flow --param day=2024-01-01 --param limits='{"n": 3}'
    aflow visualize etl.py:flow --format mermaid
    aflow runs list --db runs.db
    aflow runs show RUN_ID --db runs.db

Exit codes: 0 when the flow run succeeds, 1 when it fails (or something goes wrong in the
environment), 2 for bad input (a missing file, no such flow, a bad or unknown parameter), each
reported in one line without a traceback. Only this module imports click, and only when the
command runs.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import click

__all__ = ("main",)

_HISTORY_ENV = "AFLOW_HISTORY"


def _fail(message: str, code: int = 2) -> NoReturn:
    sys.stderr.write(f"aflow: error: {message}\n")
    raise SystemExit(code)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _cli() -> click.Group:
    import click

    from ._cli_support import BadInput

    class _Group(click.Group):
        """Turns bad input into one line on stderr and exit code 2."""

        def invoke(self, ctx: click.Context) -> Any:
            try:
                return super().invoke(ctx)
            except BadInput as exc:
                _fail(str(exc))

    @click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="aflow", prog_name="aflow")
    def cli() -> None:
        """Run aflow flows, draw them and read their run history."""

    @cli.command()
    @click.argument("target")
    @click.option(
        "-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter value (JSON, else a string)."
    )
    @click.option(
        "--history",
        type=click.Path(dir_okay=False),
        envvar=_HISTORY_ENV,
        help=f"Record the run in this SQLite run store (default: ${_HISTORY_ENV}).",
    )
    @click.option("--progress/--no-progress", default=None, help="Live progress display (default: on a terminal).")
    def run(target: str, params: tuple[str, ...], history: str | None, progress: bool | None) -> None:
        """Run the flow TARGET (path/to/file.py:flow or package.module:flow) and summarise it."""
        from ._cli_support import load_flow, parse_params

        values = parse_params(params)
        flow = load_flow(target)
        if progress is None:
            progress = sys.stdout.isatty()
        state, tracker = _run(flow, values, history, progress)
        from ._cli_support import format_summary

        for line in format_summary(flow, state, tracker):
            click.echo(_colour(click, line))
        sys.exit(0 if state.is_successful() else 1)

    @cli.command()
    @click.argument("target")
    @click.option("-f", "--format", "fmt", type=click.Choice(["dot", "mermaid"]), default="dot", show_default=True)
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False),
        help="Write here instead of stdout: .dot/.gv/.mmd get text, other suffixes (.png, .svg) an image.",
    )
    def visualize(target: str, fmt: str, output: str | None) -> None:
        """Print the graph of the flow TARGET as Graphviz DOT or Mermaid text."""
        from ._cli_support import load_flow

        flow = load_flow(target)
        try:
            graph = flow.visualize(format="mermaid" if fmt == "mermaid" else "dot", filename=output)
        except ValueError as exc:
            _fail(_one_line(exc))
        except (ImportError, RuntimeError, OSError) as exc:
            _fail(_one_line(exc), 1)
        if output is None:
            click.echo(graph, nl=False)
        else:
            click.echo(f"Wrote {output}", err=True)

    @cli.group()
    def runs() -> None:
        """Read the run history (a SQLite run store written by ``--history``)."""

    db_option = click.option(
        "--db",
        type=click.Path(dir_okay=False),
        envvar=_HISTORY_ENV,
        help=f"The run store's file (default: ${_HISTORY_ENV}).",
    )

    @runs.command("list")
    @db_option
    @click.option("--flow", "flow_name", help="Only runs of this flow.")
    @click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True)
    def runs_list(db: str | None, flow_name: str | None, limit: int) -> None:
        """List the latest flow runs, newest first."""
        from ._cli_support import format_runs

        async def query(store: Any) -> list[str]:
            return format_runs(await store.list_runs(flow_name, limit))

        for line in _with_store(db, query):
            click.echo(line)

    @runs.command("show")
    @click.argument("run_id")
    @db_option
    def runs_show(run_id: str, db: str | None) -> None:
        """Show one flow run and the last state of each of its tasks."""
        from ._cli_support import format_run

        async def query(store: Any) -> list[str]:
            record = await store.get_run(run_id)
            if record is None:
                raise BadInput(f"no run {run_id!r} in {db}")
            return format_run(record, await store.latest_task_states(run_id))

        for line in _with_store(db, query):
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
    @db_option
    def runs_prune(days: float, flow_name: str | None, db: str | None) -> None:
        """Delete old flow runs and their task states from the run store."""
        from datetime import UTC, datetime, timedelta

        before = datetime.now(UTC) - timedelta(days=days)

        async def prune(store: Any) -> list[str]:
            deleted = await store.prune_runs(before, flow_name=flow_name)
            return [f"Deleted {deleted} run{'' if deleted == 1 else 's'}."]

        for line in _with_store(db, prune):
            click.echo(line)

    from ._ui._command import ui_command

    cli.add_command(ui_command())
    return cli


def _colour(click: Any, line: str) -> str:
    """Colour state names in a summary line (click drops the colour when not on a terminal)."""
    for word, colour in (("TriggerFailed", "red"), ("TimedOut", "red"), ("Failed", "red"), ("Success", "green")):
        if word in line:
            return line.replace(word, click.style(word, fg=colour), 1)
    return line


def _run(flow: Any, values: dict[str, Any], history: str | None, progress: bool) -> tuple[Any, Any]:
    """Run ``flow`` in a new event loop, with a tracker (durations) and maybe a live display."""
    import asyncio

    from ._cli_support import BadInput
    from ._run_tracker import RunTracker
    from .exceptions import FlowValidationError

    async def main() -> Any:
        try:
            runner = flow._runner(values, {}, max_concurrency=None, concurrency=None, history=history)
        except FlowValidationError as exc:  # ParameterError included
            raise BadInput(_one_line(exc)) from exc
        runner.observer = tracker
        tracker.restart()  # the engine's import is not part of the run
        if progress:
            try:
                from ._progress import run_with_progress
            except ImportError:
                pass
            else:
                return await run_with_progress(runner, True, tracker)
        return await runner.run()

    tracker = RunTracker(flow)
    try:
        state = asyncio.run(main())
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BadInput:
        raise
    except Exception as exc:  # the flow could not run at all (its own failures are states)
        _fail(f"flow run crashed: {type(exc).__name__}: {_one_line(exc)}", 1)
    tracker.finish()
    return state, tracker


def _with_store(db: str | None, query: Any) -> list[str]:
    import asyncio
    from pathlib import Path

    from ._cli_support import BadInput

    if db is None:
        raise BadInput(f"no run store: pass --db PATH (or set ${_HISTORY_ENV})")
    if not Path(db).is_file():
        raise BadInput(f"no run store at {db}")

    async def main() -> list[str]:
        from .history import RunStore

        async with RunStore(db) as store:
            lines: list[str] = await query(store)
            return lines

    try:
        return asyncio.run(main())
    except BadInput:
        raise
    except ImportError as exc:
        _fail(_one_line(exc), 1)
    except Exception as exc:
        _fail(f"cannot read the run store {db}: {type(exc).__name__}: {_one_line(exc)}", 1)


def main(argv: list[str] | None = None) -> None:
    """The ``aflow`` console script."""
    try:
        cli = _cli()
    except ImportError as exc:
        _fail(f"the aflow command needs click: pip install 'aflow[cli]' ({exc})", 1)
    cli.main(args=argv, prog_name="aflow")


if __name__ == "__main__":  # python -m aflow._cli
    main()
