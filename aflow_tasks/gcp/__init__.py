"""Google Cloud tasks on gcloud-aio (Storage, BigQuery, Secret Manager), with Prefect 1's names.

One aiohttp session per flow run is shared by every gcp task (`aflow_tasks.gcp._auth`).
Needs the ``gcp`` extra: ``pip install aflow-engine[gcp]``.

- `aflow_tasks.gcp.secretmanager`: `GCPSecret`, a secret's payload from Secret Manager.
"""

from __future__ import annotations

from .secretmanager import GCPSecret as GCPSecret

__all__: tuple[str, ...] = ("GCPSecret",)
