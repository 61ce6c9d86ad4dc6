"""Shell tasks: run a command through a shell in a subprocess (modelled on Prefect 1's ``ShellTask``).

The shell family needs no extra: it forks with `subprocess.Popen` and reads the pipes and waits
for the exit from the asyncio event loop. Each command runs in a session (and so a process group)
of its own, and a cancelled run (an engine ``timeout``, a cancelled flow run, a cancelled caller)
terminates the whole group, whenever the cancellation lands (also while the process starts), so
no background job or grandchild outlives the task.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import anyio

from aflow import Task, defaults_from_attrs, signals
from aflow.integration import is_lazy, resolve_lazy
from aflow.secrets import register
from aflow_tasks._shell_process import (
    _locate,
    _remove,
    _script_pipe,
    _signal_group,
    _spawn,
    _wait_group_gone,
    _write_in_thread,
)

__all__ = ("ShellTask",)

_TAIL_LINES = 20  # lines of stdout and of stderr quoted in a failure message
_TAIL_LINE_CHARS = 1000  # longer lines are cut in the failure message
_STDERR_KEEP = 1000  # stderr lines kept for ``log_stderr``


def _stream_level(value: bool | int | str) -> int | bool:
    """Normalise ``stream_output`` to False or a logging level."""
    if value is True:
        return logging.INFO
    if value is False or value is None:
        return False
    if isinstance(value, str):
        level = logging.getLevelName(value.upper())
        if not isinstance(level, int):
            raise ValueError(
                f"stream_output={value!r} is not a logging level name: use True, False, a level number "
                "or a name such as 'INFO' or 'DEBUG'"
            )
        return level
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"stream_output must be a non-negative logging level, got {value!r}")
        return value or False
    raise TypeError(f"stream_output must be a bool, a logging level number or name, got {value!r}")


class _Lines:
    """Splits a byte stream into decoded lines (without their newline) and hands each on."""

    __slots__ = ("_on_line", "_pending")

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self._on_line = on_line
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> None:
        end = chunk.rfind(b"\n")
        if end < 0:
            self._pending += chunk
            return
        if self._pending:
            data = bytes(self._pending) + chunk[:end]
            self._pending = bytearray(chunk[end + 1 :])
        else:
            data = chunk[:end]
            self._pending += chunk[end + 1 :]
        on_line = self._on_line
        for raw in data.split(b"\n"):
            on_line(raw.decode("utf-8", "replace").removesuffix("\r"))

    def flush(self) -> None:
        if self._pending:
            raw, self._pending = bytes(self._pending), bytearray()
            self._on_line(raw.decode("utf-8", "replace").removesuffix("\r"))


async def _resolve_env(env: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``env`` with its lazy values (secrets) read and registered for redaction."""
    if not env or not any(is_lazy(v) for v in env.values()):
        return env
    resolved = {k: (await resolve_lazy(v)) if is_lazy(v) else v for k, v in env.items()}
    register([str(resolved[k]) for k, v in env.items() if is_lazy(v) and resolved[k] is not None])
    return resolved


def _command(
    command: Any, helper_script: str | None, env: Mapping[str, Any] | None, cwd: str | os.PathLike[str] | None
) -> tuple[str, dict[str, str] | None, str | None]:
    """The script to run (the helper script first), its environment and its working directory.

    The environment is None when ``env`` adds nothing: the command inherits ``os.environ`` as it
    is when it starts.
    """
    if command is None:
        raise ValueError(
            "ShellTask needs a command: pass command= to ShellTask(...), to the call in a flow "
            "(task(command=...)) or to run()"
        )
    if not isinstance(command, str):
        raise TypeError(f"command must be a string, got {type(command).__name__}")
    script = f"{helper_script}\n{command}" if helper_script else command
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update((str(k), str(v)) for k, v in env.items())
    return script, full_env, os.fspath(cwd) if cwd is not None else None


