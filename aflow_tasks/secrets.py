"""Secret tasks: a secret's value as a task result, for flows that pass it downstream.

Secret tasks never persist their result: they are created with ``checkpoint=False`` (which a
flow's ``checkpoint=True`` does not override) and refuse ``checkpoint=True``, ``result``,
``target`` and ``cache_for``. Every value they return is registered for redaction (see
`aflow.secrets`). To give a secret to a single task attribute, `aflow.Secret` is simpler: it is
read when that task runs, without a task of its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aflow import Task, defaults_from_attrs
from aflow.secrets import Secret, register

__all__ = ("EnvVarSecret", "GetSecret", "SecretBase")

_FORBIDDEN = ("result", "target", "cache_for")


def _check_task_args(cls_name: str, task_args: dict[str, Any], init: bool) -> None:
    checkpoint = task_args.get("checkpoint", False)
    if checkpoint is not False and not (init and checkpoint is None):
        raise ValueError(f"{cls_name} results are never checkpointed: checkpoint={checkpoint!r} is not allowed")
    for attr in _FORBIDDEN:
        if task_args.get(attr) is not None:
            raise ValueError(f"{cls_name} results are never persisted or cached: {attr}= is not allowed")


class SecretBase(Task):
    """Base of tasks that return secrets: their results are never checkpointed, cached or stored.

    Args:
        **kwargs: `aflow.Task` attributes; ``checkpoint`` is always False, and ``result``,
            ``target`` and ``cache_for`` are refused.

    Raises:
        ValueError: If ``checkpoint=True``, ``result``, ``target`` or ``cache_for`` is given.
    """

    def __init__(self, **kwargs: Any) -> None:
        _check_task_args(type(self).__name__, kwargs, init=True)
        kwargs["checkpoint"] = False
        super().__init__(**kwargs)

    @property
    def checkpoint(self) -> bool:
        """Always False: a flow's ``checkpoint=True`` does not apply to secret tasks."""
        return False

    @checkpoint.setter
    def checkpoint(self, value: bool | None) -> None:
        if value is not False:
            raise ValueError(f"{type(self).__name__} results are never checkpointed: checkpoint={value!r}")

    def run(self) -> Any:
        """Do nothing and return None, as Prefect 1's ``SecretBase``: subclasses override it.

        Returns:
            None.
        """
        return None

    def copy(self, **task_args: Any) -> Task:
        """Return a copy (see `aflow.Task.copy`); persistence settings are refused as in ``__init__``."""
        _check_task_args(type(self).__name__, task_args, init=False)
        return super().copy(**task_args)


class GetSecret(SecretBase):
    """Return the value of a local secret (as Prefect 1's ``PrefectSecret``).

    The secret is read from the run context's ``secrets``, else from the environment variable
    ``AFLOW__CONTEXT__SECRETS__<NAME>``; a JSON string is decoded (see `aflow.Secret`). As in
    Prefect 1, the task is named after its secret unless ``task_args={"name": ...}`` renames it.

    Args:
        name: The secret's name (default None: give it to the call). It is also the task's name.
        **kwargs: `aflow.Task` attributes (see `SecretBase`).
    """

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        self.secret_name = name
        super().__init__(name=name, **kwargs)

    async def run(self, name: str | None = None) -> Any:
        """Read the secret.

        Args:
            name: The secret's name (default None: the one given at initialization).

        Returns:
            The secret's value (JSON-decoded when it is a JSON string).

        Raises:
            ValueError: If no name was given, at initialization or in the call.
            aflow.exceptions.SecretNotFound: If the secret is not set.
        """
        if name is None:
            name = self.secret_name
        if name is None:
            raise ValueError("GetSecret needs the secret's name: GetSecret(name='TOKEN') or call it with name=")
        return Secret(name).get()


class EnvVarSecret(SecretBase):
    """Return the value of an environment variable, as a secret (Prefect 1 semantics).

    The value is not JSON-decoded (use ``cast=json.loads`` for that).

    Args:
        name: The environment variable (default None: give it to the call). It is also the task's name.
        cast: A function applied to the value when it is set (``int``, ``json.loads``...); default None.
        raise_if_missing: Fail when the variable is not set, instead of returning None (default False).
        **kwargs: `aflow.Task` attributes (see `SecretBase`).
    """

    def __init__(
        self,
        name: str | None = None,
        cast: Callable[[str], Any] | None = None,
        raise_if_missing: bool = False,
        **kwargs: Any,
    ) -> None:
        self.env_var = name
        self.cast = cast
        self.raise_if_missing = raise_if_missing
        super().__init__(name=name, **kwargs)

    @defaults_from_attrs("cast", "raise_if_missing")
    async def run(
        self, name: str | None = None, cast: Callable[[str], Any] | None = None, raise_if_missing: bool | None = None
    ) -> Any:
        """Read the environment variable.

        Args:
            name: The variable's name (default None: the one given at initialization).
            cast: A function applied to the value (default None: the one given at initialization).
            raise_if_missing: Fail when the variable is not set (default None: the initialization's).

        Returns:
            The value (cast if ``cast`` is given), or None when the variable is not set.

        Raises:
            ValueError: If no name was given, or the variable is not set and ``raise_if_missing``.
        """
        if name is None:
            name = self.env_var
        if name is None:
            raise ValueError("EnvVarSecret needs the variable's name: EnvVarSecret(name='TOKEN') or call it with name=")
        value = os.environ.get(name)
        if value is None:
            if raise_if_missing:
                raise ValueError(f"Environment variable not set: {name}")
            return None
        register(value)  # before the cast: a cast error may quote the value
        if cast is None:
            return value
        cast_value = cast(value)
        register(cast_value)
        return cast_value
