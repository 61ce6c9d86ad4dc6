"""A griffe extension: document some modules from their imported (runtime) form.

Griffe reads source code; classes whose docstrings or ``run`` methods are built when their module
is imported (such as the Kubernetes CRUD tasks) would show none of it. A page of
``docs/outline.toml`` with ``inspect = true`` names such a module: once its top-level package is
loaded, this extension replaces the module with griffe's inspection of the imported module.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

import griffe

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import gen_ref_pages


class RuntimeDocs(griffe.Extension):
    """Replace the modules of ``inspect = true`` outline pages with their runtime inspection."""

    def __init__(self) -> None:
        super().__init__()
        self.modules = sorted({page.module for page in gen_ref_pages.load_outline() if page.inspect})

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Swap in the inspected modules of this package."""
        for path in self.modules:
            top, _, rest = path.partition(".")
            if top != pkg.name or not rest:
                continue
            static = pkg[rest]
            inspected = griffe.inspect(
                static.name,
                filepath=static.filepath,
                import_paths=[str(gen_ref_pages.ROOT), *sys.path],
                parent=static.parent,
                docstring_parser=loader.docstring_parser,
                docstring_options=loader.docstring_options,
                lines_collection=loader.lines_collection,
                modules_collection=loader.modules_collection,
            )
            _tidy(inspected)
            static.parent.set_member(static.name, inspected)


# docstrings built at run time document arguments that a ``**kwargs`` signature receives, and the
# the generated CRUD classes get their run signatures and docstrings at import time: read them leniently
_LENIENT = {"warn_unknown_params": False, "warn_missing_types": False, "warnings": False}


def _tidy(obj: griffe.Object) -> None:
    """Parse the inspected docstrings leniently; drop class attributes (their docstring is their type's)."""
    if obj.docstring is not None:
        obj.docstring.parser_options = cast("Any", {**obj.docstring.parser_options, **_LENIENT})
    for name, member in list(obj.members.items()):
        if member.is_alias:
            continue
        if obj.is_class and member.is_attribute:
            obj.del_member(name)
        elif member.is_module or member.is_class or member.is_function:
            _tidy(member)  # type: ignore[arg-type]
