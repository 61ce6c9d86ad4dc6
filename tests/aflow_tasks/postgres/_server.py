"""Start and stop a throwaway PostgreSQL server (the tests' fixture and bench/postgres.py use it).

``initdb`` refuses to run as root, so the cluster belongs to the ``postgres`` user when it exists,
else ``nobody``: the data directory, the socket directory and the processes are theirs. The
server listens on 127.0.0.1 on a free port, without fsync (``-F``); it is stopped by pid.

Roles: ``aflow`` (superuser, trust auth) and ``secret_user`` whose host connections need its
password (``scram-sha-256``), with ``PASSWORD``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.net import free_port


def _bin_dir() -> Path:
    """Where ``initdb`` and ``postgres`` are: $PG_BIN, the PATH, or Debian's /usr/lib/postgresql/N/bin."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if debian:
        return debian[-1].parent
    raise RuntimeError("PostgreSQL's initdb is not installed (set PG_BIN, or apt-get install postgresql)")


SUPERUSER = "aflow"
DB = "aflow"
PASSWORD_USER = "secret_user"
PASSWORD = "s3cr3t-Pa55word-xyz"
START_TIMEOUT = 30.0


def _owner() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("no 'postgres' or 'nobody' user to run PostgreSQL as (initdb refuses root)")


@dataclass
class PostgresServer:
    """A running server: where it listens and how to stop it."""

    host: str
    port: int
    root: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def settings(self) -> dict[str, object]:
        """The PostgresExecute/PostgresFetch arguments that reach the superuser's database."""
        return {"db_name": DB, "user": SUPERUSER, "host": self.host, "port": self.port}

    @property
    def conninfo(self) -> str:
        return f"host={self.host} port={self.port} dbname={DB} user={SUPERUSER}"

    def stop(self) -> None:
        """Stop the server by pid (fast shutdown), then remove its directory."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start() -> PostgresServer:
    """Init a cluster in a new temp dir and start a server on it; fail loudly if it cannot start."""
    owner = _owner()
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="aflow-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    for path in (root, sock):
        os.chown(path, owner.pw_uid, owner.pw_gid)
    as_owner: dict[str, Any] = {}
    if os.geteuid() == 0:
        as_owner = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    env = {**os.environ, "HOME": str(root), "LC_ALL": "C"}
    init = subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync"],
        capture_output=True,
        cwd=root,
        env=env,
        **as_owner,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr.decode(errors='replace')}")
    (data / "pg_hba.conf").write_text(
        f"local all all trust\nhost all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\n"
    )
    port = free_port()
    with open(root / "server.log", "wb") as log:  # the server keeps its own descriptor
        process = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-F",
                "-p",
                str(port),
                "-k",
                str(sock),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
            **as_owner,
        )
    server = PostgresServer("127.0.0.1", port, root, process)
    deadline = time.monotonic() + START_TIMEOUT
    import psycopg

    while True:
        if process.poll() is not None:
            text = (root / "server.log").read_text(errors="replace")
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"postgres exited with {process.returncode}: {text}")
        try:
            admin = f"host={server.host} port={port} dbname=postgres user={SUPERUSER}"
            with psycopg.connect(admin, autocommit=True, connect_timeout=2) as conn:
                conn.execute(f"CREATE DATABASE {DB}")
                conn.execute(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'")
            with psycopg.connect(server.conninfo, autocommit=True, connect_timeout=2) as conn:
                conn.execute(f"GRANT ALL ON SCHEMA public TO {PASSWORD_USER}")
            return server
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"postgres did not accept connections within {START_TIMEOUT}s") from None
            time.sleep(0.05)
