"""The ``aflow ui`` command (added to the ``aflow`` CLI group; click is imported by the caller)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ("ui_command",)

_HISTORY_ENV = "AFLOW_HISTORY"


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"aflow: error: {message}\n")
    raise SystemExit(code)


def ui_command() -> Any:
    """Build the click command ``aflow ui``."""
    import click

    @click.command("ui")
    @click.option(
        "--history",
        "--db",
        "history",
        type=click.Path(dir_okay=False),
        envvar=_HISTORY_ENV,
        help=f"The run store's file (default: ${_HISTORY_ENV}).",
    )
    @click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
    @click.option(
        "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="The port (0: any free one)."
    )
    def ui(history: str | None, host: str, port: int) -> None:
        """Serve a read-only web UI over the run store: runs, graphs, timelines and logs."""
        import asyncio
        from pathlib import Path

        if history is None:
            _fail(f"no run store: pass --history PATH (or set ${_HISTORY_ENV})", 2)
        assert history is not None
        if not Path(history).is_file():
            _fail(f"no run store at {history}: run a flow with --history {history} first", 2)
        try:
            from ._server import serve
        except ImportError as exc:
            _fail(f"aflow ui needs aiohttp and aiosqlite: pip install 'aflow-engine[ui]' ({exc})", 1)

        def ready(url: str) -> None:
            click.echo(f"aflow ui: serving {history} at {url} (read-only; Ctrl+C stops)")
            sys.stdout.flush()

        try:
            asyncio.run(serve(history, host, port, ready))
        except KeyboardInterrupt:
            pass
        except OSError as exc:
            _fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}", 1)

    return ui
