"""The GCS emulator (gcp-storage-emulator) for the storage tests, on 127.0.0.1 and a free port."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from functools import partial
from http import server

import pytest


class _Server(server.HTTPServer):
    # the emulator's HTTPServer listens with a backlog of 5: 200 concurrent uploads time out
    request_queue_size = 1024


class StorageEmulator:
    """gcp-storage-emulator's request handler on a server of our own (a larger listen backlog).

    Args:
        host: The address to listen on.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        from gcp_storage_emulator.server import RequestHandler  # type: ignore[import-untyped]
        from gcp_storage_emulator.storage import Storage  # type: ignore[import-untyped]

        class MemoryStorage(Storage):  # type: ignore[misc]
            def _write_config_to_file(self) -> None:
                # the emulator rewrites its whole index as JSON after every write (O(objects) each);
                # it only reads it back at start, which an in-memory store never needs
                return None

        logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)
        self.storage = MemoryStorage(use_memory_fs=True)
        self._httpd = _Server((host, 0), partial(RequestHandler, self.storage))
        port = self._httpd.server_address[1]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="gcs-emulator", daemon=True)

    def start(self) -> None:
        """Serve requests in a thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def wipe(self) -> None:
        """Remove every bucket and object."""
        self.storage.wipe()


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[StorageEmulator]:
    emulator = StorageEmulator()
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def gcs(gcs_server: StorageEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[StorageEmulator]:
    """The emulator, empty, with ``STORAGE_EMULATOR_HOST`` pointing at it for the test."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    yield gcs_server
    gcs_server.wipe()
