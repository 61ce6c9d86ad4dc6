"""A real, private Docker engine for the docker task tests, shared by the whole session.

The session starts its own ``dockerd`` (own socket, data root, exec root and managed containerd;
``--bridge=none --iptables=false``: no network change on the machine; overlay2, else vfs),
imports a tiny image made from busybox-static through the Engine API, and runs Debian's
``docker-registry`` on 127.0.0.1 for pushes and pulls. All of it is stopped by pid at the end.
Needs root and the packages ``docker.io busybox-static docker-registry``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.net import free_port

IMAGE = "aflow-tiny:latest"
BUSYBOX_TOOLS = ("sh", "echo", "sleep", "cat", "ls", "true", "false", "test", "[", "touch", "seq")
START_LIMIT = 60.0  # seconds for dockerd (and the registry) to answer


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass
class Engine:
    """The session's engine: its URL, its socket, the registry's address and the tiny image."""

    url: str
    sock: str
    registry: str
    image: str
    driver: str

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        """A plain Engine API call from the test's side: ``(status, decoded JSON or text)``."""
        conn = _UnixConnection(self.sock)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            raw = resp.read().decode()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw

    def container_exists(self, container_id: str) -> bool:
        """Whether the engine still has the container."""
        status, _ = self.call("GET", f"/containers/{container_id}/json")
        return bool(status == 200)

    def image_exists(self, name: str) -> bool:
        """Whether the engine has the image."""
        status, _ = self.call("GET", f"/images/{name}/json")
        return bool(status == 200)


def _wait(check: Any, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_LIMIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer within {START_LIMIT:g}s:\n{log.read_text()[-3000:]}")


def _start_dockerd(root: Path, driver: str | None) -> tuple[subprocess.Popen[bytes], Path]:
    log = root / f"dockerd-{driver or 'default'}.log"
    args = [
        "dockerd",
        "-H",
        f"unix://{root}/d.sock",
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "--pidfile",
        str(root / "dockerd.pid"),
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-masq=false",
    ]
    if driver:
        args += ["--storage-driver", driver]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def _ping(sock: str) -> bool:
    conn = _UnixConnection(sock, timeout=2)
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def _rootfs_tar(root: Path) -> bytes:
    rootfs = root / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "tmp").mkdir()
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    for tool in BUSYBOX_TOOLS:
        (rootfs / "bin" / tool).symlink_to("busybox")
    out = root / "rootfs.tar"
    with tarfile.open(out, "w") as tar:
        tar.add(rootfs, arcname=".")
    return out.read_bytes()


def _stop(proc: subprocess.Popen[bytes], limit: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _kill_pidfile(path: Path) -> None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """Start the private engine and registry once; stop both (and the engine's containerd) at the end."""
    root = Path(tempfile.mkdtemp(prefix="aflow-dk-"))
    procs: list[subprocess.Popen[bytes]] = []
    driver = "overlay2"
    try:
        proc, log = _start_dockerd(root, None)
        sock = str(root / "d.sock")
        try:
            _wait(lambda: _ping(sock), "dockerd", proc, log)
        except RuntimeError:
            _stop(proc)  # overlay2 unavailable (an overlay-on-overlay kernel...): fall back to vfs
            driver = "vfs"
            proc, log = _start_dockerd(root, "vfs")
            _wait(lambda: _ping(sock), "dockerd (vfs)", proc, log)
        procs.append(proc)
        engine = Engine(url=f"unix://{sock}", sock=sock, registry="", image=IMAGE, driver=driver)
        status, info = engine.call("GET", "/info")
        engine.driver = info.get("Driver", driver) if status == 200 else driver
        repo, tag = IMAGE.split(":")
        status, answer = engine.call(
            "POST",
            f"/images/create?fromSrc=-&repo={repo}&tag={tag}",
            body=_rootfs_tar(root),
            headers={"Content-Type": "application/x-tar"},
        )
        if status != 200 or "error" in str(answer):
            raise RuntimeError(f"importing the tiny image failed: {status} {answer}")
        port = free_port()
        config = root / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'registry'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
        reg_log = root / "registry.log"
        with reg_log.open("wb") as out:
            registry = subprocess.Popen(
                ["docker-registry", "serve", str(config)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        procs.append(registry)

        def registry_up() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as resp:
                return bool(resp.status == 200)

        _wait(registry_up, "docker-registry", registry, reg_log)
        engine.registry = f"127.0.0.1:{port}"
        yield engine
    finally:
        for proc in reversed(procs):
            _stop(proc)
        _kill_pidfile(root / "exec" / "containerd" / "containerd.pid")  # gone with dockerd, normally
        subprocess.run(["umount", "-R", "-l", str(root / "data")], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
