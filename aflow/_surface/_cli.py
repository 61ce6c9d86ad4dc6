"""The ``aflow`` command (``pip install aflow-engine[cli]``): run and draw flows, read the run history.

::

    aflow run etl.py:flow --param day=2024-01-01 --param limits='{"n": 3}'
    aflow visualize etl.py:flow --format mermaid
    aflow runs list --history runs.db
    aflow runs show 3f2a --history runs.db
    aflow runs logs 3f2a --follow

Exit codes: 0 when the flow run succeeds, 1 when it fails (or something goes wrong in the
environment), 2 for bad input (a missing file, no such flow, a bad or unknown parameter), each
reported in one line without a traceback. Only the ``_cli`` modules import click, and only when
the command runs: this one holds the group, ``run`` and ``visualize``; `aflow._surface._cli_runs` the
``runs`` group. A new command is a function decorated in `_cli` (``@cli.command()``), or a module
with an ``add_..._group(cli)`` called there.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import click

__all__ = ("main",)


def _fail(message: str, code: int = 2) -> NoReturn:
    sys.stderr.write(f"aflow: error: {message}\n")
    raise SystemExit(code)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _cli() -> click.Group:
    import click

    from .. import __version__
    from ._cli_output import LEVELS
    from ._cli_runs import HISTORY_ENV
    from ._cli_support import BadInput

    class _Group(click.Group):
        """Turns bad input into one line on stderr and exit code 2."""

        def invoke(self, ctx: click.Context) -> Any:
            try:
                return super().invoke(ctx)
            except BadInput as exc:
                _fail(str(exc))

    @click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="aflow")  # the distribution is aflow-engine
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
        envvar=HISTORY_ENV,
        help=f"Record the run in this SQLite run store (default: ${HISTORY_ENV}).",
    )
    @click.option("--progress/--no-progress", default=None, help="Live progress display (default: on a terminal).")
    @click.option(
        "--log-level",
        type=click.Choice(LEVELS, case_sensitive=False),
        default="INFO",
        show_default=True,
        help="Show the tasks' log records at this level and up, as they come (on stderr).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON document instead.")
    def run(
        target: str, params: tuple[str, ...], history: str | None, progress: bool | None, log_level: str, as_json: bool
    ) -> None:
        """Run the flow TARGET (path/to/file.py:flow or package.module:flow) and summarise it.

        The summary lists each task's state, attempts and duration, the failures, and the
        flow's result (its reference tasks' values).
        """
        import logging

        from ._cli_output import result_lines, run_document, setup_run_logging
        from ._cli_support import format_summary, load_flow, parse_params

        values = parse_params(params)
        flow = load_flow(target)
        if progress is None:
            progress = sys.stdout.isatty() and not as_json
        level = logging.getLevelName(log_level.upper())
        setup_run_logging(level)
        state, tracker, run_id = _run(flow, values, history, progress, level)
        if as_json:
            click.echo(run_document(flow, state, tracker, run_id))
        else:
            for line in [*format_summary(flow, state, tracker), *result_lines(flow, state)]:
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

    from ._cli_runs import add_runs_group

    add_runs_group(cli)

    from ._ui._command import ui_command

    cli.add_command(ui_command())
    return cli


def _colour(click: Any, line: str) -> str:
    """Colour state names in a summary line (click drops the colour when not on a terminal)."""
    for word, colour in (("TriggerFailed", "red"), ("TimedOut", "red"), ("Failed", "red"), ("Success", "green")):
        if word in line:
            return line.replace(word, click.style(word, fg=colour), 1)
    return line


def _run(
    flow: Any, values: dict[str, Any], history: str | None, progress: bool, log_level: int = 20
) -> tuple[Any, Any, str | None]:
    """Run ``flow`` in a new event loop, with a tracker (durations) and maybe a live display.

    Returns:
        The final state, the tracker and the run id.
    """
    import asyncio

    from ..exceptions import FlowValidationError
    from ._cli_support import BadInput
    from ._run_tracker import RunTracker

    async def main() -> Any:
        try:
            runner = flow._runner(
                values,
                {},
                max_concurrency=None,
                concurrency=None,
                history=history,
                history_log_level=min(log_level, 20),  # what is shown is kept too
            )
        except FlowValidationError as exc:  # ParameterError included
            raise BadInput(_one_line(exc)) from exc
        runner.observer = tracker
        run_ids.append(runner.run_id)
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
    run_ids: list[str] = []
    try:
        state = asyncio.run(main())
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BadInput:
        raise
    except Exception as exc:  # the flow could not run at all (its own failures are states)
        _fail(f"flow run crashed: {type(exc).__name__}: {_one_line(exc)}", 1)
    tracker.finish()
    return state, tracker, run_ids[0] if run_ids else None


def main(argv: list[str] | None = None) -> None:
    """The ``aflow`` console script."""
    try:
        cli = _cli()
    except ImportError as exc:
        _fail(f"the aflow command needs click: pip install 'aflow-engine[cli]' ({exc})", 1)
    cli.main(args=argv, prog_name="aflow")
