"""Write a few reports to S3 concurrently, list them and read them back (aflow_tasks.aws).

Run it with ``python examples/s3_reports.py [ENDPOINT_URL]``. Without an endpoint it starts moto's
S3 stand-in on loopback (``pip install 'moto[server]'``), so nothing touches a real AWS account.
Needs ``pip install 'aflow-engine[aws]'``.
"""

from __future__ import annotations

import sys
from typing import Any

from aflow import Flow, Parameter, task, unmapped
from aflow_tasks.aws import S3Download, S3List, S3Upload, aws_client

BUCKET = "aflow-reports"
CREDENTIALS = {"ACCESS_KEY": "example-key", "SECRET_ACCESS_KEY": "example-secret"}  # a stand-in's
REGION = "us-east-1"


@task
async def make_bucket(endpoint: str) -> str:
    async with aws_client("s3", credentials=CREDENTIALS, region_name=REGION, endpoint_url=endpoint) as s3:
        await s3.create_bucket(Bucket=BUCKET)
    return BUCKET


@task
def report(day: int) -> str:
    return f"day {day}: {day * 7} orders"


@task
def report_key(day: int) -> str:
    return f"reports/day-{day:02d}.txt"


def build(endpoint: str) -> tuple[Flow, Any, Any]:
    """The flow for one S3 endpoint (the client settings are template configuration)."""
    aws: dict[str, Any] = {"credentials": CREDENTIALS, "region_name": REGION, "endpoint_url": endpoint}
    upload, listing, download = S3Upload(**aws), S3List(**aws), S3Download(**aws)
    with Flow("s3-reports") as flow:
        days = Parameter("days", default=[1, 2, 3])
        bucket = make_bucket(endpoint)
        keys = upload.map(data=report.map(days), key=report_key.map(days), bucket=unmapped(bucket))
        listed = listing(prefix="reports/", bucket=bucket, upstream_tasks=[keys])
        texts = download.map(key=listed, bucket=unmapped(bucket))
    return flow, listed, texts


def run(endpoint: str) -> int:
    flow, listed, texts = build(endpoint)
    state = flow.run_sync()
    print(f"final state: {state!r}")
    print(f"listed: {state.result[listed].result}")
    print(f"read back: {state.result[texts].result}")
    return 0 if state.is_successful() else 1


def main() -> int:
    if len(sys.argv) > 1:
        return run(sys.argv[1])
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the stand-in's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        return run(f"http://{host}:{port}")
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
