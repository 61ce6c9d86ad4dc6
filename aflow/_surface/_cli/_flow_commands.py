"""``aflow run`` and ``aflow visualize``: the commands over a flow file (click is imported when built)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ._errors import BadInput, fail, one_line
from ._run_store import HISTORY_ENV

if TYPE_CHECKING:
    import click

__all__ = ("run_command", "visualize_command")


def run_command() -> click.Command:
    """Build ``aflow run TARGET``."""
    import click

    from ._run_output import LEVELS

    @click.command("run")
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

        from ._inputs import load_flow, parse_params
        from ._run_output import format_summary, result_lines, run_document, setup_run_logging

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

    return run


def visualize_command() -> click.Command:
    """Build ``aflow visualize TARGET``."""
    import click

    @click.command("visualize")
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
        from ._inputs import load_flow

        flow = load_flow(target)
        try:
            graph = flow.visualize(format="mermaid" if fmt == "mermaid" else "dot", filename=output)
        except ValueError as exc:
            fail(one_line(exc))
        except (ImportError, RuntimeError, OSError) as exc:
            fail(one_line(exc), 1)
        if output is None:
            click.echo(graph, nl=False)
        else:
            click.echo(f"Wrote {output}", err=True)

    return visualize


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

    from ..._engine._entry import new_run
    from ...exceptions import FlowValidationError
    from .._run_tracker import RunTracker

    async def main() -> Any:
        try:
            runner = new_run(
                flow,
                values,
                history=history,
                history_log_level=min(log_level, 20),  # what is shown is kept too
            )
        except FlowValidationError as exc:  # ParameterError included
            raise BadInput(one_line(exc)) from exc
        runner.observer = tracker
        run_ids.append(runner.run_id)
        tracker.restart()  # the engine's import is not part of the run
        if progress:
            try:
                from .._progress import run_with_progress
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
        fail("interrupted", 130)
    except BadInput:
        raise
    except Exception as exc:  # the flow could not run at all (its own failures are states)
        fail(f"flow run crashed: {type(exc).__name__}: {one_line(exc)}", 1)
    tracker.finish()
    return state, tracker, run_ids[0] if run_ids else None
