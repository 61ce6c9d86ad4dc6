"""Implementation of `aflow.schedules`: clocks, the `Schedule`, filters and adjustments."""

from __future__ import annotations
