"""Run a Jupyter notebook as a task (modelled on Prefect 1's ``prefect.tasks.jupyter``).

`ExecuteNotebook` reads the notebook (without blocking the event loop), injects its parameters
the way papermill does (a code cell tagged ``injected-parameters`` right after the cell tagged
``parameters``, or at the top when the notebook has none), runs every code cell in a kernel driven
from the event loop by nbclient's async API, and returns the executed notebook exported by
nbconvert in ``output_format``.

- A cell that raises fails the task with the exception's name and value (and the cell's number).
- ``log_output=True`` logs each output of each cell to the task logger as the kernel produces it.
- When the task is cancelled (a cancelled flow run, a task ``timeout``), the kernel is shut down
  (killed), shielded from the cancellation and bounded in time, so no kernel process outlives
  the task; the task ends Cancelled (TimedOut on a ``timeout``).

The kernel is started and stopped by the task itself rather than by nbclient's
``async_setup_kernel``, which would replace the event loop's SIGINT/SIGTERM handlers (the
engine's, or another notebook's) and register an ``atexit`` hook per run; the cells run through
nbclient's ``async_execute_cell`` as in ``async_execute``. The file is read with `anyio.Path`;
importing nbconvert, validating the notebook, finding the kernelspec and the export run in worker
threads, so the loop stays free for the flow's other tasks.

Needs the ``jupyter`` extra: ``pip install aflow-engine[jupyter]``.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.to_thread

from aflow import Task, defaults_from_attrs, signals
from aflow.integration import cleanup

if TYPE_CHECKING:
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbformat import NotebookNode

__all__ = ("ExecuteNotebook",)

_CLEANUP_SECONDS = 30.0  # bound on the (shielded) shutdown of the kernel
_GRACEFUL_SECONDS = 5.0  # how long a finished kernel may take to exit before it is killed
_LOG_CHARS = 10_000  # a longer output is cut in the log


def _require() -> tuple[Any, Any, Any]:
    """Return the ``nbformat``, ``nbclient`` and ``nbconvert`` modules, or raise naming the extra."""
    try:
        import nbclient
        import nbconvert
        import nbformat
    except ImportError as exc:
        raise ImportError("ExecuteNotebook needs nbclient and nbconvert: pip install aflow-engine[jupyter]") from exc
    return nbformat, nbclient, nbconvert


def _python_literal(value: Any) -> str:
    """Python source for ``value``, as papermill's Python translator writes it."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return f"float({str(value)!r})"
        return repr(value)
    if isinstance(value, Mapping):
        items = ", ".join(f"{_python_literal(k)}: {_python_literal(v)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_python_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_python_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(str(value))


def _parameters_source(parameters: Mapping[str, Any]) -> str:
    """The injected cell's source: ``# Parameters`` then one assignment per parameter."""
    lines = ["# Parameters"]
    for name, value in parameters.items():
        if not str(name).isidentifier():
            raise ValueError(f"notebook parameter names must be Python identifiers, got {name!r}")
        lines.append(f"{name} = {_python_literal(value)}")
    return "\n".join(lines) + "\n"


def _inject_parameters(nb: NotebookNode, parameters: Mapping[str, Any]) -> None:
    """Insert a cell tagged ``injected-parameters`` into ``nb``, in place, as papermill does.

    A previous ``injected-parameters`` cell is removed; the new one goes right after the first
    cell tagged ``parameters``, or first when there is none. The parameters are also recorded in
    the notebook's ``metadata.papermill.parameters``.

    Args:
        nb: The notebook (nbformat 4).
        parameters: The parameters, by name (values: what Python literals can spell).
    """
    nbformat, _, _ = _require()
    source = _parameters_source(parameters)
    cell = nbformat.v4.new_code_cell(source=source)
    cell.metadata["tags"] = ["injected-parameters"]
    cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    at = next((i + 1 for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])), 0)
    cells.insert(at, cell)
    nb.cells = cells
    nb.metadata.setdefault("papermill", {})["parameters"] = dict(parameters)


