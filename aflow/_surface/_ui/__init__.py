"""``aflow ui``: a read-only web UI over a run store (``pip install aflow-engine[ui]``).

`_model` turns store records into what the pages show (task runs with their attempts, per-task
counts, the graph); `_server` serves them (aiohttp) with the pages and assets in ``static/``;
`_command` is the click command the ``aflow`` CLI adds. Only `_server` imports aiohttp.
"""
