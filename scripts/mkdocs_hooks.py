"""mkdocs hook: generate the reference pages from docs/outline.toml and list them in the nav.

``mkdocs.yml`` names this file under ``hooks:``. The nav entry ``Reference: reference/index.md``
becomes the index followed by one sub-section per outline section, so the nav cannot drift from
the outline. The pages themselves come from ``scripts/gen_ref_pages.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import gen_ref_pages

INDEX = "reference/index.md"


def on_config(config: Any) -> Any:
    """Write the reference pages, then expand the nav's reference entry."""
    pages = gen_ref_pages.load_outline()
    gen_ref_pages.generate(pages)
    for entry in config["nav"] or []:
        if isinstance(entry, dict):
            for title, target in entry.items():
                if target == INDEX:
                    entry[title] = [{"Overview": INDEX}, *gen_ref_pages.nav(pages)]
    return config