def _output_text(out: Mapping[str, Any]) -> str | None:
    """The text to log for one cell output (None for outputs without a text form)."""
    kind = out.get("output_type")
    if kind == "stream":
        text = str(out.get("text", ""))
    elif kind in ("execute_result", "display_data"):
        data = out.get("data") or {}
        if "text/plain" not in data:
            return None
        text = str(data["text/plain"])
    elif kind == "error":
        text = f"{out.get('ename')}: {out.get('evalue')}"
    else:
        return None
    text = text.rstrip("\n")
    if len(text) > _LOG_CHARS:
        text = text[:_LOG_CHARS] + f"... ({len(text) - _LOG_CHARS} more characters)"
    return text or None


def _client(nb: NotebookNode, task: ExecuteNotebook, kernel_name: str | None) -> NotebookClient:
    """An nbclient client for ``nb`` whose outputs go to the task logger as they arrive."""
    _, nbclient, _ = _require()
    logger = task.logger
    log_output = task.log_output

    class _LoggingClient(nbclient.NotebookClient):  # type: ignore[misc,name-defined]
        def output(self, outs: Any, msg: Any, display_id: Any, cell_index: int) -> Any:
            out = super().output(outs, msg, display_id, cell_index)
            if log_output and out is not None:
                text = _output_text(out)
                if text is not None:
                    stream = "[stderr] " if out.get("name") == "stderr" else ""
                    logger.info("cell %d: %s%s", cell_index, stream, text)
            return out

    kwargs: dict[str, Any] = {"kernel_name": kernel_name} if kernel_name else {}
    client: NotebookClient = _LoggingClient(nb, **kwargs)
    return client


async def _shutdown(client: NotebookClient, km: AsyncKernelManager, now: bool) -> None:
    """Stop the client's channels and the kernel (killed when ``now``, else asked, then killed)."""
    from jupyter_core.utils import ensure_async

    kc = client.kc
    if kc is not None:
        await ensure_async(kc.stop_channels())  # type: ignore[func-returns-value]
        client.kc = None
    if not km.has_kernel:
        await ensure_async(km.cleanup_resources())
        return
    if not now:
        with anyio.move_on_after(_GRACEFUL_SECONDS):
            await km.shutdown_kernel(now=False)
            return
    await km.shutdown_kernel(now=True)


