"""The course's pyproject.toml, read without importing anything heavy (the command line's --version uses it)."""
from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package (the instructor extra installs it)
    import tomli as tomllib


def project_table(root: Path) -> dict:
    """The [project] table of root/pyproject.toml. The student package takes the course's version, Python
    requirement and base dependencies (what a notebook's kernel needs) from it, so both always agree."""
    with open(Path(root) / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["project"]
