"""The live progress display of a flow run (``flow.run(progress=True)``), drawn with rich.

One line for the whole run (tasks done of total, running, failed, elapsed) and one per mapped
task name (its children). The display follows a `RunTracker` set as the run's observer and
reads its counters when it redraws (about 8 times a second), so a task's end costs a few integer
updates however fast tasks finish.

Nothing is written, and no observer is set, when the console is neither a terminal nor Jupyter
(output piped to a file, CI logs). In Jupyter, rich draws through ipywidgets when installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

try:
    from rich.console import Console, RenderableType
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("The progress display needs rich: pip install 'aflow-engine[cli]'") from exc

from ._run_tracker import TIMES, RunTracker

if TYPE_CHECKING:
    from .._engine._scheduler import FlowRunner
    from ..states import State

__all__ = ("ProgressDisplay", "is_interactive", "run_with_progress")


def is_interactive(console: Console) -> bool:
    """Whether a live display may draw on ``console``: a terminal, or Jupyter."""
    return bool(console.is_interactive or console.is_jupyter)


class _Progress(Progress):
    """A rich Progress that copies the tracker's counters into its rows before each redraw."""

    def __init__(self, display: ProgressDisplay, *args: Any, **kwargs: Any) -> None:
        self._display = display  # before Progress.__init__, which renders once
        super().__init__(*args, **kwargs)

    def get_renderables(self) -> Iterable[RenderableType]:
        self._display.sync()
        yield from super().get_renderables()


def _fields(running: int, failed: int, waiting: int = 0) -> dict[str, Any]:
    return {
        "running": " ".join(
            part for part in (f"{running} running" if running else "", f"{waiting} waiting" if waiting else "") if part
        ),
        "failed": f"[bold red]{failed} failed[/]" if failed else "",
        "ok": not failed,
    }


class _StatusColumn(SpinnerColumn):
    """A spinner while the row runs; at the end a green tick, or a red cross when something failed."""

    def render(self, task: Any) -> RenderableType:
        if task.finished:
            return Text.from_markup("[green]✓[/]" if task.fields.get("ok", True) else "[bold red]✗[/]")
        return super().render(task)


class ProgressDisplay:
    """A live display of a flow run's tasks.

    Pass it as ``flow.run(progress=...)`` to choose the console or refresh settings
    (``progress=True`` makes one on the standard output).

    Args:
        console: Where to draw (default: rich's console on stdout).
        auto_refresh: Redraw from a background thread; with False, only `refresh` and `stop` draw.
        refresh_per_second: Redraws per second when ``auto_refresh``.
        transient: Erase the display when the run ends.
    """

    @classmethod
    def of(cls, progress: bool | Console | ProgressDisplay) -> ProgressDisplay:
        """The display a ``progress=`` argument asks for: ``True``, a rich ``Console`` or a display.

        Raises:
            TypeError: ``progress`` is none of these.
        """
        if isinstance(progress, ProgressDisplay):
            return progress
        if isinstance(progress, Console):
            return cls(progress)
        if progress is True:
            return cls()
        raise TypeError(f"progress must be a bool, a rich Console or a ProgressDisplay, not {progress!r}")

    def __init__(
        self,
        console: Console | None = None,
        *,
        auto_refresh: bool = True,
        refresh_per_second: float = 8,
        transient: bool = False,
    ) -> None:
        self.console = console if console is not None else Console()
        self.enabled = is_interactive(self.console)
        self.tracker: RunTracker | None = None
        self._rows: dict[str, TaskID] = {}
        self._overall: TaskID | None = None
        self._progress = _Progress(
            self,
            _StatusColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[running]}"),
            TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(),
            console=self.console,
            auto_refresh=auto_refresh,
            refresh_per_second=refresh_per_second,
            transient=transient,
            disable=not self.enabled,
        )

    def attach(self, tracker: RunTracker) -> None:
        """Show ``tracker``'s run."""
        self.tracker = tracker
        self._rows = {}
        self._overall = self._progress.add_task(f"[bold]{tracker.flow_name}[/]", total=tracker.total, **_fields(0, 0))
        for name in tracker.mapped_names:  # shown once they map (adding rows while drawing would recurse)
            self._rows[name] = self._progress.add_task(f"  {name}", total=None, visible=False, **_fields(0, 0))

    def sync(self) -> None:
        """Copy the tracker's counters into the rows (called before every redraw)."""
        tracker = self.tracker
        if tracker is None or self._overall is None:  # not attached yet
            return
        progress = self._progress
        progress.update(
            self._overall,
            total=tracker.total,
            completed=tracker.done,
            **_fields(tracker.running, tracker.failed, tracker.waiting),
        )
        waiting = tracker.waiting_by_name()
        for name, (done, total, running, failed) in tracker.mapped_by_name().items():
            row = self._rows.get(name)
            if row is not None:
                progress.update(
                    row,
                    description=f"  {name} {TIMES}{total}",
                    total=total,
                    completed=done,
                    visible=True,
                    **_fields(running, failed, waiting.get(name, 0)),
                )

    def start(self) -> None:
        """Start drawing (nothing happens when not enabled)."""
        self._progress.start()

    def refresh(self) -> None:
        """Redraw now."""
        self._progress.refresh()

    def stop(self, state: State | None = None) -> None:
        """Draw the final counts and stop.

        Args:
            state: The run's final state: a failed run's line ends red, with the number of task
                runs that failed.
        """
        if state is not None and self._overall is not None and self.tracker is not None:
            self.sync()
            if not state.is_successful():
                failed = self.tracker.failed
                label = f"{failed} failed" if failed else type(state).__name__
                # finished (so the status column shows its cross), whatever was left unrun
                self._progress.update(
                    self._overall,
                    description=f"[bold red]{self.tracker.flow_name}[/]",
                    failed=f"[bold red]{label}[/]",
                    ok=False,
                    completed=self.tracker.total,
                )
        self._progress.stop()


async def run_with_progress(runner: FlowRunner, progress: Any, tracker: RunTracker | None = None) -> State:
    """Run ``runner`` with a live display, unless its console is not interactive.

    Args:
        runner: The flow run to show.
        progress: True, a rich ``Console``, or a `ProgressDisplay`.
        tracker: An observer already set on the runner, to reuse (the CLI's), else a new one.
    """
    display = ProgressDisplay.of(progress)
    if not display.enabled:
        return await runner.run()
    if tracker is None:
        tracker = RunTracker(runner.flow)
        runner.observer = tracker
    display.attach(tracker)
    display.start()
    state: State | None = None
    try:
        state = await runner.run()
        return state
    finally:
        tracker.finish()
        display.stop(state)
