"""The ``aflow`` command's entry point (``[project.scripts]`` and ``python -m aflow._cli``).

The commands themselves live in the `aflow._surface._cli` package.
"""

from __future__ import annotations

from ._surface._cli import main as main

__all__ = ("main",)

if __name__ == "__main__":
    main()
