"""Implementation of `aflow.history`: the SQLite run-history store (records, schema, store)."""

from __future__ import annotations
