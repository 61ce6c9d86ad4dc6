"""The Postgres tasks' connection pool: `PostgresPool`, and `clients`, one pool per run and configuration."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from aflow.integration import ClientFactory, cleanup

if TYPE_CHECKING:
    import psycopg

__all__ = ("POOL_SIZE", "PostgresPool", "clients")

POOL_SIZE = 50
"""Connections a flow run's pool opens at most per configuration (more tasks wait for one)."""

_logger = logging.getLogger("aflow_tasks.postgres")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ImportError("postgres tasks need psycopg 3: pip install aflow-engine[postgres]") from exc
    return psycopg


class PostgresPool:
    """Connections to one server as one user, reused by the tasks of a flow run.

    At most ``max_size`` connections are open; a task waits for a free one. New connections are
    opened concurrently, on demand. A connection comes back to the pool only when its task ended
    cleanly (its transaction closed); otherwise it is closed.

    Args:
        connect_args: Passed to ``psycopg.AsyncConnection.connect`` (no None values).
        max_size: The most connections open at once.
    """

    def __init__(self, connect_args: Mapping[str, Any], max_size: int = POOL_SIZE) -> None:
        self.connect_args = dict(connect_args)
        self.max_size = max_size
        self._slots = asyncio.Semaphore(max_size)
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._busy: set[psycopg.AsyncConnection[Any]] = set()
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection of the pool for the block (a new one when none is idle).

        Yields:
            An open ``psycopg.AsyncConnection`` outside any transaction.
        """
        if self._closed:
            raise RuntimeError("the Postgres pool is closed (its flow run has ended)")
        async with self._slots:
            conn = None
            while self._idle and conn is None:
                conn = self._idle.pop()
                if conn.closed or conn.broken:
                    conn = None
            if conn is None:
                conn = await _psycopg().AsyncConnection.connect(**self.connect_args)
            self._busy.add(conn)
            reuse = False
            try:
                yield conn
                reuse = True
            finally:
                self._busy.discard(conn)
                idle = _psycopg().pq.TransactionStatus.IDLE
                if reuse and not self._closed and not conn.closed and conn.info.transaction_status == idle:
                    self._idle.append(conn)
                else:
                    await cleanup(conn.close, "close a Postgres connection", _logger, limit=5.0)

    async def close(self) -> None:
        """Close every connection (idle and in use); the pool hands out none afterwards."""
        self._closed = True
        conns, self._idle = [*self._idle, *self._busy], []
        for conn in conns:
            await cleanup(conn.close, "close a Postgres connection", _logger, limit=5.0)


@asynccontextmanager
async def _open_pool(connect_args: Mapping[str, Any]) -> AsyncIterator[PostgresPool]:
    pool = PostgresPool(connect_args)
    try:
        yield pool
    finally:
        await pool.close()


clients: ClientFactory[[Mapping[str, Any]], PostgresPool] = ClientFactory("aflow_tasks.postgres", _open_pool)
"""The Postgres tasks' pool factory: one `PostgresPool` per configuration per flow run, closed when
the run ends. Its opener takes the ``psycopg.AsyncConnection.connect`` arguments; tests may wrap
it with ``clients.override(...)`` (see `aflow.integration.ClientFactory`)."""
