"""The ``aflow`` group: its commands, and `main`, the console script (via `aflow._cli`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import BadInput, fail

if TYPE_CHECKING:
    import click

__all__ = ("build_cli", "main")


def build_cli() -> click.Group:
    """The ``aflow`` click group with every command.

    Raises:
        ImportError: click is not installed.
    """
    import click

    from ... import __version__
    from .._ui._command import ui_command
    from ._flow_commands import run_command, visualize_command
    from ._history_commands import add_runs_group
    from ._new_task import new_task_command

    class _Group(click.Group):
        """Turns bad input into one line on stderr and exit code 2."""

        def invoke(self, ctx: click.Context) -> Any:
            try:
                return super().invoke(ctx)
            except BadInput as exc:
                fail(str(exc))

    @click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="aflow")  # the distribution is aflow-engine
    def cli() -> None:
        """Run aflow flows, draw them, read their run history and start new task families."""

    cli.add_command(run_command())
    cli.add_command(visualize_command())
    add_runs_group(cli)
    cli.add_command(ui_command())
    cli.add_command(new_task_command())
    return cli


def main(argv: list[str] | None = None) -> None:
    """The ``aflow`` console script."""
    try:
        cli = build_cli()
    except ImportError as exc:
        fail(f"the aflow command needs click: pip install 'aflow-engine[cli]' ({exc})", 1)
    cli.main(args=argv, prog_name="aflow")
