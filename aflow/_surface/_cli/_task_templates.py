"""The files ``aflow new-task`` writes: a family module, its tests, its docs page and outline entry.

Each template is a `string.Template`: ``$family`` (``acme_cloud``), ``$Family`` (``AcmeCloud``),
``$title`` (``Acme Cloud``), ``$FAMILY`` (``ACME_CLOUD``), ``$host`` (``acme-cloud``), ``$Class``
(the task class) and ``$all`` (the family module's ``__all__``, sorted as ruff wants it).
"""

from __future__ import annotations

from string import Template

__all__ = ("DOCS_PAGE", "FAMILY_MODULE", "OUTLINE_ENTRY", "TEST_MODULE")

FAMILY_MODULE = Template('''\
"""$title tasks: read items from the $title API on one shared HTTP client per flow run.

Written with `aflow.integration`: the tasks of a flow run share one ``httpx.AsyncClient`` per base
URL (`clients`, whose ``override``/``use`` inject another client in tests); the API's error
answers are mapped to task failures at one boundary (`map_errors`): a 429 or 5xx retries the task
while it has retries left, after what ``Retry-After`` asks, then fails with the API's message.
The token is a run-time value (a string or a lazy `aflow.Secret`), never shown in messages or logs.

Needs httpx: ``pip install aflow-engine[http]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from aflow import Secret, Task, defaults_from_attrs
from aflow.exceptions import SecretNotFound
from aflow.integration import ClientFactory, Failure, is_lazy, map_errors, resolve_lazy, retry_after_seconds
from aflow.secrets import register

if TYPE_CHECKING:
    import httpx

__all__ = $all

DEFAULT_BASE_URL = "https://api.$host.example"
"""The API's address unless a task says otherwise."""

TOKEN_SECRET = "${FAMILY}_TOKEN"
"""The secret read for the token when a task is given none."""


class ${Family}Error(Exception):
    """An error answer of the $title API (a status of 400 or more).

    Args:
        response: The answer.
    """

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.status_code} {response.reason_phrase}")
        self.response = response


@asynccontextmanager
async def _open_client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    try:
        import httpx
    except ImportError as exc:
        raise ImportError("$family tasks need httpx: pip install aflow-engine[http]") from exc
    async with httpx.AsyncClient(base_url=base_url, follow_redirects=True) as client:
        yield client


clients: ClientFactory[[str], httpx.AsyncClient] = ClientFactory("aflow_tasks.$family", _open_client)
"""One ``httpx.AsyncClient`` per base URL per flow run; its opener takes the base URL. Tests inject
clients with ``clients.override(opener)`` or ``clients.use(client)``."""


def _failure(exc: ${Family}Error) -> Failure:
    """What an error answer means: 429 and 5xx are transient, others fail at once."""
    response = exc.response
    status = response.status_code
    try:
        detail = response.json().get("message") or response.text
    except (ValueError, AttributeError):
        detail = response.text
    return Failure(
        f"$title API answered {status}: {str(detail).strip()[:300] or '<empty body>'}",
        transient=status == 429 or status >= 500,
        retry_after=retry_after_seconds(response.headers.get("Retry-After"), date=response.headers.get("Date")),
    )


async def _token(token: Any, secret: str | None) -> str:
    """The token: the value given (awaited if lazy), else the secret ``secret``."""
    if token is None and secret:
        try:
            token = Secret(secret).get()
        except SecretNotFound:
            token = None
    if token is not None and is_lazy(token):
        token = await resolve_lazy(token)
    if not token:
        where = f", or set the secret {secret!r}" if secret else ""
        raise ValueError(f"$Class needs a token: pass token= (a string or an aflow.Secret){where}")
    register(str(token))
    return str(token)


class $Class(Task):
    """Read one item from the $title API.

    Args:
        item: The item's id. Defaults to None (give it to the call).
        token: The API token: a string or a lazy secret such as ``aflow.Secret("${FAMILY}_TOKEN")``.
            Defaults to None (the secret named by ``token_secret``).
        token_secret: The secret read when no token is given. Defaults to ``"${FAMILY}_TOKEN"``.
        base_url: The API's address. Defaults to `DEFAULT_BASE_URL`.
        **kwargs: `aflow.Task` arguments (``name``, ``max_retries``, ``retry_delay``...).
    """

    def __init__(
        self,
        item: str | None = None,
        token: Any = None,
        token_secret: str | None = TOKEN_SECRET,
        base_url: str = DEFAULT_BASE_URL,
        **kwargs: Any,
    ) -> None:
        self.item = item
        self.token = token
        self.token_secret = token_secret
        self.base_url = base_url
        super().__init__(**kwargs)

    @defaults_from_attrs("item", "token")
    async def run(self, item: str | None = None, token: Any = None) -> Any:
        """Return the item, as the API's JSON.

        Args:
            item: The item's id (required).
            token: The API token (a lazy secret works here too).

        Returns:
            The parsed JSON body.

        Raises:
            ValueError: If there is no item or no token.
            aflow.signals.RETRY: For a 429 or 5xx while the task has retries left.
            aflow.signals.FAIL: For another error answer, or a 429 or 5xx with no retries left.
        """
        if item is None:
            raise ValueError("$Class needs item: give it at initialization or to the call (item=...)")
        secret = await _token(token, self.token_secret)
        async with clients.client(self.base_url, self.base_url) as client:
            with map_errors(${Family}Error, _failure):
                response = await client.get(f"/items/{item}", headers={"Authorization": f"Bearer {secret}"})
                if response.is_error:
                    raise ${Family}Error(response)
        return response.json()
''')

