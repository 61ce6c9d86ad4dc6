"""The ``aflow ui`` command (added to the ``aflow`` CLI group; click is imported by the caller)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ("ui_command",)


def ui_command() -> Any:
    """Build the click command ``aflow ui``."""
    import click

    from .._cli._errors import fail
    from .._cli._run_store import history_option, require_store

    @click.command("ui")
    @history_option(click)
    @click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
    @click.option(
        "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="The port (0: any free one)."
    )
    def ui(history: str | None, host: str, port: int) -> None:
        """Serve a read-only web UI over the run store: runs, graphs, timelines and logs."""
        import asyncio

        store = require_store(history, "--history PATH")
        try:
            from ._server import serve
        except ImportError as exc:
            fail(f"aflow ui needs aiohttp and aiosqlite: pip install 'aflow-engine[ui]' ({exc})", 1)

        def ready(url: str) -> None:
            click.echo(f"aflow ui: serving {store} at {url} (read-only; Ctrl+C stops)")
            sys.stdout.flush()

        try:
            asyncio.run(serve(store, host, port, ready))
        except KeyboardInterrupt:
            pass
        except OSError as exc:
            fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}", 1)

    return ui
