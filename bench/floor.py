"""The floor: a minimal asyncio DAG executor (one asyncio task per node awaiting its parents'
tasks, with a state record per node), the same design as the shared anchor ``dag.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


class Node:
    __slots__ = ("args", "ended", "fn", "id", "started", "state")

    def __init__(self, id: int, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        self.id, self.fn, self.args = id, fn, args
        self.state, self.started, self.ended = "Pending", 0.0, 0.0


class Dag:
    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def add(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Node:
        node = Node(len(self.nodes), fn, args)
        self.nodes.append(node)
        return node

    async def _run_node(self, node: Node, futures: list[asyncio.Task[Any]]) -> Any:
        for a in node.args:
            if isinstance(a, Node):
                await futures[a.id]
        args = [futures[a.id].result() if isinstance(a, Node) else a for a in node.args]
        node.state, node.started = "Running", time.monotonic()
        try:
            result = await node.fn(*args)
        except BaseException:
            node.state = "Failed"
            raise
        finally:
            node.ended = time.monotonic()
        node.state = "Success"
        return result

    async def run(self) -> list[Any]:
        futures: list[asyncio.Task[Any]] = []
        for node in self.nodes:
            futures.append(asyncio.ensure_future(self._run_node(node, futures)))
        return await asyncio.gather(*futures)