TEST_MODULE = Template('''\
"""aflow_tasks.$family against a small local fake of the $title API (pytest-httpserver on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aflow import Flow, Secret
from aflow.testing import FakeClock
from aflow_tasks.$family import $Class, clients

TOKEN = "t0ken-for-$family-tests"


@pytest.fixture(scope="module")
def make_httpserver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def answers(*responses: Response) -> Callable[[Request], Response]:
    """A handler answering with each response in turn (the last one repeats)."""
    queue = list(responses)

    def handler(request: Request) -> Response:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


async def test_run_returns_the_item(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/items/7", headers={"Authorization": f"Bearer {TOKEN}"}).respond_with_json({"id": 7})
    task = $Class(token=TOKEN, base_url=httpserver.url_for("/"))
    assert await task.run(item="7") == {"id": 7}


async def test_missing_item_or_token_is_refused() -> None:
    with pytest.raises(ValueError, match="$Class needs item"):
        await $Class(token=TOKEN).run()
    with pytest.raises(ValueError, match="$Class needs a token"):
        await $Class(token_secret=None).run(item="1")


async def test_the_token_is_a_run_time_secret(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/items/1", headers={"Authorization": f"Bearer {TOKEN}"}).respond_with_json({"id": 1})
    with Flow("$family") as flow:
        got = $Class(token=Secret("MY_TOKEN"), base_url=httpserver.url_for("/"))(item="1")
    state = await flow.run(context={"secrets": {"MY_TOKEN": TOKEN}})
    assert state.result[got].result == {"id": 1}


async def test_a_5xx_retries_after_retry_after_then_succeeds(httpserver: HTTPServer) -> None:
    busy = Response("busy", status=503, headers={"Retry-After": "4"})
    httpserver.expect_request("/items/2").respond_with_handler(answers(busy, Response('{"id": 2}', status=200)))
    with Flow("$family") as flow:
        got = $Class(token=TOKEN, base_url=httpserver.url_for("/"), max_retries=1)(item="2")
    clock = FakeClock()
    state = await flow.run(clock=clock)
    assert state.result[got].result == {"id": 2}
    assert clock.sleeps == [4]


async def test_an_error_answer_fails_with_the_apis_message_and_no_token(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/items/404").respond_with_json({"message": "no such item"}, status=404)
    with Flow("$family") as flow:
        got = $Class(token=TOKEN, base_url=httpserver.url_for("/"))(item="404")
    state = await flow.run()
    assert state.result[got].is_failed()
    assert state.result[got].message == "$title API answered 404: no such item"
    assert TOKEN not in str(state.result[got].message)


async def test_a_flow_run_shares_one_client_through_the_public_seam(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/items/3").respond_with_json({"id": 3})
    opened: list[str] = []

    @asynccontextmanager
    async def counting(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
        opened.append(base_url)
        async with clients.opener(base_url) as client:
            yield client

    with Flow("$family") as flow:
        for _ in range(3):
            $Class(token=TOKEN, base_url=httpserver.url_for("/"))(item="3")
    with clients.override(counting):
        assert (await flow.run()).is_successful()
    assert opened == [httpserver.url_for("/")]
''')

DOCS_PAGE = Template("""\
# $title tasks

`aflow_tasks.$family` reads items from the $title API, on one shared HTTP client per flow run.

**Extra:** `pip install aflow-engine[http]` (httpx).

<!-- no-run -->

```python
from aflow import Flow, Secret
from aflow_tasks.$family import $Class

with Flow("$family") as flow:
    item = $Class(token=Secret("${FAMILY}_TOKEN"), max_retries=2)(item="42")

await flow.run(context={"secrets": {"${FAMILY}_TOKEN": "..."}})
```

## $Class

`$Class(item=None, token=None, token_secret="${FAMILY}_TOKEN", base_url=DEFAULT_BASE_URL, **kwargs)`

| argument | default | meaning |
|---|---|---|
| `item` | `None` | The item's id; required at run time. |
| `token` | `None` | The API token: a string or a lazy secret (`aflow.Secret("...")`). |
| `token_secret` | `"${FAMILY}_TOKEN"` | The secret read when no token is given. |
| `base_url` | `DEFAULT_BASE_URL` | The API's address (a local fake in tests). |
| `**kwargs` | | `Task` arguments: `name`, `max_retries`, `retry_delay`... |

**Failures.** A 429 or 5xx answer is retried while `max_retries` allows, after what `Retry-After`
asks; other error answers fail with the API's message. The token never appears in a message.

**Tests** inject a client through `aflow_tasks.$family.clients` (an
`aflow.integration.ClientFactory`): `with clients.override(opener):` for that block only.
""")

OUTLINE_ENTRY = Template("""
[pages.tasks.$family]
title = "$title"
module = "aflow_tasks.$family"
classes = ["$Class", "${Family}Error"]
attributes = ["DEFAULT_BASE_URL", "TOKEN_SECRET", "clients"]
""")
