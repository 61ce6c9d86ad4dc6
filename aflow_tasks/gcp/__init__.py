"""Google Cloud tasks on gcloud-aio (Storage, BigQuery, Secret Manager), with Prefect 1's names.

One aiohttp session per flow run is shared by every gcp task (`aflow_tasks.gcp._auth`).
Needs the ``gcp`` extra: ``pip install aflow-engine[gcp]``.
"""

from __future__ import annotations

__all__: tuple[str, ...] = ()
