"""Local secrets: values read when a task runs, and kept out of logs and state messages.

`Secret` names a secret without holding its value. Give it as a task attribute and it is read
when the task runs (it is a lazy default, see `aflow.LazyDefault`)::

    from aflow.secrets import Secret

    send = EmailTask(username="me@example.com", password=Secret("EMAIL_PASSWORD"))
    await flow.run(context={"secrets": {"EMAIL_PASSWORD": "hunter2"}})

A secret is looked up in the run context first (``flow.run(context={"secrets": {...}})``),
then in the environment variable ``AFLOW__CONTEXT__SECRETS__<NAME>``. A string value that
parses as JSON is decoded, as in Prefect 1 (``'{"user": "u", "key": "k"}'`` gives a dict).

Every value read is registered for redaction: `redact` replaces it with ``****``, aflow's task
loggers and the messages of failed task states are redacted, and `RedactSecrets` does the same
for any logging handler you add it to. Strings shorter than 3 characters are not redacted (they
would mask text everywhere and hide nothing). The registry lives as long as the process.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

from . import context
from .exceptions import SecretNotFound

__all__ = ("ENV_PREFIX", "REDACTED", "RedactSecrets", "Secret", "active", "redact", "register")

ENV_PREFIX = "AFLOW__CONTEXT__SECRETS__"
"""Prefix of the environment variables that hold secrets: ``AFLOW__CONTEXT__SECRETS__<NAME>``."""

REDACTED = "****"
"""What `redact` puts in place of a secret value."""

_MIN_LENGTH = 3
_lock = threading.Lock()
_values: frozenset[str] = frozenset()
# None while no secret is registered: the engine and the loggers check it and do nothing else
_pattern: re.Pattern[str] | None = None


def _leaves(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [leaf for v in value for leaf in _leaves(v)]
    return []


def register(value: Any) -> None:
    """Redact ``value`` from now on: a string, or the string leaves of dicts, lists and tuples.

    `Secret` registers every value it reads; call this for secrets read in other ways (a secret
    manager's response, a token a task received). Other values (numbers, None) are ignored, and
    so are strings shorter than 3 characters. A string is also redacted in its ``repr`` form
    (backslashes and quotes escaped), as exception messages show it.

    Args:
        value: The secret value.
    """
    global _pattern, _values
    found: set[str] = set()
    for leaf in _leaves(value):
        found.add(leaf)
        found.add(repr(leaf)[1:-1])
    found = {s for s in found if len(s) >= _MIN_LENGTH}
    if found <= _values:
        return
    with _lock:
        values = _values | found
        # longest first: a secret that contains another is masked whole
        alternatives = sorted(values, key=lambda s: (-len(s), s))
        _pattern = re.compile("|".join(map(re.escape, alternatives)))
        _values = frozenset(values)


def _clear() -> None:
    """Forget every registered value (for tests)."""
    global _pattern, _values
    with _lock:
        _values = frozenset()
        _pattern = None


def active() -> bool:
    """Whether any secret value is registered (until then, `redact` returns its text unchanged).

    A cheap check for hot paths: redact only when it returns True.
    """
    return _pattern is not None


def redact(text: str) -> str:
    """Return ``text`` with every registered secret value replaced by ``****``.

    Args:
        text: Any text (a log message, a state message).
    """
    pattern = _pattern
    if pattern is None:
        return text
    return pattern.sub(REDACTED, text)


class RedactSecrets(logging.Filter):
    """A logging filter that replaces secret values in records with ``****``.

    aflow's task loggers carry it already; add it to your own handlers to redact everything
    they write (``handler.addFilter(RedactSecrets())``). It never drops a record. The message
    (with its arguments merged in), the formatted traceback and the stack information are
    redacted; a record without secrets is left untouched.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; always keep it."""
        if _pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it as usual
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            if redact(text) != text:
                record.exc_text = redact(text)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class Secret:
    """A reference to a local secret, read when a task runs.

    The value comes from the run context's ``secrets`` (``flow.run(context={"secrets":
    {"NAME": value}})``), else from the environment variable ``AFLOW__CONTEXT__SECRETS__NAME``.
    A string that parses as JSON is decoded. The value is registered for redaction (see
    `redact`). The repr shows only the name.

    Args:
        name: The secret's name.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a Secret needs a non-empty name, got {name!r}")
        self.name = name

    def __repr__(self) -> str:
        return f"Secret({self.name!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not Secret:
            return NotImplemented
        return self.name == other.name

    def __hash__(self) -> int:
        return hash((Secret, self.name))

    def get(self) -> Any:
        """Read the secret now and return its value (JSON-decoded if it is a JSON string).

        Raises:
            SecretNotFound: The secret is neither in the run context nor in the environment.
        """
        env_var = ENV_PREFIX + self.name
        secrets = context.get("secrets")
        if secrets is not None and not isinstance(secrets, Mapping):
            raise TypeError(f"the context value 'secrets' must be a mapping of names to values, got {secrets!r}")
        if secrets is not None and self.name in secrets:
            value = secrets[self.name]
        elif env_var in os.environ:
            value = os.environ[env_var]
        else:
            raise SecretNotFound(
                f"Secret {self.name!r} not found: looked in the run context "
                f"(flow.run(context={{'secrets': {{{self.name!r}: ...}}}})) and in the environment variable {env_var}"
            )
        register(value)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value
            register(value)
        return value

    async def resolve(self) -> Any:
        """Read the secret (`get`); this makes a Secret a lazy default of task attributes."""
        return self.get()
