"""`DbtShellTask`: dbt Core commands through the shell, with a generated ``profiles.yml``."""

from __future__ import annotations

import importlib
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from aflow import defaults_from_attrs, signals
from aflow.integration import is_lazy, resolve_lazy
from aflow.secrets import register
from aflow_tasks.shell import ShellTask, _command, _Output, _resolve_env

__all__ = ("DbtShellTask",)

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# dbt's summary names each failing node: "Failure in model broken (models/broken.sql)",
# "Runtime Error in model broken (...)", "Failure in test not_null_x (models/schema.yml)"
_FAILED_NODE = re.compile(
    r"\b(?:Failure|Error) in (model|test|seed|snapshot|unit_test|source|analysis|operation|hook) ([^\s(]+)"
)


class _DbtOutput(_Output):
    """ShellTask's output, also noting the nodes dbt reports as failing."""

    __slots__ = ("failed",)

    def __init__(self, logger: logging.Logger | logging.LoggerAdapter[Any], level: int | bool, **kwargs: bool) -> None:
        super().__init__(logger, level, **kwargs)
        self.failed: dict[str, None] = {}  # "model broken", in the order dbt reports them
        keep = self.on_stdout

        def on_stdout(line: str) -> None:
            line = _ANSI.sub("", line)
            found = _FAILED_NODE.search(line)
            if found:
                self.failed.setdefault(f"{found.group(1)} {found.group(2)}")
            keep(line)

        self.on_stdout = on_stdout


def _profiles_exist(profiles_dir: str | None, env: Mapping[str, Any]) -> bool:
    """Whether dbt finds a ``profiles.yml``: in ``$DBT_PROFILES_DIR``, ``profiles_dir``, else ``~/.dbt``."""
    envar = env.get("DBT_PROFILES_DIR") or os.environ.get("DBT_PROFILES_DIR")
    if envar:
        where = os.path.expanduser(str(envar))
    elif profiles_dir:
        where = profiles_dir
    else:
        where = os.path.join(os.path.expanduser("~"), ".dbt")
    return os.path.exists(os.path.join(where, "profiles.yml"))


def _write_profiles(path: str, profile_name: str, environment: str, dbt_kwargs: Mapping[str, Any]) -> None:
    yaml: Any = importlib.import_module("yaml")  # a dependency of dbt-core (untyped here)
    profile = {profile_name: {"outputs": {environment: dict(dbt_kwargs)}, "target": environment}}
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(profile, f, default_flow_style=False)


