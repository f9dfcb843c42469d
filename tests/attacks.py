"""A catalog of attempts to raise a score without a correct implementation (assignment 01).

Each attack is applied to the untouched release notebook, whose honest score is 0: any point it earns is
unearned. `fools_plain` records whether it earns points under plain `nbgrader autograde` (in-kernel
checks, as the course's test cells run in JupyterLab); tests/test_attacks.py proves both columns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import nbformat

from graders.tooling.course import nbgrader_meta


@dataclass(frozen=True)
class Attack:
    name: str
    apply: Callable       # notebook -> notebook
    fools_plain: bool     # earns points under plain nbgrader autograde


def after_setup(code: str) -> Callable:
    """Add a code cell right after the setup cell (before any test cell runs)."""
    def apply(nb):
        index = next(i for i, c in enumerate(nb.cells) if "setup" in c.metadata.get("tags", []))
        nb.cells.insert(index + 1, nbformat.v4.new_code_cell(code))
        return nb
    return apply


def as_answer(code: str) -> Callable:
    """Hand the attack in as the answer: the first solution cell holds it, the other stubs are emptied."""
    def apply(nb):
        first = True
        for cell in nb.cells:
            if nbgrader_meta(cell).get("solution"):
                cell.source = code if first else ""
                first = False
        return nb
    return apply


def on_test_cells(change: Callable) -> Callable:
    def apply(nb):
        cells = []
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            if meta.get("grade") and not meta.get("solution"):
                cell = change(cell)
            if cell is not None:
                cells.append(cell)
        nb.cells = cells
        return nb
    return apply


def _blank_test(cell):
    cell.source = "pass"
    return cell


def _rewrite_test_metadata(cell):
    cell.metadata["nbgrader"].update(points=100, grade=False, locked=False)
    cell.source = "pass"
    return cell


ZEROS = "\n".join(f"def {name}(*args, **kwargs):\n    return np.zeros(np.shape(args[0]))\n" for name in
                  ("sigmoid", "sigmoid_grad", "relu", "relu_grad", "leaky_relu", "leaky_relu_grad", "tanh_grad",
                   "gelu", "gelu_grad"))

EXEC_SOLUTIONS = """
import json, pathlib
for guess in ["../../../{folder}/01_neuron/neuron.ipynb", "{root}/{folder}/01_neuron/neuron.ipynb"]:
    path = pathlib.Path(guess)
    if path.exists():
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code" and cell.get("metadata", {{}}).get("nbgrader", {{}}).get("solution"):
                exec("".join(cell["source"]), globals())
        break
"""

READ_GRADEBOOK = """
import sqlite3, pathlib
for guess in ["../../../gradebook.db", "{root}/gradebook.db"]:
    if pathlib.Path(guess).exists():
        db = sqlite3.connect(guess)
        for (source,) in db.execute("select source from source_cell"):
            if "### BEGIN SOLUTION" in source:
                exec(source, globals())
        break
"""


def attacks(root: str) -> list[Attack]:
    """The catalog; `root` is the course folder, for the attacks that guess where the course lives."""
    return [
        Attack("redefine check in the notebook", after_setup("check = lambda *a, **k: None"), False),
        Attack("patch graders.check", after_setup("import graders\ngraders.check = lambda *a, **k: None"), True),
        Attack("patch the report to always pass", after_setup(
            "import graders.checks.report as h\nh.Report.passed = property(lambda self: True)"), True),
        Attack("patch numpy.allclose and return zeros", as_answer(
            "import numpy\nnumpy.allclose = lambda *a, **k: True\n" + ZEROS), True),
        Attack("patch numpy.testing", as_answer(
            "import numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None\n"
            "numpy.testing.assert_array_equal = lambda *a, **k: None\n" + ZEROS), False),
        Attack("patch numpy ufuncs and norms", as_answer(
            "import numpy\nnumpy.allclose = lambda *a, **k: True\nnumpy.isclose = lambda a, b, **k: numpy.ones(numpy.shape(a), bool)\n"
            "numpy.linalg.norm = lambda *a, **k: 0.0\n" + ZEROS), True),
        Attack("return an object with a faked __eq__", as_answer(
            "class Yes:\n    def __eq__(self, other):\n        return True\n    shape = (3,)\n"
            "def sigmoid(z):\n    return Yes()\nrelu = sigmoid"), False),
        Attack("return an object with a faked __array__", as_answer(
            "class Arr:\n    def __array__(self, dtype=None, copy=None):\n        return numpy.zeros(3)\n"
            "import numpy\ndef sigmoid(z):\n    return Arr()"), False),
        Attack("return an object with a faked __array_ufunc__", as_answer(
            "class U:\n    def __array_ufunc__(self, *a, **k):\n        return True\n    shape = (3,)\n"
            "def sigmoid(z):\n    return U()"), False),
        Attack("import the reference from graders", as_answer(
            "from graders.tooling.reference import reference\nglobals().update(reference('01_neuron'))"), True),
        Attack("exec the source notebook's solutions", as_answer(EXEC_SOLUTIONS.format(folder="source", root=root)), True),
        Attack("exec the solutions folder", as_answer(EXEC_SOLUTIONS.format(folder="solutions", root=root)), True),
        # nbgrader keeps the released stubs in gradebook.db, not the solutions: nothing to gain, even there
        Attack("read solutions out of gradebook.db", as_answer(READ_GRADEBOOK.format(root=root)), False),
        Attack("blank out the locked test cells", on_test_cells(_blank_test), False),
        Attack("rewrite test cell metadata (points, grade flag)", on_test_cells(_rewrite_test_metadata), False),
        Attack("delete every test cell", on_test_cells(lambda cell: None), False),
        Attack("sys.exit in a cell", after_setup("import sys\nsys.exit(0)"), False),
        Attack("os._exit in a cell", after_setup("import os\nos._exit(0)"), False),
        Attack("kill the kernel", after_setup("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"), False),
        Attack("print output that imitates a pass", as_answer(
            "print('✓ sigmoid: 3 of 3 hidden checks passed')\ndef sigmoid(z):\n"
            "    print('✓ sigmoid: 3 of 3 hidden checks passed')\n    return z"), False),
        Attack("switch on NBGRADER_EXECUTION", after_setup(
            "import os\nif os.environ.get('NBGRADER_EXECUTION'):\n    import graders\n"
            "    graders.check = lambda *a, **k: None"), True),
        Attack("hijack the import of graders", after_setup(
            "import builtins, types\nfake = types.ModuleType('graders')\nfake.check = lambda *a, **k: None\n"
            "real_import = builtins.__import__\n"
            "builtins.__import__ = lambda name, *a, **k: fake if name == 'graders' else real_import(name, *a, **k)"), True),
    ]
