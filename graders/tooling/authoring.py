"""Edit source notebooks as plain text, and turn the text back into the notebook.

`nnfs totext source/01_neuron/neuron.ipynb > /tmp/neuron.txt`, edit, then
`nnfs fromtext /tmp/neuron.txt source/01_neuron/neuron.ipynb`. The .ipynb stays the only committed source;
the text form is a scratch copy for editing and review. Round trip is exact (a test checks it).

Cell markers, one per line:
  # %% md                      a markdown cell
  # %% code                    a plain code cell
  # %% setup                   a code cell tagged `setup` (imports; part of the reference namespace)
  # %% solution <grade_id>     an nbgrader solution cell (autograded answer)
  # %% test <grade_id> <pts>   an nbgrader test cell (locked, graded, worth <pts> points)
  # %% answer <grade_id> <pts> an nbgrader manually graded answer (markdown a TA grades, worth <pts> points)

Test cells are tagged `raises-exception`: JupyterLab's Run All (and nbclient) then go on past a failed
check, so a student sees the state of every exercise and every figure in one run.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
_LANGUAGE = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
             "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
             "pygments_lexer": "ipython3", "version": "3.11"}


def _nbgrader(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return meta


def _points(text: str) -> float:
    """A marker's points as the notebook stores them: 3 rather than 3.0."""
    points = float(text)
    return int(points) if points.is_integer() else points


def _cell_id(index: int) -> str:
    return f"cell-{index:03d}"


def text_to_notebook(text: str):
    """Build a notebook from the marked-up text form."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(_KERNELSPEC), "language_info": dict(_LANGUAGE)}
    blocks: list[tuple[list[str], list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %% "):
            blocks.append((line[5:].split(), []))
        elif blocks:
            blocks[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"text before the first cell marker: {line!r}")
    for index, (marker, lines) in enumerate(blocks):
        while lines and not lines[-1].strip():
            lines.pop()
        source = "\n".join(lines)
        kind = marker[0]
        if kind == "md":
            cell = nbformat.v4.new_markdown_cell(source)
        elif kind == "answer":
            cell = nbformat.v4.new_markdown_cell(source)
            cell.metadata["nbgrader"] = _nbgrader(marker[1], grade=True, solution=True, locked=False,
                                                  points=_points(marker[2]))
        else:
            cell = nbformat.v4.new_code_cell(source)
            if kind == "setup":
                cell.metadata["tags"] = ["setup"]
            elif kind == "solution":
                cell.metadata["nbgrader"] = _nbgrader(marker[1], grade=False, solution=True, locked=False)
            elif kind == "test":
                cell.metadata["nbgrader"] = _nbgrader(marker[1], grade=True, solution=False, locked=True,
                                                      points=_points(marker[2]))
                cell.metadata["tags"] = ["raises-exception"]
            elif kind != "code":
                raise ValueError(f"unknown cell marker {' '.join(marker)!r}")
        cell.id = _cell_id(index)
        nb.cells.append(cell)
    return nb


def notebook_to_text(nb) -> str:
    """The marked-up text form of a source notebook."""
    parts = []
    for cell in nb.cells:
        meta = cell.get("metadata", {})
        grader = meta.get("nbgrader", {})
        if cell.cell_type == "markdown":
            marker = f"answer {grader['grade_id']} {grader['points']}" if grader.get("solution") else "md"
        elif grader.get("solution"):
            marker = f"solution {grader['grade_id']}"
        elif grader.get("grade"):
            marker = f"test {grader['grade_id']} {grader['points']}"
        elif "setup" in meta.get("tags", []):
            marker = "setup"
        else:
            marker = "code"
        parts.append(f"# %% {marker}\n{cell.source}\n")
    return "\n".join(parts)


def notebook_file_to_text(notebook: str | Path) -> str:
    """The text form of a notebook file (what `./course totext` prints).

    notebook: the path of an .ipynb file. Returns the text, cell markers included.
    """
    return notebook_to_text(nbformat.read(str(notebook), as_version=4))


def text_file_to_notebook(text: str | Path, notebook: str | Path) -> None:
    """Write a notebook file from a text-form file (what `./course fromtext` does).

    text: the path of the text form; notebook: the path of the .ipynb file to write (replaced if it exists).
    The notebook is checked against nbformat's schema before anything is written.
    """
    with open(text, encoding="utf-8") as handle:
        nb = text_to_notebook(handle.read())
    nbformat.validate(nb)
    nbformat.write(nb, str(notebook))
