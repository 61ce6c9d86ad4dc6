"""ShellTask.map against raw asyncio subprocesses: N (100) short commands, all started at once.

A flow mapping ``ShellTask`` over N copies of a command (default ``true``, through ``bash`` as
the task's default ``shell``) against two raw asyncio variants doing the same N runs with
``asyncio.gather`` (the same concurrency: all N at once, as the map starts them):

- raw bash: ``asyncio.create_subprocess_exec("bash", "-c", command)`` with stdout and stderr
  piped and read to the end (``communicate``), as the task reads them; this is the comparison
  the target (ShellTask within 1.3x) is about: the same shell doing the same work;
- raw bash, pidfd watcher: the same, with asyncio's ``PidfdChildWatcher`` instead of Python
  3.11's default ``ThreadedChildWatcher`` (one thread per child, waiting in ``waitpid``); the
  task waits on a pidfd itself, so this is the stricter floor (3.11 only: 3.12 chooses the pidfd
  watcher itself and deprecates setting one, so the variant is left out there);
- raw bash /dev/fd/N, pidfd watcher: the script in a pipe that bash reads as a file, as
  ShellTask runs it (a file, not ``-c``, for Prefect 1's semantics), so the ratio to it is what
  the task adds;
- raw sh: ``asyncio.create_subprocess_shell(command)``, the same through ``/bin/sh`` (dash on
  Debian, a smaller shell that starts faster), for reference.

Every run's result is checked (the task returns the last line of stdout; ``--command 'echo x'``
makes that non-empty). Repetitions alternate the variants in the same process; medians and the
ratio to raw bash are printed. The flow is built outside the timing.

    python bench/shell.py            # N=100, 15 repetitions
    python bench/shell.py --quick    # N=20, 3 repetitions
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aflow import Flow  # noqa: E402
from aflow_tasks.shell import ShellTask  # noqa: E402


def shell_flow(command: str, n: int) -> tuple[Flow, Any]:
    task = ShellTask()
    with Flow(f"shell-{n}") as flow:
        out = task.map(command=[command] * n)
    return flow, out


def last_line(data: bytes) -> str | None:
    lines = data.decode().splitlines()
    return lines[-1] if lines else None


async def timed_flow(built: tuple[Flow, Any], n: int, expected: str | None) -> float:
    flow, out = built
    t0 = time.perf_counter()
    state = await flow.run()
    elapsed = time.perf_counter() - t0
    assert state.is_successful(), state.message
    assert state.result[out].result == [expected] * n, "wrong results"
    return elapsed


async def _raw_one(argv: list[str] | None, command: str) -> str | None:
    pipe, DEVNULL = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    if argv is None:
        proc = await asyncio.create_subprocess_shell(command, stdin=DEVNULL, stdout=pipe, stderr=pipe)
    elif argv == ["bash", "/dev/fd"]:  # the script in a pipe the shell reads as a file, as ShellTask does
        r, w = os.pipe()
        os.write(w, command.encode())
        os.close(w)
        try:
            proc = await asyncio.create_subprocess_exec(
                "bash", f"/dev/fd/{r}", stdin=DEVNULL, stdout=pipe, stderr=pipe, pass_fds=(r,)
            )
        finally:
            os.close(r)
    else:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=DEVNULL, stdout=pipe, stderr=pipe)
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return last_line(out)


async def raw(argv: list[str] | None, command: str, n: int, expected: str | None) -> float:
    t0 = time.perf_counter()
    results = await asyncio.gather(*(_raw_one(argv, command) for _ in range(n)))
    elapsed = time.perf_counter() - t0
    assert results == [expected] * n, "wrong results"
    return elapsed


@contextlib.contextmanager
def child_watcher(pidfd: bool) -> Iterator[None]:
    """Python 3.11: asyncio's ``PidfdChildWatcher`` inside the block, the default one outside."""
    if not pidfd:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        policy = asyncio.get_event_loop_policy()
        previous = policy.get_child_watcher()  # type: ignore[attr-defined]
        watcher = asyncio.PidfdChildWatcher()  # type: ignore[attr-defined]
        watcher.attach_loop(asyncio.get_running_loop())
        policy.set_child_watcher(watcher)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            policy.set_child_watcher(previous)  # type: ignore[attr-defined]


async def main(command: str, n: int, repeat: int) -> None:
    proc = await asyncio.create_subprocess_exec("bash", "-c", command, stdout=asyncio.subprocess.PIPE)
    expected = last_line((await proc.communicate())[0])
    print(f"{n} x {command!r} at once, {repeat} repetitions; load: {os.getloadavg()[0]:.2f}")
    bash = ["bash", "-c", command]
    pidfd = sys.version_info < (3, 12) and hasattr(asyncio, "PidfdChildWatcher") and hasattr(os, "pidfd_open")
    names = [
        "ShellTask.map",
        "raw bash -c",
        "raw bash -c, pidfd watcher",
        "raw bash /dev/fd/N, pidfd watcher",
        "raw sh (create_subprocess_shell)",
    ]
    times: dict[str, list[float]] = {name: [] for name in names if pidfd or "pidfd" not in name}
    await timed_flow(shell_flow(command, n), n, expected)  # warm-up
    await raw(bash, command, n, expected)
    for _ in range(repeat):
        built = shell_flow(command, n)  # built outside the timing
        times["ShellTask.map"].append(await timed_flow(built, n, expected))
        times["raw bash -c"].append(await raw(bash, command, n, expected))
        if pidfd:
            with child_watcher(True):
                times["raw bash -c, pidfd watcher"].append(await raw(bash, command, n, expected))
                times["raw bash /dev/fd/N, pidfd watcher"].append(await raw(["bash", "/dev/fd"], command, n, expected))
        times["raw sh (create_subprocess_shell)"].append(await raw(None, command, n, expected))
    base = statistics.median(times["raw bash -c"])
    for name, xs in times.items():
        m = statistics.median(xs)
        print(f"  {name:34} median {m:.4f}s ({m / n * 1e3:.2f} ms per run); ratio to raw bash {m / base:.2f}x")
    task = statistics.median(times["ShellTask.map"])
    floor = min(statistics.median(xs) for name, xs in times.items() if name.startswith("raw bash -c"))
    print(f"  ShellTask.map / fastest raw bash -c: {task / floor:.2f}x (target <= 1.3x)")
    if "raw bash /dev/fd/N, pidfd watcher" in times:
        same = statistics.median(times["raw bash /dev/fd/N, pidfd watcher"])
        print(f"  ShellTask.map / raw bash /dev/fd/N (the same way of running the script): {task / same:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=20 and 3 repetitions")
    parser.add_argument("-n", type=int, default=None, help="commands per run (default 100)")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--command", default="true", help="the command each run runs (default: true)")
    args = parser.parse_args()
    n = args.n or (20 if args.quick else 100)
    repeat = args.repeat or (3 if args.quick else 15)
    asyncio.run(main(args.command, n, repeat))
