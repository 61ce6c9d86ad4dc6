"""The flow being built: the one of the enclosing ``with Flow(...)`` block."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._flow import Flow

__all__ = ("building", "current_flow")

building: ContextVar[Flow | None] = ContextVar("aflow_building_flow", default=None)


def current_flow() -> Flow | None:
    """The flow of the enclosing ``with Flow(...)`` block, if any."""
    return building.get()
