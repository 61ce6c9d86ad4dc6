"""The kit for writing task families: what `aflow_tasks` builds on, and what your own families may use.

- `is_lazy` / `resolve_lazy`: tell a lazy value (an `aflow.Secret`, an awaitable factory) from a
  plain one and await it at run time, for values resolved outside `defaults_from_attrs`.
- `to_the_end`: await a call that starts something remote (a job, an upload) so that no
  cancellation cuts it in half, and undo what it started when the caller was cancelled.
"""

from __future__ import annotations

from ._model._defaults import is_lazy as is_lazy
from ._model._defaults import resolve_lazy as resolve_lazy
from ._runtime._shielded import to_the_end as to_the_end

__all__ = ("is_lazy", "resolve_lazy", "to_the_end")
