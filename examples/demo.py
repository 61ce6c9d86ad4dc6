"""The demo flow: fetch a few "pages" concurrently, map over their words, reduce to a report.

Run it with ``python examples/demo.py``. Each fetch waits 0.2 s (standing in for network I/O);
they all run at once, so the whole flow takes about 0.2 s, not 0.2 s per page.
"""

from __future__ import annotations

import asyncio
import time

from aflow import Flow, Parameter, task

PAGES = {
    "home": "aflow runs every ready task at once",
    "docs": "tasks flows parameters states signals triggers",
    "blog": "async all the way down",
}


@task(max_retries=2, retry_delay=0.05)
async def fetch(page: str) -> str:
    await asyncio.sleep(0.2)  # network I/O, concurrent with the other fetches
    return PAGES[page]


@task
async def count_words(text: str) -> int:
    return len(text.split())


@task
def shout(text: str) -> str:  # a sync task: it runs in a worker thread
    return text.upper()


@task
async def report(counts: list[int], loud: list[str]) -> dict[str, object]:
    return {"total_words": sum(counts), "per_page": counts, "loudest": max(loud, key=len)}


with Flow("demo") as flow:
    pages = Parameter("pages", default=list(PAGES))
    texts = fetch.map(pages)
    summary = report(count_words.map(texts), shout.map(texts))


if __name__ == "__main__":
    start = time.perf_counter()
    state = flow.run_sync()
    elapsed = time.perf_counter() - start
    print(f"result: {state.result[summary].result}")
    print(f"final state: {state!r} in {elapsed:.2f}s ({len(PAGES)} fetches of 0.2s each, run concurrently)")
