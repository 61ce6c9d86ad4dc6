"""Task bodies for tests/aflow/test_dask.py: importable, so dask worker processes can load them.

Bodies signal the test through files (worker processes share nothing else with it).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from aflow import context, task


@task
async def async_info(x: int) -> dict[str, object]:
    await asyncio.sleep(0)
    return {
        "x": x,
        "pid": os.getpid(),
        "task_name": context.get("task_name"),
        "map_index": context.get("map_index"),
        "flow_name": context.get("flow_name"),
        "custom": context.get("custom"),
    }


@task
def sync_info(items: list[dict[str, object]]) -> dict[str, object]:
    return {
        "total": sum(int(str(i["x"])) for i in items),
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "task_name": context.get("task_name"),
        "custom": context.get("custom"),
    }


@task(tags=["local"])
async def local_pid() -> int:
    return os.getpid()


@task
async def double(x: int) -> int:
    return 2 * x


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def where(x: int) -> str:
    from distributed import get_worker

    return str(get_worker().address)


def _check(value: int) -> None:
    if value < 0:
        raise ValueError(f"negative value {value}")


@task
def fails(value: int) -> None:
    _check(value)


@task
async def fails_async(value: int) -> None:
    await asyncio.sleep(0)
    _check(value)


@task(max_retries=2, retry_delay=30)
def flaky(counter: str) -> int:
    """Fails on its first two attempts: the attempts are counted in a file."""
    path = Path(counter)
    attempts = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempts))
    if attempts < 3:
        raise RuntimeError(f"attempt {attempts} failed")
    return attempts


def _note(marker: str, name: str, text: str) -> None:
    Path(marker, name).write_text(text)


async def _wait_forever(marker: str) -> None:
    _note(marker, "started", str(os.getpid()))
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        _note(marker, "cancelled", "yes")
        raise
    _note(marker, "finished", "yes")


@task
async def hangs(marker: str) -> None:
    """Writes ``started`` (its pid), then sleeps; writes ``cancelled`` if cancelled."""
    await _wait_forever(marker)


@task(timeout=1)
async def hangs_with_timeout(marker: str) -> None:
    await _wait_forever(marker)


@task
def sync_sleeps(marker: str, seconds: float) -> str:
    Path(marker, "sync-started").write_text(str(os.getpid()))
    time.sleep(seconds)
    Path(marker, "sync-finished").write_text("yes")
    return "slept"


@task
def dies_once(marker: str) -> int:
    """Writes ``started-<n>`` with its pid and waits (for the test to kill its worker); a
    later attempt (the file ``killed`` exists) returns at once."""
    if Path(marker, "killed").exists():
        return os.getpid()
    Path(marker, "started").write_text(str(os.getpid()))
    time.sleep(30)
    return -1


@task(max_retries=1, retry_delay=5)
def dies_once_retried(marker: str) -> int:
    return int(dies_once.run(marker))


_lock = threading.Lock()
_state = {"now": 0, "peak": 0}


def reset_peak() -> None:
    with _lock:
        _state.update(now=0, peak=0)


def peak() -> int:
    return _state["peak"]


def _occupy() -> None:
    with _lock:
        _state["now"] += 1
        _state["peak"] = max(_state["peak"], _state["now"])
    time.sleep(0.15)
    with _lock:
        _state["now"] -= 1


@task(tags=["dask-resource:SLOT=1"])
def needs_slot(x: int) -> int:
    _occupy()
    return x


@task
def free(x: int) -> int:
    _occupy()
    return x
