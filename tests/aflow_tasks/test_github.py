from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import aflow
from aflow import Flow, signals
from aflow.testing import FakeClock
from aflow_tasks.github import (
    DEFAULT_BASE_URL,
    CreateBranch,
    CreateGitHubPR,
    CreateIssueComment,
    GetRepoInfo,
    OpenGitHubIssue,
)
from aflow_tasks.http import HttpStatusFail

TOKEN = "ghp_fakeTokenForAflowTests0123456789"
ENV_VAR = "AFLOW__CONTEXT__SECRETS__GITHUB_ACCESS_TOKEN"
NOT_AN_INT: Any = "x"
AUTH = {"Authorization": f"token {TOKEN}", "Accept": "application/vnd.github+json"}


@pytest.fixture(scope="module")
def make_httpserver() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture(autouse=True)
def no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def api(httpserver: HTTPServer) -> str:
    """The fake GitHub API's base URL."""
    return httpserver.url_for("/api/v3")


def only_request(httpserver: HTTPServer) -> Request:
    assert len(httpserver.log) == 1
    return httpserver.log[0][0]


# -- configuration ------------------------------------------------------------------------------


def test_init_defaults_are_stored() -> None:
    issue = OpenGitHubIssue()
    assert (issue.repo, issue.title, issue.body, issue.labels) == (None, None, None, [])
    assert (issue.token, issue.token_secret, issue.base_url, issue.transport) == (
        None,
        "GITHUB_ACCESS_TOKEN",
        DEFAULT_BASE_URL,
        None,
    )
    assert DEFAULT_BASE_URL == "https://api.github.com"
    pr = CreateGitHubPR()
    assert (pr.repo, pr.title, pr.body, pr.head, pr.base, pr.token) == (None,) * 6
    comment = CreateIssueComment()
    assert (comment.repo, comment.issue_number, comment.body, comment.token) == (None,) * 4
    info = GetRepoInfo()
    assert (info.repo, info.info_keys, info.token) == (None, [], None)
    branch = CreateBranch()
    assert (branch.repo, branch.base, branch.branch_name, branch.token) == (None, "main", None, None)


def test_init_stores_arguments_and_task_kwargs() -> None:
    t = OpenGitHubIssue(
        repo="o/r", title="t", body="b", labels=("bug",), token=TOKEN, base_url="http://ghe/api/v3", max_retries=2
    )
    assert (t.repo, t.title, t.body, t.labels, t.token, t.base_url) == (
        "o/r",
        "t",
        "b",
        ["bug"],
        TOKEN,
        "http://ghe/api/v3",
    )
    assert t.max_retries == 2
    assert CreateBranch(base="develop", branch_name="x").base == "develop"


def test_missing_httpx_gives_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(ImportError, match=r"github tasks need httpx: pip install aflow-engine\[http\]"):
        GetRepoInfo(repo="o/r")


@pytest.mark.parametrize(
    ("task", "match"),
    [
        (
            OpenGitHubIssue(title="t", token=TOKEN),
            r"OpenGitHubIssue needs repo: .*\(repo=\.\.\.\) \(repo=\"owner/name\"\)",
        ),
        (OpenGitHubIssue(repo="o/r", token=TOKEN), r"OpenGitHubIssue needs title"),
        (OpenGitHubIssue(repo="just-a-name", title="t", token=TOKEN), r'repo must be "owner/name"'),
        (CreateGitHubPR(repo="o/r", title="t", base="main", token=TOKEN), r"CreateGitHubPR needs head"),
        (CreateGitHubPR(repo="o/r", title="t", head="f", token=TOKEN), r"CreateGitHubPR needs base"),
        (CreateIssueComment(repo="o/r", body="b", token=TOKEN), r"CreateIssueComment needs issue_number"),
        (CreateIssueComment(repo="o/r", issue_number=1, token=TOKEN), r"CreateIssueComment needs body"),
        (
            CreateIssueComment(repo="o/r", issue_number=NOT_AN_INT, body="b", token=TOKEN),
            r"issue_number must be an int",
        ),
        (CreateBranch(repo="o/r", token=TOKEN), r"CreateBranch needs branch_name"),
        (GetRepoInfo(), r"GetRepoInfo needs repo"),
    ],
)
async def test_missing_values_are_clear_value_errors(task: aflow.Task, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        await task.run()


async def test_missing_token_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"OpenGitHubIssue needs a GitHub token: pass token=.*'GITHUB_ACCESS_TOKEN'"):
        await OpenGitHubIssue(repo="o/r", title="t").run()


# -- the fake GitHub API ------------------------------------------------------------------------


async def test_open_issue(httpserver: HTTPServer, api: str) -> None:
    httpserver.expect_request(
        "/api/v3/repos/octo/hello/issues",
        method="POST",
        headers=AUTH,
        json={"title": "Broken", "body": "It broke", "labels": ["bug", "p1"]},
    ).respond_with_json({"number": 12, "html_url": "https://github.test/octo/hello/issues/12"}, status=201)
    t = OpenGitHubIssue(repo="octo/hello", title="Broken", body="It broke", labels=["bug", "p1"], base_url=api)
    issue = await t.run(token=TOKEN)
    assert issue == {"number": 12, "html_url": "https://github.test/octo/hello/issues/12"}
    httpserver.check_assertions()
    assert only_request(httpserver).headers["X-GitHub-Api-Version"] == "2022-11-28"


