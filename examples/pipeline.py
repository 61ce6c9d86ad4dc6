"""A flow that uses several aflow_tasks families together.

It fetches a JSON list of orders over HTTP (with retries), writes each order to a file
concurrently, counts the files with a shell step, and posts a summary to a Slack-style webhook.

Run it with ``python examples/pipeline.py``: without arguments it starts a small stand-in API
on loopback (the standard library's ``http.server`` in a thread) and prints the final state and
what the webhook received. Against real services, pass ``api_url=...`` and the webhook in
``context={"secrets": {"SLACK_WEBHOOK_URL": ...}}``. Needs ``pip install aflow-engine[http,files]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aflow import Flow, Parameter, task, unmapped
from aflow_tasks.files import WriteFile
from aflow_tasks.http import HttpRequest
from aflow_tasks.shell import ShellTask
from aflow_tasks.slack import SlackTask

fetch_orders = HttpRequest(name="fetch_orders", max_retries=3, retry_delay=0.1)
write_file = WriteFile(name="write_order")
count_files = ShellTask(name="count_files", command="ls | wc -l")
notify = SlackTask(name="notify")


@task
def order_path(folder: str, order: dict[str, Any]) -> str:
    return f"{folder}/order-{order['id']}.json"


@task
def order_json(order: dict[str, Any]) -> str:
    return json.dumps(order, sort_keys=True)


@task
def summary(orders: list[dict[str, Any]], files: str) -> str:
    total = sum(o["amount"] for o in orders)
    return f"{len(orders)} orders, {files} files written, total {total}"


with Flow("orders") as flow:
    api_url = Parameter("api_url")
    folder = Parameter("folder")
    orders = fetch_orders(url=api_url)
    written = write_file.map(path=order_path.map(unmapped(folder), orders), data=order_json.map(orders))
    files = count_files(cwd=folder, upstream_tasks=[written])
    notify(message=summary(orders, files))


class _StandIn(BaseHTTPRequestHandler):
    """A loopback API: GET /orders answers JSON, POST /hook records the webhook's payload."""

    received: list[Any] = []

    def do_GET(self) -> None:
        body = json.dumps([{"id": i, "amount": 10 * i} for i in range(1, 6)]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with tempfile.TemporaryDirectory() as folder:
            state = flow.run_sync(
                api_url=f"{base}/orders",
                folder=folder,
                context={"secrets": {"SLACK_WEBHOOK_URL": f"{base}/hook"}},
            )
    finally:
        server.shutdown()
        server.server_close()
    print(f"final state: {state!r}")
    print(f"webhook received: {_StandIn.received}")
    return 0 if state.is_successful() else 1


if __name__ == "__main__":
    sys.exit(main())
