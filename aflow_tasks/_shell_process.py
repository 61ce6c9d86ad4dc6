"""Starting ShellTask's process: the shell's path, the script (a pipe or a file), the process group.

Used by `aflow_tasks.shell`; POSIX only.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping

import anyio

# shells that read the script from a pipe as /dev/fd/N (no temporary file, no thread hand-over)
_PIPE_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "ash", "yash", "posh"})
# what a pipe's buffer takes at once (64 KiB by default on Linux); longer scripts go through a file
_PIPE_MAX_BYTES = 60_000
_HAVE_DEV_FD = os.path.isdir("/dev/fd")


_found: dict[tuple[str, str], str] = {}  # (shell, PATH) -> the shell's path, as last found


def _locate(shell: str, env: Mapping[str, str] | None, cwd: str | None) -> str:
    """Check the shell and cwd; return the shell's path (looked up on the command's ``PATH``).

    A shell found is remembered for its ``PATH`` (the lookup stats every directory before it:
    a good part of a short command's cost); one not found is looked up again next time.
    """
    path = (os.environ if env is None else env).get("PATH", os.defpath)
    found = _found.get((shell, path))
    if found is None:
        found = shutil.which(shell, path=path)
        if found is None:
            raise FileNotFoundError(
                f"ShellTask: the shell {shell!r} was not found (searched PATH); install it or choose "
                "another one with shell=, e.g. shell='sh'"
            )
        if len(_found) >= 256:
            _found.clear()
        _found[(shell, path)] = found
    if cwd is not None and not os.path.isdir(cwd):
        raise FileNotFoundError(f"ShellTask: cwd {cwd!r} is not an existing directory")
    return found


def _script_pipe(exe: str, script: str) -> int | None:
    """The read end of a pipe holding the whole script, for a POSIX-style shell to run as ``/dev/fd/N``.

    None when the script goes through a temporary file instead: other interpreters, no
    ``/dev/fd``, or a script the pipe's buffer does not take at once.
    """
    if os.path.basename(exe) not in _PIPE_SHELLS or not _HAVE_DEV_FD:
        return None
    data = script.encode("utf-8")
    if len(data) > _PIPE_MAX_BYTES:
        return None
    r, w = os.pipe()
    try:
        os.set_blocking(w, False)
        written = os.write(w, data) if data else 0
    except BlockingIOError:  # a pipe buffer shrunk by the system's limits
        written = -1
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    if written != len(data):
        os.close(r)
        return None
    return r


def _write_script(script: str, made: list[str]) -> None:
    """Write the script to a temporary file, whose path goes into ``made`` as soon as it exists.

    So the caller removes it even when cancelled before this returns.
    """
    fd, path = tempfile.mkstemp(prefix="aflow-shell-")
    made.append(path)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(script)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # every member left is someone else's: nothing we can do
        return False
    return True


def _group_running(pgid: int) -> bool:
    """Whether a process of group ``pgid`` is still running (zombies do not count).

    A group whose members are all dead but not yet reaped (orphans of an init that does not
    reap, as in many containers) still answers ``killpg(pgid, 0)``; on Linux, ``/proc`` tells
    zombies apart.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    try:
        entries = os.scandir("/proc")
    except OSError:  # no procfs: trust killpg
        return True
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:  # gone meanwhile
                continue
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
    return False


async def _wait_group_gone(proc: subprocess.Popen[bytes], pgid: int) -> None:
    """Poll until no process of the group runs (the caller bounds the wait), then reap the shell."""
    delay = 0.005
    while await anyio.to_thread.run_sync(_group_running, pgid):
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.1)
    proc.poll()


async def _write_in_thread(script: str, made: list[str]) -> None:
    """`_write_script` in a worker thread; a script file the thread writes after a cancellation is removed."""
    job = asyncio.ensure_future(anyio.to_thread.run_sync(_write_script, script, made))
    try:
        await asyncio.shield(job)
    except BaseException:
        if not job.done():  # the thread goes on: clean up after it (the caller's cleanup ran already)

            def remove_late(_: object) -> None:
                if not job.cancelled():
                    job.exception()  # retrieved: the cancellation wins
                for path in made:
                    _remove(path)

            job.add_done_callback(remove_late)
        raise


def _spawn(
    argv: list[str], cwd: str | None, env: Mapping[str, str] | None, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session (and process group) of its own.

    This is deliberately a plain call, not an ``await``: the process exists once it returns, and
    no cancellation can land between the fork and the caller holding the process, whose group
    it then always stops. (``asyncio.create_subprocess_exec`` forks the same way on the loop, but
    a cancellation landing while it then waits for the pipes kills the shell alone and waits for
    the pipes that its orphaned children still hold.)
    """
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
        pass_fds=pass_fds,
    )