async def test_call_arguments_override_init(httpserver: HTTPServer, api: str) -> None:
    httpserver.expect_request(
        "/api/v3/repos/octo/other/issues",
        method="POST",
        headers={"Authorization": "token from-the-call"},
        json={"title": "New title", "body": None, "labels": []},
    ).respond_with_json({"number": 1}, status=201)
    t = OpenGitHubIssue(repo="octo/hello", title="Old", labels=["x"], token=TOKEN, base_url=api)
    assert await t.run(repo="octo/other", title="New title", labels=None, token="from-the-call") == {"number": 1}
    httpserver.check_assertions()


async def test_create_pr(httpserver: HTTPServer, api: str) -> None:
    httpserver.expect_request(
        "/api/v3/repos/octo/hello/pulls",
        method="POST",
        headers=AUTH,
        json={"title": "Add x", "body": "Adds x", "head": "feature/x", "base": "main"},
    ).respond_with_json({"number": 3}, status=201)
    t = CreateGitHubPR(repo="octo/hello", title="Add x", body="Adds x", head="feature/x", base="main", base_url=api)
    assert await t.run(token=TOKEN) == {"number": 3}
    httpserver.check_assertions()


async def test_create_issue_comment(httpserver: HTTPServer, api: str) -> None:
    httpserver.expect_request(
        "/api/v3/repos/octo/hello/issues/12/comments", method="POST", headers=AUTH, json={"body": "Done :tada:"}
    ).respond_with_json({"id": 99}, status=201)
    t = CreateIssueComment(repo="octo/hello", issue_number=12, token=TOKEN, base_url=api)
    assert await t.run(body="Done :tada:") == {"id": 99}
    httpserver.check_assertions()


async def test_get_repo_info_keys_and_whole(httpserver: HTTPServer, api: str) -> None:
    repo = {"full_name": "octo/hello", "stargazers_count": 7, "open_issues_count": 2}
    httpserver.expect_request("/api/v3/repos/octo/hello", method="GET", headers=AUTH).respond_with_json(repo)
    t = GetRepoInfo(repo="octo/hello", info_keys=["stargazers_count"], token=TOKEN, base_url=api)
    assert await t.run() == {"stargazers_count": 7}
    assert await t.run(info_keys=[]) == repo


async def test_get_repo_info_without_a_token_sends_no_authorization(httpserver: HTTPServer, api: str) -> None:
    httpserver.expect_request("/api/v3/repos/octo/hello", method="GET").respond_with_json({"id": 1})
    assert await GetRepoInfo(repo="octo/hello", base_url=api).run() == {"id": 1}
    assert "Authorization" not in only_request(httpserver).headers


async def test_get_repo_info_unknown_key_fails(httpserver: HTTPServer, api: str) -> None:
    httpserver.expect_request("/api/v3/repos/octo/hello").respond_with_json({"id": 1})
    with pytest.raises(signals.FAIL, match=r"the repository has no field\(s\) 'stars'"):
        await GetRepoInfo(repo="octo/hello", info_keys=["id", "stars"], base_url=api).run()


async def test_create_branch(httpserver: HTTPServer, api: str) -> None:
    httpserver.expect_request(
        "/api/v3/repos/octo/hello/git/ref/heads/release/1.x", method="GET", headers=AUTH
    ).respond_with_json({"ref": "refs/heads/release/1.x", "object": {"sha": "abc123", "type": "commit"}})
    httpserver.expect_request(
        "/api/v3/repos/octo/hello/git/refs",
        method="POST",
        headers=AUTH,
        json={"ref": "refs/heads/fix/y", "sha": "abc123"},
    ).respond_with_json({"ref": "refs/heads/fix/y", "object": {"sha": "abc123"}}, status=201)
    t = CreateBranch(repo="octo/hello", branch_name="fix/y", token=TOKEN, base_url=api)
    assert await t.run(base="release/1.x") == {"ref": "refs/heads/fix/y", "object": {"sha": "abc123"}}
    httpserver.check_assertions()
    assert [(r.method, r.path) for r, _ in httpserver.log] == [
        ("GET", "/api/v3/repos/octo/hello/git/ref/heads/release/1.x"),
        ("POST", "/api/v3/repos/octo/hello/git/refs"),
    ]


async def test_create_branch_from_a_missing_base_fails(httpserver: HTTPServer, api: str) -> None:
    httpserver.expect_request("/api/v3/repos/octo/hello/git/ref/heads/main").respond_with_json(
        {"message": "Not Found", "documentation_url": "https://docs.github.com"}, status=404
    )
    with pytest.raises(signals.FAIL, match=r"^CreateBranch: the base branch 'main' does not exist \(.*404"):
        await CreateBranch(repo="octo/hello", branch_name="x", token=TOKEN, base_url=api).run()
    assert len(httpserver.log) == 1  # nothing was created


