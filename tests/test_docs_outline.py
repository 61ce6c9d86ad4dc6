"""docs/outline.toml covers the public API, and every task class documents its arguments.

Fails when a public name of ``aflow`` (``aflow.__all__``, modules aside) or of one of the public
``aflow`` modules the outline documents is missing from the outline, when an outline entry names
nothing, when a public task class of ``aflow_tasks`` is missing, or when a task class leaves an
``__init__`` or ``run`` argument out of the ``Args:`` sections of its class docstring and its
``run`` docstring. A family module that cannot be imported yet is skipped, saying why.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import aflow
import aflow_tasks

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts import gen_ref_pages  # noqa: E402

PAGES = gen_ref_pages.load_outline()
SECTION = re.compile(r"^(?P<indent>[ \t]*)(Args|Arguments|Keyword Args|Keyword Arguments|Other Parameters):[ \t]*$")
ENTRY = re.compile(r"^(?P<name>\*{0,2}[A-Za-z_]\w*)\s*(\([^)]*\))?\s*:")


def resolve(path: str) -> Any:
    """The object at a dotted path: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part)
        return obj
    raise ModuleNotFoundError(path)


def documented(obj: object) -> bool:
    """Whether some outline page lists ``obj`` (the same object, under any of its names)."""
    for page in PAGES:
        for name in page.names:
            try:
                if resolve(f"{page.module}.{name}") is obj:
                    return True
            except (ImportError, AttributeError):
                continue
    return False


def args_names(doc: str | None) -> set[str]:
    """The argument names listed in the Google-style ``Args:`` sections of a docstring."""
    names: set[str] = set()
    lines = inspect.cleandoc(doc or "").splitlines()
    i = 0
    while i < len(lines):
        section = SECTION.match(lines[i])
        i += 1
        if section is None:
            continue
        outer, entry_indent = len(section["indent"]), None
        while i < len(lines):
            line = lines[i]
            indent = len(line) - len(line.lstrip())
            if line.strip() and indent <= outer:
                break
            if line.strip() and (entry_indent is None or indent <= entry_indent):
                entry_indent = indent
                entry = ENTRY.match(line.strip())
                if entry:
                    names.add(entry["name"])
            i += 1
    return names


def family_modules() -> list[str]:
    """Every public module of ``aflow_tasks`` (packages included; private ones skipped)."""
    found = []
    for info in pkgutil.walk_packages(aflow_tasks.__path__, "aflow_tasks.", onerror=lambda name: None):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(found)