class _Output:
    """What a command printed: stdout lines (all, or the tail), stderr's tail, lines streamed to the log."""

    __slots__ = ("err", "err_count", "level", "logger", "on_stdout", "out")

    def __init__(
        self,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        level: int | bool,
        *,
        return_all: bool,
        log_stderr: bool,
    ) -> None:
        self.logger = logger
        self.level = level
        self.out: collections.deque[str] | list[str] = [] if return_all else collections.deque(maxlen=_TAIL_LINES)
        self.err: collections.deque[str] = collections.deque(maxlen=_STDERR_KEEP if log_stderr else _TAIL_LINES)
        self.err_count = 0
        self.on_stdout: Callable[[str], None] = self._stream_line if level else self.out.append

    def _stream_line(self, line: str) -> None:
        self.out.append(line)
        self.logger.log(self.level, line)

    def on_stderr(self, line: str) -> None:
        self.err_count += 1
        self.err.append(line)
        if self.level:
            self.logger.log(self.level, "[stderr] %s", line)


class _Watch:
    """Reads a started command's stdout and stderr and waits for its exit, from the event loop.

    Each pipe feeds its `_Lines` from a reader callback; the exit is seen through a pidfd (Linux)
    or, elsewhere, by polling. `close` removes the callbacks and closes the descriptors.
    """

    __slots__ = ("_fds", "_loop", "_pidfd", "_poll", "exited", "proc", "streams")

    def __init__(self, proc: subprocess.Popen[bytes], stdout_lines: _Lines, stderr_lines: _Lines) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.proc = proc
        self._fds: list[int] = []
        self._pidfd: int | None = None
        self._poll: asyncio.TimerHandle | None = None
        assert proc.stdout is not None
        assert proc.stderr is not None
        self.streams = [self._read(proc.stdout.fileno(), stdout_lines), self._read(proc.stderr.fileno(), stderr_lines)]
        self.exited: asyncio.Future[int] = loop.create_future()
        try:
            self._pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):  # not Linux, or an old kernel: poll
            self._poll = loop.call_later(0.005, self._check_exit, 0.005)
        else:
            loop.add_reader(self._pidfd, self._check_exit, None)

    def _read(self, fd: int, lines: _Lines) -> asyncio.Future[None]:
        loop = self._loop
        done: asyncio.Future[None] = loop.create_future()
        os.set_blocking(fd, False)

        def on_readable() -> None:
            try:
                chunk = os.read(fd, 65536)
                if chunk:
                    lines.feed(chunk)
                    return
                lines.flush()
            except BlockingIOError:
                return
            except BaseException as exc:
                loop.remove_reader(fd)
                if not done.done():
                    done.set_exception(exc)
                return
            loop.remove_reader(fd)
            if not done.done():
                done.set_result(None)

        loop.add_reader(fd, on_readable)
        self._fds.append(fd)
        return done

    def _check_exit(self, delay: float | None) -> None:
        code = self.proc.poll()
        if code is None:
            if delay is not None:
                delay = min(delay * 2, 0.1)
                self._poll = self._loop.call_later(delay, self._check_exit, delay)
            return
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
        if not self.exited.done():
            self.exited.set_result(code)

    async def wait(self) -> int:
        """Wait for the end of both streams, then for the exit; return the exit code."""
        for stream in self.streams:
            await stream
        return await self.exited

    def close(self) -> None:
        """Stop watching and close the pipes and the pidfd (the process itself is not touched)."""
        loop = self._loop
        for fd in self._fds:
            loop.remove_reader(fd)
        if self._pidfd is not None:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._poll is not None:
            self._poll.cancel()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        futures: list[asyncio.Future[Any]] = [*self.streams, self.exited]
        for fut in futures:
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved
            else:
                fut.cancel()


