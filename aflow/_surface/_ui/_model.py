"""What the UI shows, derived from a run's recorded task states (no I/O, no aiohttp).

A run's history is every state each task run entered (`aflow.history.RunStore.task_history`).
`RunView.build` folds it once into task runs (one per task slug and map index) with their
attempts and timeline segments, and per-task counts for the graph; the server keeps the view
of a finished run and serves pages of it, so a run with 100,000 task runs is read once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..._persist._history._records import TaskStateRecord, to_iso

__all__ = ("ATTEMPT", "NOT_RECORDED", "WAIT", "WAITING", "RunView", "TaskRun", "TaskSummary", "iso")

# states a task run is waiting in (not running and not finished); Looped is followed by the next loop's Running
WAITING = frozenset({"Pending", "Scheduled", "Retrying", "Looped", "Paused", "Queued", "Submitted", "Resume"})


ATTEMPT = "attempt"  # a timeline segment: the task ran
WAIT = "wait"  # a timeline segment: the task waited to be retried
NOT_RECORDED = "NotRecorded"  # a task of a finished run's graph without any recorded state (a parameter)


def iso(at: datetime | None) -> str | None:
    """``at`` as ISO-8601 text in UTC, or None."""
    return None if at is None else to_iso(at)


@dataclass(slots=True)
class TaskRun:
    """One task run (a task, or one child of a mapped task) and what happened to it.

    ``segments`` are its timeline: ``(start, end, state, "attempt")`` per attempt (``end`` None
    while it runs; ``state`` the state that ended it: ``"Retrying"`` for a failed attempt to be
    retried) and ``(start, end, "Retrying", "wait")`` per wait before the next attempt.
    """

    seq: int
    slug: str
    name: str
    map_index: int | None
    state: str = "Pending"
    message: str | None = None
    first_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempts: int = 0
    segments: list[tuple[datetime, datetime | None, str, str]] = field(default_factory=list)

    def add(self, record: TaskStateRecord) -> None:
        """Fold the next recorded state of this task run in."""
        at, state = record.timestamp, record.state
        segments = self.segments
        if self.first_at is None:
            self.first_at = at
        if segments and segments[-1][1] is None:  # close the open attempt (with the state that ended it) or wait
            start, _, open_state, kind = segments[-1]
            segments[-1] = (start, at, state if kind == ATTEMPT else open_state, kind)
        if state == "Running":
            self.attempts += 1
            if self.started_at is None:
                self.started_at = at
            segments.append((at, None, "Running", ATTEMPT))
            self.ended_at = None
        elif state in WAITING:
            if state == "Retrying":
                segments.append((at, None, "Retrying", WAIT))
            self.ended_at = None
        else:
            self.ended_at = at
        self.state = state
        self.message = record.message

    def to_json(self) -> dict[str, Any]:
        """The task run as the JSON API gives it."""
        return {
            "slug": self.slug,
            "name": self.name,
            "map_index": self.map_index,
            "state": self.state,
            "message": self.message,
            "started_at": iso(self.started_at or self.first_at),
            "ended_at": iso(self.ended_at),
            "attempts": self.attempts,
            "segments": [[iso(start), iso(end), state, kind] for start, end, state, kind in self.segments],
        }


@dataclass(slots=True)
class TaskSummary:
    """One task of the flow: its own state and, for a mapped task, its children's states counted."""

    slug: str
    name: str
    state: str = "Pending"
    mapped: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The summary as the JSON API gives it."""
        return {
            "slug": self.slug,
            "name": self.name,
            "state": self.state,
            "mapped": self.mapped,
            "counts": self.counts,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
        }


@dataclass(slots=True)
class RunView:
    """A run's task runs (in start order) and per-task summaries (in the flow's order)."""

    task_runs: list[TaskRun]
    summaries: dict[str, TaskSummary]
    counts: dict[str, int]

    @classmethod
    def build(
        cls, history: Iterable[TaskStateRecord], graph: dict[str, list[dict[str, Any]]] | None, finished: bool = False
    ) -> RunView:
        """Fold a run's recorded task states (in recorded order) into a view.

        Args:
            history: The run's task states, as `RunStore.task_history` returns them.
            graph: The run's recorded graph, whose nodes order the summaries, or None.
            finished: Whether the run has ended: its graph's tasks without a recorded state
                (parameters, which the engine does not record) are ``"NotRecorded"`` rather
                than ``"Pending"``.
        """
        runs: dict[tuple[str, int | None], TaskRun] = {}
        for record in history:
            key = (record.task_slug, record.map_index)
            run = runs.get(key)
            if run is None:
                run = runs[key] = TaskRun(record.seq, record.task_slug, record.task_name, record.map_index)
            run.add(record)
        summaries: dict[str, TaskSummary] = {}
        for node in (graph or {}).get("nodes", ()):
            summaries[node["slug"]] = TaskSummary(node["slug"], node["name"], mapped=bool(node.get("mapped")))
        counts: dict[str, int] = {}
        for run in runs.values():
            summary = summaries.get(run.slug)
            if summary is None:
                summary = summaries[run.slug] = TaskSummary(run.slug, run.name)
            begun = run.started_at or run.first_at
            if begun is not None and (summary.started_at is None or begun < summary.started_at):
                summary.started_at = begun
            if run.map_index is None:
                summary.state = run.state
                if run.state == "Mapped":
                    summary.mapped = True
                    if run.ended_at is not None:
                        summary.ended_at = max(summary.ended_at or run.ended_at, run.ended_at)
                    continue  # the parent of mapped children is not a task run of its own
                summary.ended_at = run.ended_at
            else:
                summary.mapped = True
                summary.counts[run.state] = summary.counts.get(run.state, 0) + 1
                if run.ended_at is not None and (summary.ended_at is None or run.ended_at > summary.ended_at):
                    summary.ended_at = run.ended_at
            counts[run.state] = counts.get(run.state, 0) + 1
        for summary in summaries.values():
            if finished and summary.state == "Pending" and not summary.counts and summary.started_at is None:
                summary.state = NOT_RECORDED
            elif summary.mapped and summary.state == "Pending" and summary.counts:
                summary.state = "Running"  # children started; the parent's Mapped state comes at the end
            elif not summary.mapped and not summary.counts:
                summary.counts = {summary.state: 1}
        task_runs = [run for run in runs.values() if not (run.map_index is None and run.state == "Mapped")]
        task_runs.sort(key=_start_order)
        return cls(task_runs, summaries, counts)

    def select(self, task: str | None = None, state: str | None = None) -> Sequence[TaskRun]:
        """The task runs of task ``task`` (a name or slug) in state ``state``; None matches any."""
        if task is None and state is None:
            return self.task_runs
        return [
            run
            for run in self.task_runs
            if (task is None or task in (run.name, run.slug)) and (state is None or run.state == state)
        ]


def _start_order(run: TaskRun) -> tuple[float, int]:
    begun = run.started_at or run.first_at
    return (begun.timestamp() if begun is not None else 0.0, run.seq)
