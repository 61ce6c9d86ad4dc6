"""GitHub tasks on the REST API (v3): issues, pull requests, comments, repository info, branches.

The task names and arguments are Prefect 1's (``prefect.tasks.github``). Requests go through the
flow run's shared HTTP client (see `aflow_tasks.http`), authenticated with
``Authorization: token <token>``. The token is a string or a lazy secret given to ``__init__`` or
to the call; when it is None, the task reads the secret named by ``token_secret``
(``GITHUB_ACCESS_TOKEN``): from the run context's ``secrets``, else the environment variable
``AFLOW__CONTEXT__SECRETS__GITHUB_ACCESS_TOKEN`` (see `aflow.Secret`). The token never appears in
a message or a log line. An error answer from the API fails the task with its status and GitHub's
message; a 429 or 5xx is retried while ``max_retries`` allows (`aflow.integration.retry_or_fail`).
Tests inject a client through `aflow_tasks.http.clients`.

Needs the ``http`` extra: ``pip install aflow-engine[http]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aflow import Task, defaults_from_attrs
from aflow.signals import FAIL

from .http import HttpStatusFail, decode_response, lookup_secret, require_httpx, resolve_value, send_request

if TYPE_CHECKING:
    import httpx

__all__ = (
    "DEFAULT_BASE_URL",
    "CreateBranch",
    "CreateGitHubPR",
    "CreateIssueComment",
    "GetRepoInfo",
    "OpenGitHubIssue",
)

DEFAULT_BASE_URL = "https://api.github.com"
"""The GitHub REST API (GitHub Enterprise Server: ``https://HOST/api/v3``)."""

_ACCEPT = "application/vnd.github+json"


class _GitHubTask(Task):
    """What the GitHub tasks share: the token, the API's base URL and the request helper."""

    def __init__(
        self,
        *,
        token: Any = None,
        token_secret: str | None = "GITHUB_ACCESS_TOKEN",
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        require_httpx("github")
        self.token = token
        self.token_secret = token_secret
        self.base_url = base_url
        self.transport = transport
        super().__init__(**kwargs)

    async def _token(self, token: Any, required: bool = True) -> str | None:
        token = await resolve_value(token)
        if token is None:
            token = await lookup_secret(self.token_secret)
        if token is None and required:
            where = f", or set the secret {self.token_secret!r} (see aflow.Secret)"
            raise ValueError(
                f"{type(self).__name__} needs a GitHub token: pass token= (a string or a lazy secret) "
                f"at initialization or to the call{where if self.token_secret else ''}"
            )
        return None if token is None else str(token)

    async def _api(self, method: str, path: str, token: str | None, body: Any = None) -> Any:
        headers = {"Accept": _ACCEPT, "X-GitHub-Api-Version": "2022-11-28"}
        secrets = []
        if token is not None:
            headers["Authorization"] = f"token {token}"
            secrets.append(token)
        label = f"GitHub API {method} {path}"
        response = await send_request(
            self,
            method,
            self.base_url.rstrip("/") + path,
            json=body,
            headers=headers,
            transport=self.transport,
            label=label,
            secrets=secrets,
            family="github",
        )
        return decode_response(response, "json", label)


def _need(value: Any, arg: str, task: str, example: str = "") -> None:
    if value is None:
        hint = f" ({example})" if example else ""
        raise ValueError(f"{task} needs {arg}: give it at initialization or to the call ({arg}=...){hint}")


def _repo_path(repo: str | None, task: str) -> str:
    _need(repo, "repo", task, 'repo="owner/name"')
    owner, sep, name = str(repo).strip("/").partition("/")
    if not sep or not owner or not name or "/" in name:
        raise ValueError(f'{task}: repo must be "owner/name", got {repo!r}')
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


class OpenGitHubIssue(_GitHubTask):
    """Open an issue in a GitHub repository.

    Args:
        repo: The repository, ``"owner/name"``. Defaults to None (give it to the call).
        title: The issue's title. Defaults to None.
        body: The issue's text (Markdown). Defaults to None.
        labels: Label names to apply. Defaults to None (no labels; stored as ``[]``).
        token: A GitHub token (string or lazy secret). Defaults to None: read the secret
            named ``token_secret``.
        token_secret: The name of the secret (see `aflow.Secret`) holding the token, read when
            ``token`` is None. Defaults to ``"GITHUB_ACCESS_TOKEN"``.
        base_url: The API's root URL. Defaults to ``"https://api.github.com"``.
        transport: An ``httpx.AsyncBaseTransport`` for the shared client (tests). Defaults to None.
        **kwargs: `aflow.Task` arguments (``max_retries``, ``name``...).
    """

    def __init__(
        self,
        repo: str | None = None,
        title: str | None = None,
        body: str | None = None,
        labels: Iterable[str] | None = None,
        token: Any = None,
        token_secret: str | None = "GITHUB_ACCESS_TOKEN",
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        self.repo = repo
        self.title = title
        self.body = body
        self.labels = list(labels) if labels is not None else []
        super().__init__(token=token, token_secret=token_secret, base_url=base_url, transport=transport, **kwargs)

    @defaults_from_attrs("repo", "title", "body", "labels", "token")
    async def run(
        self,
        repo: str | None = None,
        title: str | None = None,
        body: str | None = None,
        labels: Iterable[str] | None = None,
        token: str | None = None,
    ) -> Any:
        """Open the issue.

        Every argument defaults to the one given at initialization.

        Args:
            repo: The repository, ``"owner/name"`` (required).
            title: The issue's title (required).
            body: The issue's text.
            labels: Label names to apply.
            token: A GitHub token (string or lazy secret).

        Returns:
            The created issue, as GitHub returns it (``number``, ``html_url``...).

        Raises:
            ValueError: If the repo, the title or the token is missing.
            FAIL: If GitHub refuses the request or cannot be reached.
        """
        path = _repo_path(repo, "OpenGitHubIssue")
        _need(title, "title", "OpenGitHubIssue")
        secret = await self._token(token)
        issue = {"title": title, "body": body, "labels": list(labels or [])}
        return await self._api("POST", f"{path}/issues", secret, issue)


class CreateGitHubPR(_GitHubTask):
    """Open a pull request in a GitHub repository.

    Args:
        repo: The repository, ``"owner/name"``. Defaults to None (give it to the call).
        title: The pull request's title. Defaults to None.
        body: The pull request's text (Markdown). Defaults to None.
        head: The branch holding the changes (``"user:branch"`` across forks). Defaults to None.
        base: The branch to merge into. Defaults to None.
        token: A GitHub token (string or lazy secret). Defaults to None: read the secret
            named ``token_secret``.
        token_secret: The secret holding the token when ``token`` is None. Defaults to
            ``"GITHUB_ACCESS_TOKEN"``.
        base_url: The API's root URL. Defaults to ``"https://api.github.com"``.
        transport: An ``httpx.AsyncBaseTransport`` for the shared client (tests). Defaults to None.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        repo: str | None = None,
        title: str | None = None,
        body: str | None = None,
        head: str | None = None,
        base: str | None = None,
        token: Any = None,
        token_secret: str | None = "GITHUB_ACCESS_TOKEN",
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        self.repo = repo
        self.title = title
        self.body = body
        self.head = head
        self.base = base
        super().__init__(token=token, token_secret=token_secret, base_url=base_url, transport=transport, **kwargs)

    @defaults_from_attrs("repo", "title", "body", "head", "base", "token")
    async def run(
        self,
        repo: str | None = None,
        title: str | None = None,
        body: str | None = None,
        head: str | None = None,
        base: str | None = None,
        token: str | None = None,
    ) -> Any:
        """Open the pull request.

        Every argument defaults to the one given at initialization.

        Args:
            repo: The repository, ``"owner/name"`` (required).
            title: The title (required).
            body: The text.
            head: The branch holding the changes (required).
            base: The branch to merge into (required).
            token: A GitHub token (string or lazy secret).

        Returns:
            The created pull request, as GitHub returns it (``number``, ``html_url``...).

        Raises:
            ValueError: If a required value or the token is missing.
            FAIL: If GitHub refuses the request or cannot be reached.
        """
        path = _repo_path(repo, "CreateGitHubPR")
        _need(title, "title", "CreateGitHubPR")
        _need(head, "head", "CreateGitHubPR", "the branch with the changes")
        _need(base, "base", "CreateGitHubPR", "the branch to merge into")
        secret = await self._token(token)
        pr = {"title": title, "body": body, "head": head, "base": base}
        return await self._api("POST", f"{path}/pulls", secret, pr)


class CreateIssueComment(_GitHubTask):
    """Comment on a GitHub issue or pull request.

    Args:
        repo: The repository, ``"owner/name"``. Defaults to None (give it to the call).
        issue_number: The number of the issue or pull request. Defaults to None.
        body: The comment's text (Markdown). Defaults to None.
        token: A GitHub token (string or lazy secret). Defaults to None: read the secret
            named ``token_secret``.
        token_secret: The secret holding the token when ``token`` is None. Defaults to
            ``"GITHUB_ACCESS_TOKEN"``.
        base_url: The API's root URL. Defaults to ``"https://api.github.com"``.
        transport: An ``httpx.AsyncBaseTransport`` for the shared client (tests). Defaults to None.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        repo: str | None = None,
        issue_number: int | None = None,
        body: str | None = None,
        token: Any = None,
        token_secret: str | None = "GITHUB_ACCESS_TOKEN",
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        self.repo = repo
        self.issue_number = issue_number
        self.body = body
        super().__init__(token=token, token_secret=token_secret, base_url=base_url, transport=transport, **kwargs)

    @defaults_from_attrs("repo", "issue_number", "body", "token")
    async def run(
        self,
        repo: str | None = None,
        issue_number: int | None = None,
        body: str | None = None,
        token: str | None = None,
    ) -> Any:
        """Post the comment.

        Every argument defaults to the one given at initialization.

        Args:
            repo: The repository, ``"owner/name"`` (required).
            issue_number: The issue or pull request number (required).
            body: The comment's text (required).
            token: A GitHub token (string or lazy secret).

        Returns:
            The created comment, as GitHub returns it (``id``, ``html_url``...).

        Raises:
            ValueError: If a required value or the token is missing.
            FAIL: If GitHub refuses the request or cannot be reached.
        """
        path = _repo_path(repo, "CreateIssueComment")
        _need(issue_number, "issue_number", "CreateIssueComment")
        _need(body, "body", "CreateIssueComment")
        try:
            number = int(issue_number)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"CreateIssueComment: issue_number must be an int, got {issue_number!r}") from None
        secret = await self._token(token)
        return await self._api("POST", f"{path}/issues/{number}/comments", secret, {"body": body})


class GetRepoInfo(_GitHubTask):
    """Read information about a GitHub repository.

    Args:
        repo: The repository, ``"owner/name"``. Defaults to None (give it to the call).
        info_keys: The fields to return (``["stargazers_count", "open_issues_count"]``); see
            GitHub's "Get a repository". Defaults to None (stored as ``[]``): every field.
        token: A GitHub token (string or lazy secret). Defaults to None: read the secret
            named ``token_secret``; a public repository can be read without one.
        token_secret: The secret holding the token when ``token`` is None. Defaults to
            ``"GITHUB_ACCESS_TOKEN"``.
        base_url: The API's root URL. Defaults to ``"https://api.github.com"``.
        transport: An ``httpx.AsyncBaseTransport`` for the shared client (tests). Defaults to None.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        repo: str | None = None,
        info_keys: Iterable[str] | None = None,
        token: Any = None,
        token_secret: str | None = "GITHUB_ACCESS_TOKEN",
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        self.repo = repo
        self.info_keys = list(info_keys) if info_keys is not None else []
        super().__init__(token=token, token_secret=token_secret, base_url=base_url, transport=transport, **kwargs)

    @defaults_from_attrs("repo", "info_keys", "token")
    async def run(
        self,
        repo: str | None = None,
        info_keys: Iterable[str] | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Fetch the repository's information.

        Every argument defaults to the one given at initialization.

        Args:
            repo: The repository, ``"owner/name"`` (required).
            info_keys: The fields to return; empty or None returns every field.
            token: A GitHub token (string or lazy secret); optional for a public repository.

        Returns:
            ``{key: value}`` for each of ``info_keys``, or the whole repository object.

        Raises:
            ValueError: If no repo was given.
            FAIL: If GitHub refuses the request, cannot be reached, or lacks one of ``info_keys``.
        """
        path = _repo_path(repo, "GetRepoInfo")
        secret = await self._token(token, required=False)
        data = await self._api("GET", path, secret)
        if not isinstance(data, dict):
            raise FAIL(f"GitHub API GET {path} returned {type(data).__name__}, not an object")
        keys = list(info_keys or [])
        if not keys:
            return data
        missing = [k for k in keys if k not in data]
        if missing:
            raise FAIL(f"GitHub API GET {path}: the repository has no field(s) {', '.join(map(repr, missing))}")
        return {key: data[key] for key in keys}


class CreateBranch(_GitHubTask):
    """Create a branch in a GitHub repository from the head of another branch.

    Args:
        repo: The repository, ``"owner/name"``. Defaults to None (give it to the call).
        base: The branch to branch off (Prefect 1's name). Defaults to ``"main"``.
        branch_name: The name of the new branch. Defaults to None.
        token: A GitHub token (string or lazy secret). Defaults to None: read the secret
            named ``token_secret``.
        token_secret: The secret holding the token when ``token`` is None. Defaults to
            ``"GITHUB_ACCESS_TOKEN"``.
        base_url: The API's root URL. Defaults to ``"https://api.github.com"``.
        transport: An ``httpx.AsyncBaseTransport`` for the shared client (tests). Defaults to None.
        **kwargs: `aflow.Task` arguments.
    """

    def __init__(
        self,
        repo: str | None = None,
        base: str = "main",
        branch_name: str | None = None,
        token: Any = None,
        token_secret: str | None = "GITHUB_ACCESS_TOKEN",
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        **kwargs: Any,
    ) -> None:
        self.repo = repo
        self.base = base
        self.branch_name = branch_name
        super().__init__(token=token, token_secret=token_secret, base_url=base_url, transport=transport, **kwargs)

    @defaults_from_attrs("repo", "base", "branch_name", "token")
    async def run(
        self,
        repo: str | None = None,
        base: str | None = None,
        branch_name: str | None = None,
        token: str | None = None,
    ) -> Any:
        """Create the branch.

        Every argument defaults to the one given at initialization.

        Args:
            repo: The repository, ``"owner/name"`` (required).
            base: The branch to branch off (required).
            branch_name: The name of the new branch (required).
            token: A GitHub token (string or lazy secret).

        Returns:
            The new git reference, as GitHub returns it (``ref``, ``object.sha``...).

        Raises:
            ValueError: If a required value or the token is missing.
            FAIL: If the base branch does not exist, the branch exists already, or GitHub
                refuses the request or cannot be reached.
        """
        path = _repo_path(repo, "CreateBranch")
        _need(branch_name, "branch_name", "CreateBranch")
        _need(base, "base", "CreateBranch", "the branch to branch off")
        secret = await self._token(token)
        ref = await self._base_ref(path, str(base), secret)
        sha = (ref.get("object") or {}).get("sha") if isinstance(ref, dict) else None
        if not sha:
            raise FAIL(f"CreateBranch: GitHub gave no commit for the base branch {base!r} of {repo}")
        new_ref = {"ref": f"refs/heads/{branch_name}", "sha": sha}
        return await self._api("POST", f"{path}/git/refs", secret, new_ref)

    async def _base_ref(self, path: str, base: str, token: str | None) -> Any:
        try:
            return await self._api("GET", f"{path}/git/ref/heads/{quote(base, safe='/')}", token)
        except HttpStatusFail as fail:
            if fail.status_code == 404:
                raise FAIL(f"CreateBranch: the base branch {base!r} does not exist ({fail.message})") from None
            raise
