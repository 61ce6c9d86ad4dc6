"""aflow's standing benchmark suite: engine overhead against asyncio floors measured in the same run.

Run ``python bench/run.py [--quick] [--json PATH] [--repeat K] [--only W1,W3] [--with-dask]
[--with-prefect1]`` (or ``nox -s bench`` / ``nox -s bench-quick``). ``bench/README.md`` explains
the workloads, the columns and the targets. Every workload checks its result: a wrong result (or
an exception) in any variant makes the exit status non-zero. Timings never fail the run; the
targets are printed as PASS/MISS.

Variants, timed in the same process with interleaved repetitions (the order rotates per repetition):

- ``aflow``: ``await flow.run()`` alone ("run"); building the flow is timed apart ("build").
- ``floor, aflow's gc`` (W1, W6): the same DAG floor under the garbage-collector thresholds aflow
  sets for a run of that size (``aflow._runtime._gc``), so the two compare on even terms.
- ``dag floor``: ``floor.Dag``, one asyncio task per node awaiting its parents, with a per-node
  state record. Its time includes building its (tiny) DAG.
- ``gather``: plain ``asyncio.gather`` of coroutines (where it applies; not on the chain).
- ``dask`` (``--with-dask``): ``dask.delayed`` on the threaded scheduler; build timed apart.
- ``prefect1`` (``--with-prefect1``): Prefect 1 ``flow.run(executor=LocalExecutor())``; build apart.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from floor import Dag

import aflow
from aflow import Flow, task
from aflow._runtime._gc import relaxed_gc  # the floor gets aflow's collector settings too

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------------
# Task bodies: the same coroutine functions for the floors and (decorated) for aflow.


async def inc(x: int) -> int:
    return x + 1


async def double(x: int) -> int:
    return x * 2


async def dec(x: int) -> int:
    return x - 1


async def total(*xs: int) -> int:
    return sum(xs)


async def collect(*xs: int) -> list[int]:
    return list(xs)


def make_sleeper(delay: float) -> Callable[[int], Awaitable[int]]:
    async def sleeper(x: int) -> int:
        await asyncio.sleep(delay)
        return x

    return sleeper


@task
async def a_inc(x: int) -> int:
    return x + 1


@task
async def a_double(x: int) -> int:
    return x * 2


@task
async def a_dec(x: int) -> int:
    return x - 1


@task
async def a_total(xs: list[int]) -> int:
    return sum(xs)


@task
async def a_sleep(x: int, delay: float) -> int:
    await asyncio.sleep(delay)
    return x


# --------------------------------------------------------------------------------------------
# Workload definitions. Each variant is a factory: ``make(n)`` returns a Trial, whose ``build``
# is timed apart from its ``run`` (floors build inside ``run``: their build is tiny).


@dataclass
class Trial:
    run: Callable[[], Awaitable[Any]]  # awaited and timed; returns the result to check
    build_s: float | None = None  # seconds spent building (None: included in run)


Maker = Callable[[int], Trial]


def _timed_build(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    built = fn()
    return built, time.perf_counter() - t0


def aflow_trial(build: Callable[[], tuple[Flow, Any]]) -> Trial:
    (flow, out), build_s = _timed_build(build)

    async def run() -> Any:
        state = await flow.run()
        if not state.is_successful():
            raise RuntimeError(f"flow run ended {state!r}")
        return state.result[out].result

    return Trial(run, build_s)


def dag_trial(build: Callable[[Dag], Any]) -> Trial:
    async def run() -> Any:
        dag = Dag()
        build(dag)
        return (await dag.run())[-1]

    return Trial(run)


# W1 wide / W6: N independent x+1 then one sum.
def w1_aflow(n: int) -> Trial:
    def build() -> tuple[Flow, Any]:
        with Flow("w1") as flow:
            out = a_total([a_inc(i) for i in range(n)])
        return flow, out

    return aflow_trial(build)


def w1_dag(n: int) -> Trial:
    return dag_trial(lambda dag: dag.add(total, *[dag.add(inc, i) for i in range(n)]))


def w1_dag_gc(n: int) -> Trial:
    """The DAG floor under the collector settings aflow gives a run of as many tasks (an even floor)."""
    floor = w1_dag(n)

    async def run() -> Any:
        with relaxed_gc(n + 1):
            return await floor.run()

    return Trial(run)


def w1_gather(n: int) -> Trial:
    async def run() -> int:
        return await total(*await asyncio.gather(*[inc(i) for i in range(n)]))

    return Trial(run)


# W2 chain: N tasks, each adding 1 to the previous.
def w2_aflow(n: int) -> Trial:
    def build() -> tuple[Flow, Any]:
        with Flow("w2") as flow:
            out = a_inc(0)
            for _ in range(n - 1):
                out = a_inc(out)
        return flow, out

    return aflow_trial(build)


def w2_dag(n: int) -> Trial:
    def build(dag: Dag) -> None:
        node = dag.add(inc, 0)
        for _ in range(n - 1):
            node = dag.add(inc, node)

    return dag_trial(build)


# W3 I/O fan-out: N tasks each awaiting asyncio.sleep(delay), then one sum.
def w3_aflow(n: int, delay: float) -> Trial:
    def build() -> tuple[Flow, Any]:
        with Flow("w3") as flow:
            out = a_total([a_sleep(i, delay) for i in range(n)])
        return flow, out

    return aflow_trial(build)


def w3_dag(n: int, delay: float) -> Trial:
    sleeper = make_sleeper(delay)
    return dag_trial(lambda dag: dag.add(total, *[dag.add(sleeper, i) for i in range(n)]))


def w3_gather(n: int, delay: float) -> Trial:
    sleeper = make_sleeper(delay)

    async def run() -> int:
        return await total(*await asyncio.gather(*[sleeper(i) for i in range(n)]))

    return Trial(run)


# W4 map: inc.map(range(N)), results collected as a list.
def w4_aflow(n: int) -> Trial:
    def build() -> tuple[Flow, Any]:
        with Flow("w4") as flow:
            out = a_inc.map(list(range(n)))
        return flow, out

    return aflow_trial(build)


def w4_dag(n: int) -> Trial:
    return dag_trial(lambda dag: dag.add(collect, *[dag.add(inc, i) for i in range(n)]))


def w4_gather(n: int) -> Trial:
    async def run() -> list[int]:
        return list(await asyncio.gather(*[inc(i) for i in range(n)]))

    return Trial(run)


# W5 mapped pipeline: c.map(b.map(a.map(xs))), depth-first; a = x+1, b = 2x, c = x-1.
def w5_aflow(n: int) -> Trial:
    def build() -> tuple[Flow, Any]:
        with Flow("w5") as flow:
            out = a_dec.map(a_double.map(a_inc.map(list(range(n)))))
        return flow, out

    return aflow_trial(build)


def w5_dag(n: int) -> Trial:
    def build(dag: Dag) -> None:
        dag.add(collect, *[dag.add(dec, dag.add(double, dag.add(inc, i))) for i in range(n)])

    return dag_trial(build)


def w5_gather(n: int) -> Trial:
    async def pipe(x: int) -> int:
        return await dec(await double(await inc(x)))

    async def run() -> list[int]:
        return list(await asyncio.gather(*[pipe(i) for i in range(n)]))

    return Trial(run)


# -- optional comparisons (sync frameworks: their run is a blocking call) ---------------------


def _sync_trial(build: Callable[[], Any], compute: Callable[[Any], Any]) -> Trial:
    built, build_s = _timed_build(build)

    async def run() -> Any:
        return compute(built)

    return Trial(run, build_s)


def dask_makers() -> dict[str, Maker]:
    import dask
    from dask import delayed

    def d_inc(x: int) -> int:
        return x + 1

    def d_double(x: int) -> int:
        return x * 2

    def d_dec(x: int) -> int:
        return x - 1

    def d_total(xs: list[int]) -> int:
        return sum(xs)

    def compute(obj: Any) -> Any:
        return dask.compute(obj, scheduler="threads")[0]

    def w1(n: int) -> Trial:
        return _sync_trial(lambda: delayed(d_total)([delayed(d_inc)(i) for i in range(n)]), compute)

    def w2(n: int) -> Trial:
        def build() -> Any:
            out = delayed(d_inc)(0)
            for _ in range(n - 1):
                out = delayed(d_inc)(out)
            return out

        return _sync_trial(build, compute)

    def w4(n: int) -> Trial:
        return _sync_trial(lambda: [delayed(d_inc)(i) for i in range(n)], lambda objs: list(compute(objs)))

    def w5(n: int) -> Trial:
        def build() -> Any:
            return [delayed(d_dec)(delayed(d_double)(delayed(d_inc)(i))) for i in range(n)]

        return _sync_trial(build, lambda objs: list(compute(objs)))

    return {"W1": w1, "W2": w2, "W4": w4, "W5": w5, "W6": w1}


def prefect1_makers() -> dict[str, Maker]:
    import logging

    from prefect import Flow as PFlow
    from prefect import task as ptask
    from prefect.executors import LocalExecutor

    logging.getLogger("prefect").setLevel(logging.WARNING)  # one INFO line per task run otherwise

    @ptask
    def p_inc(x: int) -> int:
        return x + 1

    @ptask
    def p_double(x: int) -> int:
        return x * 2

    @ptask
    def p_dec(x: int) -> int:
        return x - 1

    @ptask
    def p_total(xs: list[int]) -> int:
        return sum(xs)

    def compute(built: tuple[Any, Any]) -> Any:
        flow, out = built
        state = flow.run(executor=LocalExecutor())
        if not state.is_successful():
            raise RuntimeError(f"Prefect 1 flow run ended {state!r}")
        return state.result[out].result

    def flow_of(body: Callable[[], Any]) -> Callable[[], tuple[Any, Any]]:
        def build() -> tuple[Any, Any]:
            with PFlow("bench") as flow:
                out = body()
            return flow, out

        return build

    def w1(n: int) -> Trial:
        return _sync_trial(flow_of(lambda: p_total([p_inc(i) for i in range(n)])), compute)

    def w2(n: int) -> Trial:
        def body() -> Any:
            out = p_inc(0)
            for _ in range(n - 1):
                out = p_inc(out)
            return out

        return _sync_trial(flow_of(body), compute)

    def w4(n: int) -> Trial:
        return _sync_trial(flow_of(lambda: p_inc.map(list(range(n)))), compute)

    def w5(n: int) -> Trial:
        return _sync_trial(flow_of(lambda: p_dec.map(p_double.map(p_inc.map(list(range(n)))))), compute)

    return {"W1": w1, "W2": w2, "W4": w4, "W5": w5, "W6": w1}


# At most this many task runs per case for the optional comparisons (override: --compare-max-tasks):
# dask.delayed is O(N^2) in the number of delayed objects, Prefect 1 costs 5-10 ms per task run.
COMPARE_MAX_TASKS = {"dask": 10_000, "prefect1": 1_000}


# --------------------------------------------------------------------------------------------
# Cases


@dataclass
class Case:
    workload: str  # "W1"
    title: str
    n: int
    units: int  # task runs the per-task figures divide by
    expected: Callable[[int], Any]
    variants: dict[str, Maker]
    ideal_s: float = 0.0
    repeat: int | None = None  # cap on repetitions (W6)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)


def expect_sum(n: int) -> int:
    return n * (n + 1) // 2


def expect_inc(n: int) -> list[int]:
    return [i + 1 for i in range(n)]


def expect_pipeline(n: int) -> list[int]:
    return [(i + 1) * 2 - 1 for i in range(n)]


def expect_chain(n: int) -> int:
    return n


def expect_w3(n: int) -> int:
    return n * (n - 1) // 2


TITLES = {
    "W1": "wide",
    "W2": "chain",
    "W3": "I/O fan-out",
    "W4": "map",
    "W5": "mapped pipeline",
    "W6": "1M wide",
}

FULL_NS = {"W1": [1_000, 10_000, 100_000], "W2": [1_000, 10_000], "W3": [500, 10_000], "W4": [10_000, 100_000]}
FULL_NS |= {"W5": [10_000], "W6": [1_000_000]}
QUICK_NS = {"W1": [1_000], "W2": [1_000], "W3": [500], "W4": [1_000], "W5": [1_000]}
W3_DELAY = 0.1
W6_REPEAT = 3  # one W6 repetition (aflow + floors) takes ~1 min on the reference machine


def make_case(workload: str, n: int) -> Case:
    title = TITLES[workload]
    if workload in ("W1", "W6"):
        return Case(
            workload,
            title,
            n,
            n,
            expect_sum,
            {"dag floor": w1_dag, "floor, aflow's gc": w1_dag_gc, "gather": w1_gather, "aflow": w1_aflow},
            repeat=W6_REPEAT if workload == "W6" else None,
        )
    if workload == "W2":
        return Case(workload, title, n, n, expect_chain, {"dag floor": w2_dag, "aflow": w2_aflow})
    if workload == "W3":
        return Case(
            workload,
            title,
            n,
            n,
            expect_w3,
            {
                "dag floor": lambda k: w3_dag(k, W3_DELAY),
                "gather": lambda k: w3_gather(k, W3_DELAY),
                "aflow": lambda k: w3_aflow(k, W3_DELAY),
            },
            ideal_s=W3_DELAY,
        )
    if workload == "W4":
        return Case(workload, title, n, n, expect_inc, {"dag floor": w4_dag, "gather": w4_gather, "aflow": w4_aflow})
    if workload == "W5":
        return Case(
            workload, title, n, 3 * n, expect_pipeline, {"dag floor": w5_dag, "gather": w5_gather, "aflow": w5_aflow}
        )
    raise ValueError(workload)


# --------------------------------------------------------------------------------------------
# Timing


async def measure(make: Maker, n: int, expected: Any) -> tuple[float, float | None, str | None]:
    """One timed repetition: (run seconds, build seconds or None, error or None)."""
    gc.collect()
    try:
        trial = make(n)
        gc.collect()
        t0 = time.perf_counter()
        result = await trial.run()
        elapsed = time.perf_counter() - t0
    except Exception as exc:
        return float("nan"), None, f"{type(exc).__name__}: {exc}"
    if result != expected:
        shown = repr(result)
        return elapsed, trial.build_s, f"wrong result: {shown[:80]}{'...' if len(shown) > 80 else ''}"
    return elapsed, trial.build_s, None


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def run_case(case: Case, repeat: int) -> None:
    names = list(case.variants)
    # warm-up at N=2, checked like the real thing
    for name in names:
        _, _, error = await measure(case.variants[name], 2, case.expected(2))
        case.results[name] = {"run_s": [], "build_s": [], "errors": [f"warm-up: {error}"] if error else []}
    expected = case.expected(case.n)
    reps = min(repeat, case.repeat) if case.repeat else repeat
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            res = case.results[name]
            if res["errors"]:
                continue  # once wrong, stop timing it
            run_s, build_s, error = await measure(case.variants[name], case.n, expected)
            if error:
                res["errors"].append(error)
                continue
            res["run_s"].append(run_s)
            if build_s is not None:
                res["build_s"].append(build_s)
    for res in case.results.values():
        res["ok"] = not res["errors"] and bool(res["run_s"])
        if res["run_s"]:
            res["run"] = summarize(res["run_s"])
            res["run_us_per_task"] = {k: v / case.units * 1e6 for k, v in res["run"].items()}
            if case.ideal_s:  # W3: what matters is the wall above the ideal
                res["overhead_us_per_task"] = {k: (v - case.ideal_s) / case.units * 1e6 for k, v in res["run"].items()}
        if res["build_s"]:
            res["build"] = summarize(res["build_s"])
            res["build_us_per_task"] = res["build"]["median"] / case.n * 1e6 if case.n else 0.0
    floor = case.results.get("dag floor", {}).get("run")
    ideal = case.ideal_s
    for res in case.results.values():
        if floor and "run" in res and floor["median"] > ideal:
            res["x_floor_run"] = (res["run"]["median"] - ideal) / (floor["median"] - ideal)
            if "build" in res:
                res["x_floor_build_run"] = (res["run"]["median"] + res["build"]["median"] - ideal) / (
                    floor["median"] - ideal
                )


# --------------------------------------------------------------------------------------------
# Import time and memory, in fresh subprocesses


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def import_time(samples: int) -> dict[str, Any]:
    """Wall of ``python -c "import aflow"`` minus ``python -c "pass"`` (medians), and -X importtime."""

    def wall(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=child_env(), cwd=HERE.parent)
        return time.perf_counter() - t0

    walls_import, walls_pass = [], []
    for _ in range(samples):  # interleaved
        walls_pass.append(wall("pass"))
        walls_import.append(wall("import aflow"))
    cumulative = []
    for _ in range(samples):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import aflow"],
            check=True,
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=HERE.parent,
        )
        match = re.search(r"^import time:\s+\d+ \|\s+(\d+) \| aflow$", proc.stderr, re.MULTILINE)
        if match:
            cumulative.append(int(match.group(1)) / 1000)
    delta = statistics.median(walls_import) - statistics.median(walls_pass)
    return {
        "ok": True,
        "samples": samples,
        "wall_ms": delta * 1000,
        "python_pass_ms": statistics.median(walls_pass) * 1000,
        "python_import_aflow_ms": statistics.median(walls_import) * 1000,
        "importtime_cumulative_ms": statistics.median(cumulative) if cumulative else None,
    }


def peak_rss_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss // 1024 if sys.platform == "darwin" else maxrss


def mem_child(kind: str, n: int) -> None:
    """Child process body: warm up at N=2, build and run W1 at N, print the peak RSS in KB."""
    make = {"aflow": w1_aflow, "floor": w1_dag}[kind]

    async def main() -> bool:
        for k in (2, n):
            _, _, error = await measure(make, k, expect_sum(k))
            if error:
                print(error, file=sys.stderr)
                return False
        return True

    ok = asyncio.run(main())
    print(json.dumps({"kind": kind, "n": n, "ok": ok, "peak_rss_kb": peak_rss_kb()}))


def memory(n: int, samples: int) -> dict[str, Any]:
    """Peak RSS growth per W1 task node at N above the same script at N=0, fresh processes."""

    def child(kind: str, k: int) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--mem-child", kind, str(k)],
            capture_output=True,
            text=True,
            env=child_env(),
            cwd=HERE.parent,
        )
        if proc.returncode != 0:
            return {"ok": False, "error": proc.stderr.strip()[-500:]}
        data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return data

    out: dict[str, Any] = {"n": n, "samples": samples, "ok": True}
    for kind in ("aflow", "floor"):
        base, peak = [], []
        for _ in range(samples):
            b, p = child(kind, 0), child(kind, n)
            if not (b.get("ok") and p.get("ok")):
                out["ok"] = False
                out.setdefault("errors", []).append(b.get("error") or p.get("error") or "wrong result")
                continue
            base.append(b["peak_rss_kb"])
            peak.append(p["peak_rss_kb"])
        if base:
            out[kind] = {
                "baseline_kb": statistics.median(base),
                "peak_kb": statistics.median(peak),
                "kb_per_task": (statistics.median(peak) - statistics.median(base)) / n,
            }
    return out


# --------------------------------------------------------------------------------------------
# Targets


@dataclass
class Target:
    name: str
    limit: str
    value: float | None
    measured: str
    passed: bool | None  # None: not measured in this mode
    note: str = ""


def find(cases: list[Case], workload: str, n: int | None) -> Case | None:
    """The case for (workload, n); with ``n`` absent from this run, the largest N measured."""
    same = [c for c in cases if c.workload == workload]
    exact = [c for c in same if c.n == n]
    if exact:
        return exact[0]
    return max(same, key=lambda c: c.n) if same and n is None else None


def evaluate_targets(cases: list[Case], extras: dict[str, Any], quick: bool) -> list[Target]:
    targets: list[Target] = []

    def aflow_res(c: Case | None) -> dict[str, Any] | None:
        return c.results.get("aflow") if c and c.results.get("aflow", {}).get("ok") else None

    for w, limit in (("W1", 2.0), ("W2", 1.2), ("W4", 2.0)):
        case = find(cases, w, 10_000) or (find(cases, w, None) if quick else None)
        res = aflow_res(case)
        label = f"{w} N={case.n:,}" if case else f"{w} N=10,000"
        if res and "x_floor_run" in res:
            x = res["x_floor_run"]
            targets.append(Target(f"{label} run / DAG floor", f"<= {limit}x", x, f"{x:.2f}x", x <= limit))
        else:
            targets.append(Target(f"{label} run / DAG floor", f"<= {limit}x", None, "n/a", None))
    for n, limit, cmp_name in ((500, W3_DELAY * 1.1, "<= 0.110 s"), (10_000, 0.3, "< 0.300 s")):
        res = aflow_res(find(cases, "W3", n))
        if res:
            wall = res["run"]["median"]
            passed = wall <= limit if n == 500 else wall < limit
            targets.append(Target(f"W3 N={n:,} wall (ideal 0.1 s)", cmp_name, wall, f"{wall:.3f} s", passed))
        else:
            targets.append(Target(f"W3 N={n:,} wall (ideal 0.1 s)", cmp_name, None, "n/a", None))
    w3 = find(cases, "W3", 10_000) or (find(cases, "W3", None) if quick else None)
    res, gather = aflow_res(w3), (w3.results.get("gather", {}).get("run") if w3 else None)
    label = f"W3 N={w3.n:,} wall / gather" if w3 else "W3 N=10,000 wall / gather"
    if res and gather:
        x = res["run"]["median"] / gather["median"]
        targets.append(Target(label, "<= 1.1x", x, f"{x:.2f}x", x <= 1.1))
    else:
        targets.append(Target(label, "<= 1.1x", None, "n/a", None))
    small, large = aflow_res(find(cases, "W1", 1_000)), aflow_res(find(cases, "W1", 100_000))
    if small and large:
        x = large["run_us_per_task"]["median"] / small["run_us_per_task"]["median"]
        f_small = find(cases, "W1", 1_000).results["dag floor"]  # type: ignore[union-attr]
        f_large = find(cases, "W1", 100_000).results["dag floor"]  # type: ignore[union-attr]
        note = ""
        if "run" in f_small and "run" in f_large:
            fx = f_large["run_us_per_task"]["median"] / f_small["run_us_per_task"]["median"]
            note = f"(DAG floor: {fx:.2f}x)"
        targets.append(Target("W1 run us/task N=100k / N=1k", "<= 1.3x", x, f"{x:.2f}x", x <= 1.3, note))
    else:
        targets.append(Target("W1 run us/task N=100k / N=1k", "<= 1.3x", None, "n/a", None))
    mem = extras.get("memory")
    if mem and mem.get("aflow"):  # the goal is at N=1M (--mem-n 1000000); other Ns are shown against it
        kb = mem["aflow"]["kb_per_task"]
        targets.append(Target(f"memory per task node, W1 N={mem['n']:,}", "<= 1.4 KB", kb, f"{kb:.2f} KB", kb <= 1.4))
    else:
        targets.append(Target("memory per task node, W1 N=1,000,000", "<= 1.4 KB", None, "n/a", None))
    w1_cases = [c for c in cases if c.workload in ("W1", "W6") and c.n >= 10_000] or (
        [c for c in cases if c.workload == "W1"] if quick else []
    )
    for case in w1_cases:
        res = aflow_res(case)
        if res and "build_us_per_task" in res:
            b = res["build_us_per_task"]
            targets.append(Target(f"build, {case.workload} N={case.n:,}", "<= 3 us/task", b, f"{b:.2f} us", b <= 3))
        if res and "x_floor_build_run" in res:
            x = res["x_floor_build_run"]
            name = f"{case.workload} N={case.n:,} build+run / DAG floor"
            targets.append(Target(name, "<= 1.3x", x, f"{x:.2f}x", x <= 1.3))
    if not w1_cases:
        targets.append(Target("build, W1 N=10,000", "<= 3 us/task", None, "n/a", None))
        targets.append(Target("W1 N=10,000 build+run / DAG floor", "<= 1.3x", None, "n/a", None))
    imp = extras.get("import")
    if imp:
        ms = imp["wall_ms"]
        targets.append(Target("import aflow (wall - bare python)", "<= 150 ms", ms, f"{ms:.0f} ms", ms <= 150))
    else:
        targets.append(Target("import aflow (wall - bare python)", "<= 150 ms", None, "n/a", None))
    return targets


# --------------------------------------------------------------------------------------------
# Output


def fmt_us(x: float) -> str:
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.2f}"


def fmt_x(x: float) -> str:
    return f"{x:.2f}" if x < 100 else f"{x:,.0f}"


def fmt_s(x: float) -> str:
    return f"{x:.3f}" if x >= 0.1 else f"{x:.4f}"


def table(cases: list[Case]) -> str:
    lines = [
        "| W | N | variant | run us/task median (min-max) | run wall s | build us/task"
        " | x DAG floor (run) | x DAG floor (build+run) | ok |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        for name, res in case.results.items():
            mark = "floor*" if name == "dag floor" else name
            if "run" in res:
                r = res["overhead_us_per_task"] if case.ideal_s else res["run_us_per_task"]
                run = f"{fmt_us(r['median'])} ({fmt_us(r['min'])}-{fmt_us(r['max'])})"
                wall = fmt_s(res["run"]["median"])
            else:
                run, wall = "-", "-"
            build = fmt_us(res["build_us_per_task"]) if "build_us_per_task" in res else "-"
            xr = fmt_x(res["x_floor_run"]) if "x_floor_run" in res else "-"
            xb = fmt_x(res["x_floor_build_run"]) if "x_floor_build_run" in res else "-"
            ok = "ok" if res.get("ok") else "FAIL: " + "; ".join(res["errors"])[:100]
            title = f"{case.workload} {case.title}"
            lines.append(f"| {title} | {case.n:,} | {mark} | {run} | {wall} | {build} | {xr} | {xb} | {ok} |")
    return "\n".join(lines)


FOOTNOTE = """\
run us/task = median wall of the timed part / task runs (W5: 3 per item; W1/W6: the N x+1 tasks,
the final sum not counted). aflow "run" = `await flow.run()` only; its build is the "build" column.
* the DAG floor's time includes building its DAG (tiny); gather is plain asyncio.gather of
coroutines (W5: one coroutine per item awaiting the three steps).
W3 (ideal 0.1 s): us/task and the x DAG floor ratios are of the overhead, (wall - 0.1 s) / N.
dask/prefect1 (opt-in): "run" = the compute/flow.run call, build apart."""


def print_extras(extras: dict[str, Any]) -> None:
    imp = extras.get("import")
    if imp:
        cum = imp["importtime_cumulative_ms"]
        print(
            f"\nimport aflow: {imp['wall_ms']:.0f} ms (wall of `python -c 'import aflow'` "
            f"{imp['python_import_aflow_ms']:.0f} ms - `python -c pass` {imp['python_pass_ms']:.0f} ms,"
            f" medians of {imp['samples']}); -X importtime cumulative: "
            + (f"{cum:.0f} ms" if cum is not None else "n/a")
        )
    mem = extras.get("memory")
    if mem:
        parts = []
        for kind in ("aflow", "floor"):
            if kind in mem:
                m = mem[kind]
                parts.append(
                    f"{kind} {m['kb_per_task']:.2f} KB/task (peak {m['peak_kb'] / 1024:.0f} MB"
                    f" vs {m['baseline_kb'] / 1024:.0f} MB at N=0)"
                )
        status = "" if mem["ok"] else " FAILED: " + "; ".join(mem.get("errors", []))
        print(
            f"memory, W1 N={mem['n']:,} (peak RSS growth per task, fresh process, median of {mem['samples']}): "
            + ", ".join(parts)
            + status
        )


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "aflow": aflow.__version__,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_gib"] = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    return info


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small Ns (W1/W2/W4/W5 N=1000, W3 N=500), 3 repetitions")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--repeat", type=int, metavar="K", help="timed repetitions per case (default 5, quick 3)")
    p.add_argument(
        "--only",
        metavar="W1,W3",
        help="comma-separated subset of W1..W6, mem, import (default: all of the mode)",
    )
    p.add_argument("--with-dask", action="store_true", help="also time dask.delayed (threaded scheduler)")
    p.add_argument("--with-prefect1", action="store_true", help="also time Prefect 1 (LocalExecutor)")
    p.add_argument(
        "--compare-max-tasks",
        type=int,
        metavar="M",
        help="cap on task runs per case for dask/prefect1 (default: dask 10000, prefect1 1000)",
    )
    p.add_argument(
        "--mem-n",
        type=int,
        metavar="N",
        help="W1 size of the memory measurement (default 100000, quick 10000); e.g. 1000000",
    )
    p.add_argument("--mem-child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def optional_makers(args: argparse.Namespace) -> dict[str, dict[str, Maker]]:
    found: dict[str, dict[str, Maker]] = {}
    wanted = [("dask", args.with_dask, dask_makers), ("prefect1", args.with_prefect1, prefect1_makers)]
    for name, on, load in wanted:
        if not on:
            continue
        try:
            found[name] = load()
        except ImportError as exc:
            print(f"{name} comparison skipped: not installed ({exc})")
    return found


async def run_all(cases: list[Case], repeat: int) -> None:
    for case in cases:
        t0 = time.perf_counter()
        await run_case(case, repeat)
        status = "ok" if all(r.get("ok") for r in case.results.values()) else "FAILED"
        print(f"  {case.workload} {case.title} N={case.n:,}: {time.perf_counter() - t0:.1f} s, {status}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mem_child:
        mem_child(args.mem_child[0], int(args.mem_child[1]))
        return 0
    ns = QUICK_NS if args.quick else FULL_NS
    repeat = args.repeat or (3 if args.quick else 5)
    selected = [s.strip() for s in args.only.split(",")] if args.only else [*ns, "mem", "import"]
    unknown = [s for s in selected if s not in (*FULL_NS, "mem", "import")]
    if unknown:
        print(f"unknown workloads: {', '.join(unknown)}", file=sys.stderr)
        return 2

    info = machine_info()
    print(
        f"aflow {info['aflow']} bench ({'quick' if args.quick else 'full'}), {repeat} repetitions,"
        f" Python {info['python']}, {info['cpu_count']} CPUs, {info.get('cpu', info['machine'])}, {info['date']}"
    )
    cases = [make_case(w, n) for w in ns if w in selected for n in ns[w]]
    for system, makers in optional_makers(args).items():
        cap = args.compare_max_tasks or COMPARE_MAX_TASKS[system]
        for case in cases:
            if case.workload in makers and case.units <= cap:
                case.variants[system] = makers[case.workload]
    if args.with_dask or args.with_prefect1:
        print("(dask/prefect1 not on W3: their tasks are sync; cases above the task cap are left out)")

    t0 = time.perf_counter()
    asyncio.run(run_all(cases, repeat))
    extras: dict[str, Any] = {}
    if "import" in selected:
        extras["import"] = import_time(5 if args.quick else 7)
    if "mem" in selected:
        extras["memory"] = memory(args.mem_n or (10_000 if args.quick else 100_000), 1 if args.quick else 3)
    elapsed = time.perf_counter() - t0

    print()
    print(table(cases))
    print()
    print(FOOTNOTE)
    print_extras(extras)
    targets = evaluate_targets(cases, extras, args.quick)
    print("\nTargets (reported, never failing the run):")
    for t in targets:
        status = "n/a " if t.passed is None else ("PASS" if t.passed else "MISS")
        print(f"  {status}  {t.name:42} {t.measured:>10}   target {t.limit:14} {t.note}".rstrip())
    failed = [f"{c.workload} N={c.n}" for c in cases if not all(r.get("ok") for r in c.results.values())]
    if "memory" in extras and not extras["memory"]["ok"]:
        failed.append("memory")
    print(f"\ntotal {elapsed:.1f} s; " + (f"FAILED: {', '.join(failed)}" if failed else "all results correct"))

    if args.json:
        workloads: dict[str, dict[str, Any]] = {}
        for case in cases:
            entry = workloads.setdefault(case.workload, {"title": case.title, "ok": True, "cases": []})
            ok = all(r.get("ok") for r in case.results.values())
            entry["ok"] = entry["ok"] and ok
            entry["cases"].append(
                {"n": case.n, "units": case.units, "ideal_s": case.ideal_s, "ok": ok, "variants": case.results}
            )
        doc = {
            "machine": info,
            "mode": "quick" if args.quick else "full",
            "repeat": repeat,
            "elapsed_s": elapsed,
            "ok": not failed,
            "workloads": workloads,
            **extras,
            "targets": [t.__dict__ for t in targets],
        }
        Path(args.json).write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
