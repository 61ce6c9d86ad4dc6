"""Run several Kubernetes Jobs at once from one event loop and collect their logs.

Run it with ``python examples/kubernetes_jobs.py [KUBECONFIG]`` (default: ``~/.kube/config``).
Each job runs a small shell command in a ``busybox`` container; RunNamespacedJob watches it,
streams its pod's log lines to the task logger while it runs and deletes it when it is done.
The test suite runs this file against aflow's fake API server, whose kubelet runs the commands
as local processes. Needs ``pip install 'aflow-engine[kubernetes]'``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from aflow import Flow, Parameter, task, unmapped
from aflow_tasks.kubernetes import RunNamespacedJob


@task
def job_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"greet-{name}"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", f"echo hello {name}"]}],
                }
            }
        },
    }


@task
def greetings(logs: list[dict[str, str]]) -> list[str]:
    return sorted(text.strip() for pod_logs in logs for text in pod_logs.values())


run_job = RunNamespacedJob(namespace="default", job_status_poll_interval=1.0)

with Flow("kubernetes-jobs") as flow:
    names = Parameter("names", default=["ada", "grace", "linus"])
    kube_config = Parameter("kube_config")
    logs = run_job.map(body=job_body.map(names), kube_config=unmapped(kube_config))
    result = greetings(logs)


def main() -> int:
    config = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("~/.kube/config").expanduser()
    state = flow.run_sync(kube_config=str(config))
    print(f"final state: {state!r}")
    print(f"greetings: {state.result[result].result}")
    return 0 if state.is_successful() else 1


if __name__ == "__main__":
    sys.exit(main())
