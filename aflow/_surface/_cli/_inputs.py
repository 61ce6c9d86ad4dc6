"""What the ``aflow`` command reads from its user, without click: a flow target and parameters.

Bad input raises `BadInput` (``_errors``), which the command reports in one line (exit code 2).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import BadInput

if TYPE_CHECKING:
    from ..._model._flow import Flow

__all__ = ("load_flow", "parse_params")


# -- targets ----------------------------------------------------------------------------------


def _split_target(target: str) -> tuple[str, str | None]:
    """``file.py:name`` or ``package.module:name`` (the name is optional)."""
    source, sep, name = target.rpartition(":")
    if not sep or not name or "/" in name or "\\" in name or name.endswith(".py"):
        return target, None
    return source, name


def _is_path(source: str) -> bool:
    return source.endswith(".py") or "/" in source or os.sep in source or os.path.exists(source)


def _load_file(source: str) -> Any:
    path = Path(source)
    if not path.is_file():
        raise BadInput(f"no such file: {source}")
    path = path.resolve()
    name = f"aflow_flow_file_{abs(hash(str(path))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BadInput(f"cannot load {source} as Python (does it end in .py?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # for pickling, dataclasses and the like
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the file's own imports of its neighbours work
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise BadInput(f"error while loading {source}{_line_in(exc, path)}: {type(exc).__name__}: {exc}") from exc
    return module


def _line_in(exc: BaseException, path: Path) -> str:
    """``", line N"``: the line of ``path`` that was running when ``exc`` was raised (or a syntax error's)."""
    if isinstance(exc, SyntaxError) and exc.lineno is not None and exc.filename == str(path):
        return f", line {exc.lineno}"
    line = None
    tb = exc.__traceback__
    while tb is not None:  # the innermost frame in the file: a line in a function it calls wins
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f", line {line}" if line is not None else ""


def _load_module(source: str) -> Any:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as exc:
        if exc.name and (source == exc.name or source.startswith(exc.name + ".")):
            raise BadInput(f"no such file or module: {source}") from exc
        raise BadInput(f"error while importing {source}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise BadInput(f"error while importing {source}: {type(exc).__name__}: {exc}") from exc


def load_flow(target: str) -> Flow:
    """Load the flow ``target`` names: ``path/to/file.py:name`` or ``package.module:name``.

    ``name`` is a module attribute holding a `Flow`, or a flow's ``name``; without it, the
    module must define exactly one flow.

    Raises:
        BadInput: No such file or module, it fails to import, or it has no such flow.
    """
    from ..._model._flow import Flow

    source, name = _split_target(target)
    module = _load_file(source) if _is_path(source) else _load_module(source)
    flows = {id(v): v for v in vars(module).values() if isinstance(v, Flow)}
    found = sorted(k for k, v in vars(module).items() if isinstance(v, Flow) and not k.startswith("_"))
    if name is None:
        if len(flows) == 1:
            return next(iter(flows.values()))
        if not flows:
            raise BadInput(f"{source} defines no flow")
        raise BadInput(f"{source} defines several flows ({', '.join(found)}): pick one with {source}:NAME")
    obj = getattr(module, name, None)
    if isinstance(obj, Flow):
        return obj
    by_name = [f for f in flows.values() if f.name == name]
    if len(by_name) == 1:
        return by_name[0]
    known = f" (flows there: {', '.join(found)})" if found else " (it defines no flow)"
    raise BadInput(f"no flow {name!r} in {source}{known}")


# -- parameters -------------------------------------------------------------------------------


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` items; a value that is valid JSON is decoded, any other is a string.

    Raises:
        BadInput: An item has no ``=`` or an empty key, or a key repeats.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"bad parameter {item!r}: expected KEY=VALUE")
        if key in params:
            raise BadInput(f"parameter {key!r} given twice")
        try:
            params[key] = json.loads(text)
        except ValueError:
            params[key] = text
    return params