class ShellTask(Task):
    """Run a shell command and return its output.

    ``helper_script`` and ``command`` make one script file that ``shell`` runs (``shell <file>``,
    as in Prefect 1) in a new session and process group, with stdin from ``/dev/null``. For a
    POSIX-style shell (``sh``, ``bash``, ``dash``, ``zsh``, ``ksh``...) the file is a pipe holding
    the script (``/dev/fd/N``: nothing written to disk); for another interpreter, or a script
    over 60 kB, a temporary file, removed afterwards. stdout and stderr are read concurrently,
    line by line, as the command writes them. The task returns the last line of stdout
    (``None`` when there is none), or with ``return_all`` the list of all its lines; lines lose
    their trailing newline. A non-zero exit code fails the task (`aflow.signals.FAIL`, whose
    message has the exit code and the last lines of stdout and stderr, and whose result is what
    the task would have returned).

    To bound the run time, give the task a ``timeout`` (a `Task` argument): when the body is
    cancelled (timeout, flow run cancelled, caller cancelled), the whole process group gets
    SIGTERM, then SIGKILL if anything of it still runs ``kill_grace`` seconds later (at once
    if the task is cancelled again meanwhile); the cancellation then goes on. Processes that
    leave the group (``setsid``, job control with ``set -m``) are not followed. Background jobs
    still running when the command exits normally are left alone (end the command with ``wait``
    to wait for them). POSIX only (process groups).

    Example::

        from aflow import Flow
        from aflow_tasks.shell import ShellTask

        in_home = ShellTask(helper_script="cd ~", stream_output=True, timeout=60)
        with Flow("shell") as flow:
            listing = in_home(command="ls")
            count = in_home(command="ls | wc -l")

    Args:
        command: The command to run; can also be given at run time.
        env: Environment variables for the command, merged over ``os.environ`` (values are
            converted with ``str``; a lazy value such as an `aflow.Secret` is read when the task
            runs and kept out of logs); can also be given at run time. Defaults to None.
        helper_script: Shell code run before ``command`` in the same shell (change directory,
            define functions...); can also be given at run time. Defaults to None.
        shell: The shell (or interpreter) that runs the script, looked up on the command's
            ``PATH``. Defaults to ``"bash"``.
        return_all: Return all lines of stdout as a list instead of the last line. Defaults
            to False.
        log_stderr: On failure, log the command's stderr (up to its last 1000 lines) at ERROR
            with the "Command failed with exit code N" line, which is logged either way.
            Defaults to False.
        stream_output: Log each line of stdout and of stderr as it arrives, through the task's
            logger: False (off), True (at INFO), or a logging level (number or name such as
            ``"DEBUG"``). stderr lines go at the same level (Prefect 1 merges the two streams),
            marked ``[stderr]``. Defaults to False.
        cwd: The working directory of the command; can also be given at run time. Defaults to
            None (the current directory).
        kill_grace: Seconds between SIGTERM and SIGKILL when a cancelled run stops the command.
            Defaults to 5.0.
        **kwargs: `Task` arguments (``name``, ``timeout``, ``max_retries``...).

    Raises:
        ValueError: If ``stream_output`` is not a level or ``kill_grace`` is negative.
    """

    def __init__(
        self,
        command: str | None = None,
        env: Mapping[str, Any] | None = None,
        helper_script: str | None = None,
        shell: str = "bash",
        return_all: bool = False,
        log_stderr: bool = False,
        stream_output: bool | int | str = False,
        cwd: str | os.PathLike[str] | None = None,
        kill_grace: float = 5.0,
        **kwargs: Any,
    ) -> None:
        if isinstance(kill_grace, bool) or not isinstance(kill_grace, (int, float)) or kill_grace < 0:
            raise ValueError(f"kill_grace must be a non-negative number of seconds, got {kill_grace!r}")
        self.command = command
        self.env = env
        self.helper_script = helper_script
        self.shell = shell
        self.return_all = return_all
        self.log_stderr = log_stderr
        self.stream_output = _stream_level(stream_output)
        self.cwd = cwd
        self.kill_grace = float(kill_grace)
        super().__init__(**kwargs)

    @defaults_from_attrs("command", "env", "helper_script", "cwd")
    async def run(
        self,
        command: str | None = None,
        env: Mapping[str, Any] | None = None,
        helper_script: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> str | list[str] | None:
        """Run the command and return its output.

        Args:
            command: The command to run. Defaults to the task's ``command``.
            env: Environment variables merged over ``os.environ``. Defaults to the task's ``env``.
            helper_script: Shell code run before ``command``. Defaults to the task's
                ``helper_script``.
            cwd: The working directory. Defaults to the task's ``cwd``.

        Returns:
            The last line of stdout (None if it printed nothing), or the list of all lines with
            ``return_all``.

        Raises:
            ValueError: If no command was given.
            FileNotFoundError: If the shell is not on ``PATH`` or ``cwd`` does not exist.
            aflow.signals.FAIL: If the command exits with a non-zero code (or dies of a signal).
        """
        script, full_env, workdir = _command(command, helper_script, await _resolve_env(env), cwd)
        output = _Output(self.logger, self.stream_output, return_all=self.return_all, log_stderr=self.log_stderr)
        returncode = await self._execute(script, full_env, workdir, output)
        out, err = output.out, output.err
        result: str | list[str] | None = out if isinstance(out, list) else (out[-1] if out else None)
        if returncode:
            self._fail(returncode, out, err, output.err_count, result)
        return result

    async def _execute(self, script: str, full_env: dict[str, str] | None, workdir: str | None, output: _Output) -> int:
        """Run the script in a process group of its own; return its exit code (stopping it on any exit)."""
        stdout_lines, stderr_lines = _Lines(output.on_stdout), _Lines(output.on_stderr)
        made: list[str] = []
        proc: subprocess.Popen[bytes] | None = None
        watch: _Watch | None = None
        try:
            exe = _locate(self.shell, full_env, workdir)
            script_fd = _script_pipe(exe, script)
            if script_fd is None:
                await _write_in_thread(script, made)
                proc = _spawn([exe, made[0]], workdir, full_env)
            else:
                try:
                    proc = _spawn([exe, f"/dev/fd/{script_fd}"], workdir, full_env, (script_fd,))
                finally:
                    os.close(script_fd)
            # from here on, however the body ends, the group is stopped (no await came in between)
            try:
                watch = _Watch(proc, stdout_lines, stderr_lines)
                return await watch.wait()
            except BaseException as exc:
                await self._stop(proc, exc, watch)
                raise
        finally:
            if watch is not None:
                watch.close()
            elif proc is not None:
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
            for path in made:
                _remove(path)  # one unlink in the temporary directory: not worth a thread hand-over

    async def _stop(self, proc: subprocess.Popen[bytes], exc: BaseException, watch: _Watch | None) -> None:
        """Terminate the process group: SIGTERM, ``kill_grace`` seconds, SIGKILL.

        The pipes are still read meanwhile, so a process writing as it shuts down is not stuck on
        a full pipe (and streamed lines keep being logged). Nothing cuts the grace period short
        but a second cancellation of the task (or the coroutine being closed): then the group
        gets SIGKILL at once, before that goes on.
        """
        pgid = proc.pid  # start_new_session: the shell leads its own group
        if isinstance(exc, GeneratorExit):  # the coroutine is being closed: no await is possible
            _signal_group(pgid, signal.SIGKILL)
            return
        if not _signal_group(pgid, signal.SIGTERM):
            proc.poll()
            return
        try:
            with anyio.CancelScope(shield=True):  # an anyio scope's cancellation waits for this
                with anyio.move_on_after(self.kill_grace) as grace:
                    await _wait_group_gone(proc, pgid)
                if grace.cancelled_caught:
                    self.logger.warning(
                        "Command still running %g seconds after SIGTERM: sending SIGKILL to its process group",
                        self.kill_grace,
                    )
                    _signal_group(pgid, signal.SIGKILL)
                    with anyio.move_on_after(1.0):  # SIGKILL cannot be caught: this is quick
                        await _wait_group_gone(proc, pgid)
        except BaseException:  # cancelled again (or closed) while waiting: no more grace
            _signal_group(pgid, signal.SIGKILL)
            raise
        if proc.poll() is None and watch is not None:  # the shell left its group (setsid): it goes too
            proc.kill()
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await asyncio.shield(watch.exited)

    def _fail(
        self,
        returncode: int,
        out: collections.deque[str] | list[str],
        err: collections.deque[str],
        err_count: int,
        result: str | list[str] | None,
    ) -> NoReturn:
        # Prefect 1's line, logged at ERROR whatever log_stderr says: people search their logs for it
        logged = f"Command failed with exit code {returncode}"
        if returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"signal {-returncode}"
            msg = f"Command was killed by {name} (exit code {returncode})"
            logged += f" (killed by {name})"
        else:
            msg = logged
        if self.log_stderr:
            dropped = err_count - len(err)
            head = f" ({dropped} earlier lines not kept)" if dropped else ""
            self.logger.error("%s; stderr%s:\n%s", logged, head, "\n".join(err) if err else "(empty)")
        else:
            self.logger.error("%s", logged)
        details = [msg]
        for what, lines in (("stdout", out), ("stderr", err)):
            tail = lines[-_TAIL_LINES:] if isinstance(lines, list) else list(lines)[-_TAIL_LINES:]
            if tail:
                cut = [line if len(line) <= _TAIL_LINE_CHARS else line[:_TAIL_LINE_CHARS] + "..." for line in tail]
                details.append(f"last {len(tail)} line(s) of {what}:\n" + "\n".join(cut))
        raise signals.FAIL("\n".join(details), result=result)
