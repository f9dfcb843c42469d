"""Reference solutions, read from the source notebooks (the single source of truth).

The reference of an assignment is the namespace made by running, in order, its source notebook's cells tagged
`setup` (imports) and its solution cells. Solution cells hold definitions only (a test enforces it), so this
runs no figures and no training.
"""
from __future__ import annotations

import functools
import types

from .course import nbgrader_meta, notebook_path, read_notebook


def reference_cells(nb) -> list[str]:
    """Sources of the cells that make up the reference: `setup`-tagged cells and solution cells."""
    sources = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "setup" in cell.get("metadata", {}).get("tags", []) or nbgrader_meta(cell).get("solution"):
            sources.append(cell.source)
    return sources


def namespace_from_cells(sources: list[str], name: str) -> dict:
    """Run cell sources in one fresh module namespace and return it."""
    module = types.ModuleType(name)
    for index, source in enumerate(sources):
        exec(compile(source, f"<{name} cell {index}>", "exec"), module.__dict__)
    return module.__dict__


@functools.lru_cache(maxsize=None)
def _reference(assignment: str) -> dict:
    nb = read_notebook(notebook_path(assignment, "source"))
    return namespace_from_cells(reference_cells(nb), f"reference_{assignment}")


def reference(assignment: str) -> dict:
    """A fresh copy of the reference namespace of an assignment (callers may add or replace names)."""
    return dict(_reference(assignment))
