"""Real ``redis-server`` processes for the Redis tests: one open, one with a password."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.net import free_port

PASSWORD = "s3cret-redis-pw"
START_GUARD = 20.0  # seconds the server may take to answer PING


@dataclass(frozen=True)
class Server:
    """A running redis-server on 127.0.0.1."""

    port: int
    password: str | None = None

    def client(self, db: int = 0, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, password=self.password, **kwargs)  # type: ignore[arg-type]


def _start(tmp: Path, password: str | None) -> Iterator[Server]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp)]
    if password is not None:
        args += ["--requirepass", password]
    log = (tmp / "redis.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    server = Server(port, password)
    try:
        deadline = time.monotonic() + START_GUARD
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}: {(tmp / 'redis.log').read_text()}")
            try:
                with server.client(socket_timeout=1) as probe:
                    probe.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer: {(tmp / 'redis.log').read_text()}") from None
                time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def start_server(tmp: Path, password: str | None = None) -> Iterator[Server]:
    """A redis-server of its own for one test, stopped on exit."""
    yield from _start(tmp, password)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _start(tmp_path_factory.mktemp("redis"), None)


@pytest.fixture(scope="session")
def redis_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _start(tmp_path_factory.mktemp("redis-auth"), PASSWORD)


@pytest.fixture
def r(redis_server: Server) -> Iterator[redis.Redis]:
    """A sync client on the open server's db 0, emptied (all dbs) before each test."""
    with redis_server.client() as client:
        client.flushall()
        yield client
