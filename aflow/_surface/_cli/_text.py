"""Text pieces every ``aflow`` command's output shares: labels, durations, tables, log lines.

No click here (a coloured log line imports it when asked for colour).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ("abridge", "counts", "duration", "log_line", "table", "task_label")

_MAX_VALUE = 200  # characters of a value shown in a summary (results, parameters)
_COLOURS = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "red"}


def task_label(name: str, map_index: int | None, attempt: int | None = None) -> str:
    """``name``, ``name[3]``, with `` (attempt 2)`` after a first attempt."""
    label = name if map_index is None else f"{name}[{map_index}]"
    return label if attempt is None or attempt <= 1 else f"{label} (attempt {attempt})"


def log_line(when: str, level: str, source: str, message: str, *, colour: bool = False) -> str:
    """One log line: ``when LEVEL source: message``; a message's further lines are indented."""
    shown = f"{level:<8}"
    if colour and level in _COLOURS:
        import click

        shown = click.style(shown, fg=_COLOURS[level], bold=level != "WARNING")
    return f"{when} {shown}{source}: " + message.replace("\n", "\n    ")


def abridge(value: Any, limit: int = _MAX_VALUE) -> str:
    """``value`` as JSON when it is, else its repr, cut to ``limit`` characters.

    A cut value ends with its size: a collection's items, and the characters of the whole.
    """
    try:
        text = json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} items, " if isinstance(value, (list, tuple, dict, set)) else ""
    return f"{text[: limit - 1]}\N{HORIZONTAL ELLIPSIS} ({size}{len(text)} characters)"


def duration(seconds: float | None) -> str:
    """``seconds`` in a unit that fits, microseconds to minutes (``12.5ms``, ``2m05.0s``; ``-`` for None)."""
    if seconds is None:
        return "-"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f}\N{MICRO SIGN}s"
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 120:
        return f"{seconds:.2f}s"
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


def counts(names: Iterable[str]) -> str:
    """``3 Success, 1 Failed``: how often each name occurs, most common first."""
    return ", ".join(f"{n} {name}" for name, n in Counter(names).most_common()) or "no children"


def table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    """``header`` and ``rows`` as lines of left-aligned columns, indented by two spaces."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