def import_family(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as error:  # being written, or a broken family: its own tests say which
        pytest.skip(f"{name} is not importable yet: {error!r}")


def public_names(module: types.ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
        ]
    return list(names)


def task_classes(module: types.ModuleType) -> list[type[aflow.Task]]:
    found = []
    for name in public_names(module):
        obj = getattr(module, name, None)
        if isinstance(obj, type) and issubclass(obj, aflow.Task) and obj.__module__.startswith("aflow_tasks"):
            found.append(obj)
    return found


def arguments(function: Any) -> list[str]:
    """The names a caller can give: named parameters, and ``**name`` for a var-keyword one."""
    names = []
    for parameter in list(inspect.signature(function).parameters.values())[1:]:  # self
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            names.append(f"**{parameter.name}")
        elif parameter.kind is not inspect.Parameter.VAR_POSITIONAL:
            names.append(parameter.name)
    return names


def undocumented(cls: type[aflow.Task]) -> dict[str, list[str]]:
    """The ``__init__`` and ``run`` arguments of a task class missing from its docstrings."""
    known = args_names(cls.__doc__) | args_names(inspect.getdoc(cls.run))
    if cls.__init__ is not aflow.Task.__init__:
        known |= args_names(cls.__init__.__doc__)
    missing: dict[str, list[str]] = {}
    for method in ("__init__", "run"):
        function = getattr(cls, method)
        if method == "__init__" and function is aflow.Task.__init__:
            continue  # Task's own arguments are documented on aflow.Task
        absent = [n for n in arguments(function) if n not in known and n.lstrip("*") not in known]
        if absent:
            missing[method] = absent
    return missing


# ---------------------------------------------------------------------------------------- tests


def test_the_outline_parses_and_has_the_task_families() -> None:
    keys = {(p.section, p.key) for p in PAGES}
    assert ("tasks", "shell") in keys
    assert ("core", "tasks") in keys
    assert len({p.path for p in PAGES}) == len(PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: f"{p.section}.{p.key}")
def test_every_outline_entry_exists(page: gen_ref_pages.Page) -> None:
    try:
        module = resolve(page.module)
    except ImportError as error:
        if not page.module.startswith("aflow_tasks."):
            raise
        pytest.skip(f"{page.module} is not importable yet: {error!r}")
    assert isinstance(module, types.ModuleType), f"{page.module} is not a module"
    assert module.__doc__, f"{page.module} has no docstring to open its page"
    missing = [name for name in page.names if not hasattr(module, name)]
    assert not missing, f"[pages.{page.section}.{page.key}] lists names {page.module} does not have: {missing}"
    assert len(set(page.names)) == len(page.names), "a name is listed twice"


@pytest.mark.parametrize("module", sorted({p.module for p in PAGES}))
def test_every_module_the_outline_names_imports(module: str) -> None:
    """``import <module>`` works for every page's module (not only attribute access on a parent)."""
    imported = importlib.import_module(module)
    assert imported.__name__ == module


def test_every_public_name_of_aflow_is_in_the_outline() -> None:
    missing = []
    for name in aflow.__all__:
        obj = getattr(aflow, name)
        if isinstance(obj, types.ModuleType):
            continue  # its own names are checked below
        if not any(page.module == "aflow" and name in page.names for page in PAGES) and not documented(obj):
            missing.append(name)
    assert not missing, f"add these public names of aflow to docs/outline.toml: {missing}"


@pytest.mark.parametrize("module", sorted({p.module for p in PAGES if p.module.startswith("aflow.")}))
def test_every_public_name_of_an_outlined_aflow_module_is_in_the_outline(module: str) -> None:
    listed = {name for page in PAGES if page.module == module for name in page.names}
    listed |= {p.module.rpartition(".")[2] for p in PAGES if p.module.startswith(f"{module}.")}  # submodule pages
    missing = [name for name in resolve(module).__all__ if name not in listed]
    assert not missing, f"add these names of {module} to docs/outline.toml: {missing}"


def test_the_public_aflow_modules_have_pages() -> None:
    modules = {p.module for p in PAGES}
    for name in aflow.__all__:
        obj = getattr(aflow, name)
        if isinstance(obj, types.ModuleType):
            assert f"aflow.{name}" in modules, f"aflow.{name} has no page in docs/outline.toml"


@pytest.mark.parametrize("module_name", family_modules())
def test_every_task_class_is_in_the_outline(module_name: str) -> None:
    module = import_family(module_name)
    missing = [cls.__name__ for cls in task_classes(module) if not documented(cls)]
    assert not missing, f"add these task classes of {module_name} to docs/outline.toml: {missing}"


@pytest.mark.parametrize("module_name", family_modules())
def test_every_task_class_documents_its_arguments(module_name: str) -> None:
    module = import_family(module_name)
    problems = {
        f"{cls.__module__}.{cls.__qualname__}": gaps for cls in task_classes(module) if (gaps := undocumented(cls))
    }
    assert not problems, (
        f"document these arguments in an Args: section of the class docstring or of run's docstring: {problems}"
    )


def test_the_docstring_check_catches_a_gap() -> None:
    class Documented(aflow.Task):
        """A task.

        Args:
            size (int): How many.
                Continued.
            **kwargs: Task arguments.
        """

        def __init__(self, size: int = 1, colour: str = "red", **kwargs: Any) -> None:
            self.size, self.colour = size, colour
            super().__init__(**kwargs)

        async def run(self, size: int | None = None, *, shape: str = "") -> int:
            """Run.

            Args:
                shape: The shape.

            Returns:
                size: not an argument.
            """
            return size or self.size

    assert args_names(Documented.__doc__) == {"size", "**kwargs"}
    assert undocumented(Documented) == {"__init__": ["colour"]}


def test_the_family_walk_sees_packages_and_modules() -> None:
    modules = family_modules()
    assert "aflow_tasks.shell" in modules
    assert all(not part.startswith("_") for name in modules for part in name.split("."))
