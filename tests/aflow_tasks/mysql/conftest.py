"""A real MariaDB server for the mysql family's tests: started once per session, stopped by pid.

``mariadb-install-db`` makes a data directory in a temp dir; ``mariadbd`` serves it on
127.0.0.1 at a free port, with a user that has a password (grants are enforced). The fixture
fails loudly (with the server's error log) when the server cannot start: nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pytest

from tests.net import free_port

USER = "aflow_user"
PASSWORD = "pw-Quux-7319-zz"
DB = "aflow_test"
START_LIMIT = 60.0  # seconds: a guard only (the server is up in about a second)


@dataclass(frozen=True)
class MariaDB:
    """The running server and the connection settings every task of the tests takes."""

    host: str
    port: int
    pid: int
    cert: str  # the server's self-signed certificate (its own CA), for ssl={"ca": cert}

    @property
    def settings(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": USER, "password": PASSWORD, "db_name": DB}

    def connect(self, **kwargs: Any) -> pymysql.connections.Connection[Any]:
        """A plain (blocking) pymysql connection, for checks outside the tasks."""
        return pymysql.connect(
            host=self.host, port=self.port, user=USER, password=PASSWORD, database=DB, autocommit=True, **kwargs
        )

    def query(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise RuntimeError(f"{name} not found: install Debian's mariadb-server (and openssl) packages")
    return found


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    with running_mariadb(tmp_path_factory.mktemp("mariadb")) as server:
        yield server


@contextmanager
def running_mariadb(base: Path) -> Iterator[MariaDB]:
    """Make a data directory in ``base``, serve it on 127.0.0.1 at a free port; stop it by pid on exit."""
    data = base / "data"
    user = ["--user=root"] if os.geteuid() == 0 else []
    install = subprocess.run(
        [
            _binary("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *user,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if install.returncode != 0:
        raise RuntimeError(f"mariadb-install-db failed ({install.returncode}):\n{install.stdout}\n{install.stderr}")
    init = base / "init.sql"
    init.write_text(
        f"CREATE DATABASE IF NOT EXISTS {DB};\n"
        f"CREATE USER IF NOT EXISTS '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';\n"
        f"CREATE USER IF NOT EXISTS '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}';\n"
        f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'127.0.0.1';\n"
        f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'localhost';\n",
        encoding="utf-8",
    )
    cert, key = base / "cert.pem", base / "key.pem"
    made = subprocess.run(
        [
            _binary("openssl"),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if made.returncode != 0:
        raise RuntimeError(f"openssl could not make a test certificate:\n{made.stderr}")
    port = free_port()
    log = base / "error.log"
    server = subprocess.Popen(
        [
            _binary("mariadbd"),
            "--no-defaults",
            *user,
            f"--datadir={data}",
            f"--port={port}",
            f"--socket={base / 'mysqld.sock'}",
            "--bind-address=127.0.0.1",
            f"--init-file={init}",
            f"--pid-file={base / 'mysqld.pid'}",
            f"--log-error={log}",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=32M",
            "--max-connections=500",
            f"--ssl-cert={cert}",
            f"--ssl-key={key}",
            f"--ssl-ca={cert}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_LIMIT
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {server.returncode}:\n{_tail(log)}")
            try:
                pymysql.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD, database=DB).close()
                break
            except pymysql.MySQLError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd did not accept connections: {exc}\n{_tail(log)}") from exc
                time.sleep(0.05)
        yield MariaDB("127.0.0.1", port, server.pid, str(cert))
    finally:
        os.kill(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
            server.wait(10)


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
    except OSError:
        return "(no error log)"
