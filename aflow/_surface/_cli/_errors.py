"""How the ``aflow`` command reports what goes wrong: one line on stderr and an exit code.

The bottom of the CLI: every command module imports it, it imports none of them.
"""

from __future__ import annotations

import sys
from typing import NoReturn

__all__ = ("BadInput", "fail", "one_line")


class BadInput(Exception):
    """The user's input is wrong (a file, a flow, a parameter): reported in one line, exit code 2."""


def fail(message: str, code: int = 2) -> NoReturn:
    """Write ``aflow: error: message`` on stderr and exit with ``code``."""
    sys.stderr.write(f"aflow: error: {message}\n")
    raise SystemExit(code)


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__
