from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

REGION = "us-east-1"
CREDS = {"ACCESS_KEY": "testing-access-key", "SECRET_ACCESS_KEY": "testing-secret-access-key"}


@dataclass(frozen=True)
class Moto:
    """The running moto server and the settings every AWS task of the tests takes."""

    url: str

    @property
    def settings(self) -> dict[str, Any]:
        return {"credentials": CREDS, "region_name": REGION, "endpoint_url": self.url}

    def client_args(self) -> dict[str, Any]:
        return {
            "region_name": REGION,
            "endpoint_url": self.url,
            "aws_access_key_id": CREDS["ACCESS_KEY"],
            "aws_secret_access_key": CREDS["SECRET_ACCESS_KEY"],
        }

    async def api(self, path: str, body: Any) -> None:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{self.url}/moto-api/{path}", json=body)
            response.raise_for_status()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    empty = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as mp:
        # never read the real ~/.aws: every test passes dummy credentials explicitly
        mp.setenv("AWS_CONFIG_FILE", str(empty))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            mp.delenv(var, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            # moto's Step Functions call its own Lambda backend through this port
            mp.setenv("MOTO_PORT", str(port))
            url = f"http://{host}:{port}"
            config = {
                "lambda": {"use_docker": False},
                "batch": {"use_docker": False},
                "stepfunctions": {"execute_state_machine": True},
            }
            httpx.post(f"{url}/moto-api/config", json=config).raise_for_status()
            yield url
        finally:
            server.stop()


@pytest.fixture
def moto(moto_server: str) -> Iterator[Moto]:
    yield Moto(moto_server)
    httpx.post(f"{moto_server}/moto-api/reset").raise_for_status()