async def test_create_existing_branch_fails_with_githubs_message(httpserver: HTTPServer, api: str) -> None:
    httpserver.expect_request("/api/v3/repos/octo/hello/git/ref/heads/main").respond_with_json(
        {"ref": "refs/heads/main", "object": {"sha": "abc"}}
    )
    httpserver.expect_request("/api/v3/repos/octo/hello/git/refs", method="POST").respond_with_json(
        {"message": "Reference already exists"}, status=422
    )
    with pytest.raises(HttpStatusFail) as info:
        await CreateBranch(repo="octo/hello", branch_name="x", token=TOKEN, base_url=api).run()
    assert str(info.value) == (
        "GitHub API POST /repos/octo/hello/git/refs returned 422 UNPROCESSABLE ENTITY: Reference already exists"
    )


async def test_api_errors_fail_with_status_and_message_but_never_the_token(
    httpserver: HTTPServer, api: str, caplog: pytest.LogCaptureFixture
) -> None:
    # the fake API echoes the token back, as a careless proxy might
    httpserver.expect_request("/api/v3/repos/octo/hello/issues", method="POST").respond_with_json(
        {"message": f"Bad credentials: {TOKEN}", "documentation_url": "https://docs.github.com/rest"}, status=401
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HttpStatusFail) as info:
        await OpenGitHubIssue(repo="octo/hello", title="t", token=TOKEN, base_url=api).run()
    message = str(info.value)
    assert message == "GitHub API POST /repos/octo/hello/issues returned 401 UNAUTHORIZED: Bad credentials: ****"
    assert info.value.status_code == 401
    ours = [r for r in caplog.records if r.name.startswith(("aflow", "httpx", "httpcore"))]
    assert ours
    assert not [r for r in ours if TOKEN in r.getMessage()]


async def test_validation_errors_show_githubs_errors(httpserver: HTTPServer, api: str) -> None:
    httpserver.expect_request("/api/v3/repos/octo/hello/pulls", method="POST").respond_with_json(
        {"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "invalid", "field": "head"}]},
        status=422,
    )
    t = CreateGitHubPR(repo="octo/hello", title="t", head="nope", base="main", token=TOKEN, base_url=api)
    with pytest.raises(HttpStatusFail, match=r"422 UNPROCESSABLE ENTITY: Validation Failed \[.*'field': 'head'"):
        await t.run()


# -- in a flow ----------------------------------------------------------------------------------


async def test_issue_then_comment_in_a_flow_with_the_token_secret(httpserver: HTTPServer, api: str) -> None:
    httpserver.expect_request(
        "/api/v3/repos/octo/hello/issues", method="POST", headers=AUTH, json={"title": "T", "body": None, "labels": []}
    ).respond_with_json({"number": 41}, status=201)
    httpserver.expect_request(
        "/api/v3/repos/octo/hello/issues/41/comments", method="POST", headers=AUTH, json={"body": "first!"}
    ).respond_with_json({"id": 5}, status=201)
    with Flow("github") as flow:
        issue = OpenGitHubIssue(repo="octo/hello", title="T", base_url=api)()
        comment = CreateIssueComment(repo="octo/hello", body="first!", base_url=api)(issue_number=issue["number"])
    state = await flow.run(context={"secrets": {"GITHUB_ACCESS_TOKEN": TOKEN}})
    assert state.is_successful()
    assert state.result[issue].result == {"number": 41}
    assert state.result[comment].result == {"id": 5}
    httpserver.check_assertions()


async def test_lazy_token_and_server_errors_retried_in_a_flow(httpserver: HTTPServer, api: str) -> None:
    answers = [
        Response('{"message": "Server Error"}', status=502, content_type="application/json"),
        Response('{"stargazers_count": 3}', content_type="application/json"),
    ]

    def handler(request: Request) -> Response:
        assert request.headers["Authorization"] == f"token {TOKEN}"
        return answers.pop(0)

    httpserver.expect_request("/api/v3/repos/octo/hello").respond_with_handler(handler)
    clock = FakeClock()
    with Flow("github") as flow:
        info = GetRepoInfo(
            repo="octo/hello",
            info_keys=["stargazers_count"],
            token=aflow.Secret("GH"),
            base_url=api,
            max_retries=2,
            retry_delay=10,
        )()
    state = await flow.run(clock=clock, context={"secrets": {"GH": TOKEN}})
    assert state.result[info].result == {"stargazers_count": 3}
    assert clock.sleeps == [10]  # no Retry-After: the task's retry_delay


async def test_a_token_secret_given_to_the_call_is_resolved(httpserver: HTTPServer, api: str) -> None:
    httpserver.expect_request("/api/v3/repos/octo/hello", headers=AUTH).respond_with_json({"id": 8})
    with Flow("github") as flow:
        info = GetRepoInfo(repo="octo/hello", base_url=api)(token=aflow.Secret("GH"))
    state = await flow.run(context={"secrets": {"GH": TOKEN}})
    assert state.result[info].result == {"id": 8}
    httpserver.check_assertions()
