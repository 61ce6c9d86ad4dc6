"""``aflow new-task FAMILY CLASS``: start a task family in an aflow checkout, in one step.

Writes ``aflow_tasks/<family>.py`` (a template task on the integration kit), its tests
``tests/aflow_tasks/test_<family>.py`` (against a local fake server), the docs page
``docs/tasks/<family>.md``, and adds the family to ``docs/outline.toml`` and the docs' nav in
``mkdocs.yml``. Everything written passes lint, types, the tests and the outline check as is.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import BadInput
from ._task_templates import DOCS_PAGE, FAMILY_MODULE, OUTLINE_ENTRY, TEST_MODULE

if TYPE_CHECKING:
    import click

__all__ = ("new_task_command", "write_family")

_FAMILY = re.compile(r"[a-z][a-z0-9_]*")
_CLASS = re.compile(r"[A-Z][A-Za-z0-9]*")
_NAV_AFTER = re.compile(r"^(?P<indent>\s*)- [^:\n]+: tasks/[^\n]+\.md$", re.MULTILINE)


def _check_names(root: Path, family: str, class_name: str) -> None:
    if not _FAMILY.fullmatch(family) or keyword.iskeyword(family) or family.endswith("_"):
        raise BadInput(f"FAMILY must be a lower-case module name such as acme or acme_cloud, not {family!r}")
    if not _CLASS.fullmatch(class_name):
        raise BadInput(f"CLASS must be a CamelCase class name such as GetWidget, not {class_name!r}")
    if not (root / "aflow_tasks").is_dir() or not (root / "docs" / "outline.toml").is_file():
        raise BadInput(
            f"{root} is not an aflow checkout (no aflow_tasks/ or docs/outline.toml): run aflow new-task at "
            "the repository's root, or pass --root"
        )
    taken = [p for p in (root / "aflow_tasks" / f"{family}.py", root / "aflow_tasks" / family) if p.exists()]
    if taken:
        raise BadInput(f"the family {family!r} exists already ({taken[0]}): pick another name")


def write_family(root: Path, family: str, class_name: str) -> list[Path]:
    """Write the family's files under ``root`` (an aflow checkout); return the paths written or changed.

    Args:
        root: The repository's root.
        family: The family's module name (``acme``).
        class_name: The template task's class name (``GetWidget``).

    Raises:
        BadInput: A name is not valid, ``root`` is no aflow checkout, or the family exists.
    """
    _check_names(root, family, class_name)
    words = family.split("_")
    names = {
        "family": family,
        "Family": "".join(w.capitalize() for w in words),
        "title": " ".join(w.capitalize() for w in words),
        "FAMILY": family.upper(),
        "Class": class_name,
        "host": family.replace("_", "-"),
    }
    classes = sorted([class_name, f"{names['Family']}Error"])
    exported = [f'"{name}"' for name in ("DEFAULT_BASE_URL", "TOKEN_SECRET", *classes, "clients")]
    one_line = f"({', '.join(exported)})"
    names["all"] = one_line if len(one_line) < 100 else "(\n" + "".join(f"    {n},\n" for n in exported) + ")"
    files = {
        root / "aflow_tasks" / f"{family}.py": FAMILY_MODULE,
        root / "tests" / "aflow_tasks" / f"test_{family}.py": TEST_MODULE,
        root / "docs" / "tasks" / f"{family}.md": DOCS_PAGE,
    }
    written = []
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(names), encoding="utf-8")
        written.append(path)
    outline = root / "docs" / "outline.toml"
    outline.write_text(outline.read_text(encoding="utf-8") + OUTLINE_ENTRY.substitute(names), encoding="utf-8")
    written.append(outline)
    mkdocs = root / "mkdocs.yml"
    if mkdocs.is_file():
        text = mkdocs.read_text(encoding="utf-8")
        entries = list(_NAV_AFTER.finditer(text))
        if entries:
            last = entries[-1]
            entry = f"\n{last['indent']}- {names['title']}: tasks/{family}.md"
            mkdocs.write_text(text[: last.end()] + entry + text[last.end() :], encoding="utf-8")
            written.append(mkdocs)
    return written


def new_task_command() -> click.Command:
    """The ``new-task`` command."""
    import click

    @click.command("new-task")
    @click.argument("family")
    @click.argument("class_name", metavar="CLASS")
    @click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path(),
        show_default=True,
        help="The aflow checkout to write into.",
    )
    def new_task(family: str, class_name: str, root: Path) -> None:
        """Start a task family FAMILY with a template task CLASS, its tests and its docs.

        Writes aflow_tasks/FAMILY.py, tests/aflow_tasks/test_FAMILY.py and docs/tasks/FAMILY.md,
        and lists the family in docs/outline.toml and mkdocs.yml.
        """
        for path in write_family(root, family, class_name):
            click.echo(f"wrote {path}")

    return new_task
