"""The ``aflow`` command (``pip install aflow-engine[cli]``): run and draw flows, read the run history.

::

    aflow run etl.py:flow --param day=2024-01-01 --param limits='{"n": 3}'
    aflow visualize etl.py:flow --format mermaid
    aflow runs list --history runs.db
    aflow runs show 3f2a --history runs.db
    aflow runs logs 3f2a --follow

Exit codes: 0 when the flow run succeeds, 1 when it fails (or something goes wrong in the
environment), 2 for bad input (a missing file, no such flow, a bad or unknown parameter), each
reported in one line without a traceback. Only the command modules import click, and only when
the command runs.

The modules, each importing only those below it:

- ``_main``: the ``aflow`` group and `main`; it adds the commands of the modules below.
- ``_flow_commands``: ``aflow run`` and ``aflow visualize``; ``_history_commands``: the ``aflow
  runs`` group (``aflow ui`` is `aflow._surface._ui._command`).
- ``_run_output`` and ``_history_output``: what those commands print (no click).
- ``_inputs`` (a flow target, parameters) and ``_run_store`` (the ``--history`` option, opening
  the store, naming a run): what the commands read.
- ``_text`` (shared text pieces) and ``_errors`` (`BadInput`, the one-line error and exit code).

A new command is a function building a click command in a module of its own (importing
``_errors``, ``_run_store``... as it needs), added to the group in ``_main.build_cli``.
"""

from __future__ import annotations

from ._main import main as main

__all__ = ("main",)
