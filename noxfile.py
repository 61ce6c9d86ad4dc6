"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``demo``, ``bench``, ``bench-quick``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy>=1.11", "types-aiofiles>=23.2")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    session.install("-e", ".")
    session.run("python", "examples/demo.py")


@nox.session
def bench(session: nox.Session) -> None:
    """The full benchmark suite (bench/README.md); posargs go to bench/run.py (--json PATH, --only W1...)."""
    session.install("-e", ".")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(name="bench-quick")
def bench_quick(session: nox.Session) -> None:
    """The quick mode: small Ns, under a minute, fails only on a wrong result."""
    session.install("-e", ".")
    session.run("python", "bench/run.py", "--quick", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """The docs site, offline, in strict mode: reference pages from docs/outline.toml, then mkdocs."""
    session.install("-e", ".[docs]")
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # hides Material's end-of-life notice
    session.run("python", "scripts/gen_ref_pages.py")
    session.run("mkdocs", "build", "--strict", *session.posargs)
