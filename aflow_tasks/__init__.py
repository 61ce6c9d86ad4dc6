"""aflow_tasks: aflow's integration library (shell, HTTP, files, AWS, Kubernetes...).

Each family lives in its own module and imports its optional dependency only when used;
install the family's extra (``pip install aflow[http]``) to use it. The families arrive with
the task-library releases; this package holds no task yet.
"""

from __future__ import annotations

__all__: tuple[str, ...] = ()