class DbtShellTask(ShellTask):
    """Run a dbt command through the shell, writing a ``profiles.yml`` first when needed.

    As in Prefect 1, a ``profiles.yml`` is written (from ``profile_name``, ``environment`` and
    ``dbt_kwargs``: ``{profile_name: {"outputs": {environment: dbt_kwargs}, "target":
    environment}}``) when ``overwrite_profiles`` is set or when none is found: dbt's own lookup is
    followed, ``$DBT_PROFILES_DIR`` first, then ``profiles_dir``, then ``~/.dbt``. The file goes to
    ``profiles_dir`` (``~/.dbt`` when it is None). With ``set_profiles_envar``, the command runs
    with ``DBT_PROFILES_DIR`` set to that directory; unlike Prefect 1 this is set in the command's
    environment only, never in ``os.environ`` (tasks run concurrently in one process).

    dbt's output streams to the task's logger line by line as dbt prints it (``stream_output``
    defaults to True here, so each node's start and result is logged while dbt runs; dbt's
    colours are turned off unless ``DBT_USE_COLORS`` is set). A non-zero exit fails the task
    (`aflow.signals.FAIL`) with the exit code and the nodes dbt reported as failing
    (``model broken``), then dbt's last lines. A cancelled or timed-out task stops dbt (its whole
    process group) as `aflow_tasks.shell.ShellTask` does.

    Example::

        from aflow import Flow
        from aflow_tasks.dbt import DbtShellTask

        dbt = DbtShellTask(
            profile_name="jaffle_shop",
            environment="dev",
            dbt_kwargs={"type": "duckdb", "path": "jaffle.duckdb", "threads": 4},
            profiles_dir="/srv/jaffle_shop",
            overwrite_profiles=True,
            cwd="/srv/jaffle_shop",
        )
        with Flow("dbt") as flow:
            seeded = dbt(command="dbt seed")
            dbt(command="dbt run", upstream_tasks=[seeded])

    Args:
        command: The dbt command (``"dbt run --select orders"``); can also be given at run time.
        profile_name: The profile's name in the ``profiles.yml`` written (the ``profile`` of your
            ``dbt_project.yml``); needed only when a file is written.
        env: Environment variables for the command, merged over ``os.environ`` (lazy values
            such as an `aflow.Secret` are read at run time and kept out of logs); can also be
            given at run time.
        environment: The target's name in the ``profiles.yml`` written (also its default
            ``target``); needed only when a file is written.
        overwrite_profiles: Write ``profiles.yml`` even when one is found. Defaults to False.
        profiles_dir: The directory of the ``profiles.yml`` written (and read); None for
            ``~/.dbt``.
        set_profiles_envar: Run the command with ``DBT_PROFILES_DIR`` set to the profiles
            directory. Defaults to True.
        dbt_kwargs: The target's settings written to ``profiles.yml`` (``{"type": "duckdb",
            "path": ..., "threads": 4}``); values may be lazy (read at run time, kept out of
            logs). Run-time ``dbt_kwargs`` are merged over these.
        helper_script: Shell code run before the command (``cd`` into the project...); can also
            be given at run time.
        shell: The shell that runs the script. Defaults to ``"bash"``.
        return_all: Return all lines of stdout as a list instead of the last one. Defaults to
            False.
        log_stderr: On failure, log dbt's stderr at ERROR. Defaults to False.
        **kwargs: `aflow_tasks.shell.ShellTask` arguments (``stream_output``, default True here;
            ``cwd``, ``kill_grace``) and `Task` arguments (``name``, ``timeout``...).
    """

    def __init__(
        self,
        command: str | None = None,
        profile_name: str | None = None,
        env: Mapping[str, Any] | None = None,
        environment: str | None = None,
        overwrite_profiles: bool = False,
        profiles_dir: str | os.PathLike[str] | None = None,
        set_profiles_envar: bool = True,
        dbt_kwargs: Mapping[str, Any] | None = None,
        helper_script: str | None = None,
        shell: str = "bash",
        return_all: bool = False,
        log_stderr: bool = False,
        **kwargs: Any,
    ) -> None:
        self.profile_name = profile_name
        self.environment = environment
        self.overwrite_profiles = overwrite_profiles
        self.profiles_dir = os.fspath(profiles_dir) if profiles_dir is not None else None
        self.set_profiles_envar = set_profiles_envar
        self.dbt_kwargs: Mapping[str, Any] = dbt_kwargs or {}
        kwargs.setdefault("stream_output", True)
        super().__init__(
            command=command,
            env=env,
            helper_script=helper_script,
            shell=shell,
            return_all=return_all,
            log_stderr=log_stderr,
            **kwargs,
        )

    async def _profiles(self, env: Mapping[str, Any], dbt_kwargs: Mapping[str, Any] | None) -> str | None:
        """Write ``profiles.yml`` if needed; return the profiles directory to announce (or None)."""
        profiles_dir = self.profiles_dir
        if self.overwrite_profiles or not _profiles_exist(profiles_dir, env):
            for name in ("profile_name", "environment"):
                if not getattr(self, name):
                    raise ValueError(
                        f"DbtShellTask needs {name} to write profiles.yml (none was found, or "
                        f"overwrite_profiles=True): pass {name}= to DbtShellTask(...)"
                    )
            merged: dict[str, Any] = {}
            for key, value in {**self.dbt_kwargs, **(dbt_kwargs or {})}.items():
                if value is not None and is_lazy(value):
                    value = await resolve_lazy(value)
                    register(str(value))
                merged[key] = value
            if profiles_dir is None:
                profiles_dir = os.path.join(os.path.expanduser("~"), ".dbt")  # noqa: ASYNC240 (no I/O)
            os.makedirs(profiles_dir, exist_ok=True)
            path = os.path.join(profiles_dir, "profiles.yml")
            _write_profiles(path, str(self.profile_name), str(self.environment), merged)
            self.logger.debug("Wrote %s (profile %r, target %r)", path, self.profile_name, self.environment)
        return profiles_dir if self.set_profiles_envar else None

    @defaults_from_attrs("command", "env", "helper_script", "cwd")
    async def run(  # type: ignore[override]
        self,
        command: str | None = None,
        env: Mapping[str, Any] | None = None,
        helper_script: str | None = None,
        dbt_kwargs: Mapping[str, Any] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> str | list[str] | None:
        """Write ``profiles.yml`` if needed, run the dbt command and return its output.

        Args:
            command: The dbt command. Defaults to the task's ``command``.
            env: Environment variables merged over ``os.environ``. Defaults to the task's ``env``.
            helper_script: Shell code run before the command. Defaults to the task's.
            dbt_kwargs: Target settings merged over the task's ``dbt_kwargs`` for the
                ``profiles.yml`` written.
            cwd: The working directory (the dbt project). Defaults to the task's ``cwd``.

        Returns:
            The last line of dbt's stdout (None if it printed nothing), or all lines with
            ``return_all``.

        Raises:
            ValueError: If no command was given, or a ``profiles.yml`` must be written without
                ``profile_name`` or ``environment``.
            aflow.signals.FAIL: If dbt exits with a non-zero code (the message names the exit
                code and the failing nodes).
        """
        if command is None:
            raise ValueError(
                "DbtShellTask needs a command: pass command= to DbtShellTask(...), to the call in a flow or to run()"
            )
        resolved = dict(await _resolve_env(env) or {})
        profiles_dir = await self._profiles(resolved, dbt_kwargs)
        if profiles_dir is not None:
            resolved["DBT_PROFILES_DIR"] = profiles_dir
        if "DBT_USE_COLORS" not in resolved and "DBT_USE_COLORS" not in os.environ:
            resolved["DBT_USE_COLORS"] = "false"
        script, full_env, workdir = _command(command, helper_script, resolved, cwd)
        output = _DbtOutput(self.logger, self.stream_output, return_all=self.return_all, log_stderr=self.log_stderr)
        returncode = await self._execute(script, full_env, workdir, output)
        out = output.out
        result: str | list[str] | None = out if isinstance(out, list) else (out[-1] if out else None)
        if returncode:
            try:
                self._fail(returncode, out, output.err, output.err_count, result)
            except signals.FAIL as exc:
                nodes = ", ".join(output.failed) or "no failing node reported"
                message = f"dbt failed with exit code {returncode} ({nodes})\n{exc.message}"
                raise signals.FAIL(message, result=result) from None
        return result