class ExecuteNotebook(Task):
    """Run a Jupyter notebook and return it exported by nbconvert (Prefect 1's ``ExecuteNotebook``).

    To parametrize the notebook, tag its parameters cell ``parameters`` as papermill documents
    (https://papermill.readthedocs.io/en/latest/usage-parameterize.html): the values given are
    assigned in a cell tagged ``injected-parameters`` inserted after it.

    Args:
        path: The notebook's file (a local path). Can also be given to ``run``.
        parameters: The notebook's parameters, by name. Can also be given to ``run``.
        log_output: Log each cell's output to the task logger (at INFO) as the kernel produces it.
        output_format: An nbconvert exporter name: ``"notebook"`` (the executed .ipynb as JSON
            text), ``"html"``, ``"markdown"``, ``"python"``, ``"rst"``, ``"latex"``,
            ``"asciidoc"``, ``"script"``, ``"slides"``, ``"pdf"``, ``"webpdf"``...; ``"json"`` is
            treated as ``"notebook"``.
        exporter_kwargs: Arguments for the exporter (``{"exclude_input": True}``...).
        kernel_name: The kernel to run the notebook with (``"python3"``); by default the
            notebook's kernelspec, else the default kernel.
        **kwargs: Passed to `aflow.Task`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        parameters: dict[str, Any] | None = None,
        log_output: bool = False,
        output_format: str = "notebook",
        exporter_kwargs: dict[str, Any] | None = None,
        kernel_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.path = path
        self.parameters = parameters
        self.log_output = log_output
        self.output_format = output_format
        self.exporter_kwargs = exporter_kwargs
        self.kernel_name = kernel_name
        super().__init__(**kwargs)

    @defaults_from_attrs("path", "parameters", "output_format", "exporter_kwargs")
    async def run(
        self,
        path: str | os.PathLike[str] | None = None,
        parameters: dict[str, Any] | None = None,
        output_format: str | None = None,
        exporter_kwargs: dict[str, Any] | None = None,
    ) -> str | bytes:
        """Execute the notebook and return it exported in ``output_format``.

        Args:
            path: The notebook's file (a local path).
            parameters: The notebook's parameters, by name.
            output_format: An nbconvert exporter name (``"json"`` means ``"notebook"``).
            exporter_kwargs: Arguments for the exporter.

        Returns:
            The exported notebook: a str (bytes for the ``pdf`` and ``webpdf`` exporters).

        Raises:
            ValueError: No ``path``, or an unknown ``output_format``.
            aflow.signals.FAIL: A cell raised (the message names the exception), the kernel
                died, or the kernel could not be started.
        """
        if path is None:
            raise ValueError("ExecuteNotebook needs a `path`: give it to __init__ or to run")
        fmt = "notebook" if output_format in (None, "json") else str(output_format)
        # importing nbconvert (a first time) and validating the notebook take a while: off the loop
        nbformat, _, nbconvert = await anyio.to_thread.run_sync(_require)
        try:  # before any kernel starts
            exporter = await anyio.to_thread.run_sync(nbconvert.get_exporter, fmt)
        except NameError as exc:  # nbconvert's ExporterNameError
            raise ValueError(f"ExecuteNotebook: unknown output_format {fmt!r}: {exc}") from None
        text = await anyio.Path(path).read_text(encoding="utf-8")
        nb = await anyio.to_thread.run_sync(lambda: nbformat.reads(text, as_version=4))
        if parameters:
            _inject_parameters(nb, parameters)
        executed = await self._execute(nb, os.fspath(path))
        body, _resources = await anyio.to_thread.run_sync(
            lambda: nbconvert.export(exporter, executed, **(exporter_kwargs or {}))
        )
        result: str | bytes = body
        return result

    async def _execute(self, nb: NotebookNode, where: str) -> NotebookNode:
        """Run every code cell of ``nb`` in a new kernel, shut down whatever happens."""
        _, nbclient, _ = _require()
        from jupyter_client.kernelspec import NoSuchKernel
        from jupyter_core.utils import ensure_async

        client = _client(nb, self, self.kernel_name)
        km = cast("AsyncKernelManager", client.create_kernel_manager())  # nbclient's default class
        client.km = km
        clean = False
        current = -1
        try:
            try:  # finding the kernelspec may import ipykernel (a first time): off the loop
                await anyio.to_thread.run_sync(lambda: km.kernel_spec)
            except NoSuchKernel as exc:
                raise signals.FAIL(f"notebook {where!r}: no such kernel {exc.args[0]!r}") from None
            await km.start_kernel(extra_arguments=client.extra_arguments)
            await client.async_start_new_kernel_client()
            client.reset_execution_trackers()
            self.logger.debug("executing notebook %r with kernel %r", where, client.kernel_name)
            assert client.kc is not None
            msg_id = await ensure_async(client.kc.kernel_info())
            info = await client.async_wait_for_reply(msg_id)
            if info is not None and "language_info" in info["content"]:
                nb.metadata["language_info"] = info["content"]["language_info"]
            for current, cell in enumerate(nb.cells):
                await client.async_execute_cell(cell, current, execution_count=client.code_cells_executed + 1)
            client.set_widgets_metadata()
            clean = True
            return nb
        except nbclient.exceptions.DeadKernelError:
            # nbclient turns a cancellation of the cell's wait into DeadKernelError: undo that
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError() from None
            raise signals.FAIL(f"notebook {where!r}: the kernel died while running cell {current}") from None
        except nbclient.exceptions.CellExecutionError as exc:
            count = nb.cells[current].get("execution_count")
            label = f"cell {current}" + (f" (In [{count}])" if count else "")
            raise signals.FAIL(f"notebook {where!r} failed in {label}: {exc.ename}: {exc.evalue}") from None
        finally:
            now = not clean
            await cleanup(
                lambda: _shutdown(client, km, now), "shut down the kernel", self.logger, limit=_CLEANUP_SECONDS
            )
