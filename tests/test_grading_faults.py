"""The class grader under hostile submissions: faults cost only what could not run, attacks earn nothing.

Each submission is assignment 01 fully solved, plus one hostile change. The expected score is what the
honest parts deserve: 53 when the hostile code touches nothing graded, and 53 minus the points of the
exercise it breaks otherwise.
"""
import os

import nbformat
import pytest

from graders.engine.classgrade import grade_class
from tests.helpers import copy_course
from graders.tooling.course import course_root
from graders.tooling.examples import Submission, make_submission
from graders.tooling.gradebook import course_db_url, exercise_scores, totals
from graders.engine.sandbox import GradingLimits

ROOT = course_root()
#: a broken sigmoid loses sigmoid (4), and sigmoid_grad (3), logistic regression (5) and training (5), which call it
BROKEN_SIGMOID = 53 - 17

WRONG_SIGMOID = "def sigmoid(z):\n    return np.zeros_like(z)\n"

#: student -> (code appended as a new cell after the setup cell, replaced functions, expected score)
HOSTILE = {
    "loops_forever": ("while True:\n    pass", {}, 53),
    "exits_the_kernel": ("", {"sigmoid": "def sigmoid(z):\n    import os\n    os._exit(1)\n"}, BROKEN_SIGMOID),
    "allocates_without_bound": ("blocks = []\nwhile True:\n    blocks.append(bytearray(10**8))", {}, 53),
    "prints_gigabytes": ("import sys\nwhile True:\n    sys.stdout.write('x' * 10**6)", {}, 53),
    "forks_without_bound": ("import os\nfor _ in range(100000):\n    if os.fork() == 0:\n        import time\n        time.sleep(60)\n        os._exit(0)", {}, 53),
    "redefines_check": ("import builtins\nbuiltins.check = lambda *a, **k: None\ncheck = lambda *a, **k: None",
                        {"sigmoid": WRONG_SIGMOID}, BROKEN_SIGMOID),
    "patches_numpy": ("import numpy\nnumpy.allclose = lambda *a, **k: True\nnumpy.testing.assert_allclose = lambda *a, **k: None",
                      {"sigmoid": WRONG_SIGMOID}, BROKEN_SIGMOID),
    "imports_graders": ("import graders\ngraders.check = lambda *a, **k: None", {"sigmoid": WRONG_SIGMOID}, BROKEN_SIGMOID),
    "fakes_eq_and_array": ("", {"sigmoid": "class Fake:\n    def __eq__(self, o):\n        return True\n"
                                           "    def __array__(self, dtype=None, copy=None):\n        return np.zeros(3)\n"
                                           "def sigmoid(z):\n    return Fake()\n"}, BROKEN_SIGMOID),
    "prints_a_pass": ("", {"sigmoid": "def sigmoid(z):\n    print('✓ sigmoid: 3 of 3 hidden checks passed')\n    return np.zeros_like(z)\n"},
                      BROKEN_SIGMOID),
    "reads_the_solutions": (f"source = open({str(ROOT / 'source' / '01_neuron' / 'neuron.ipynb')!r}).read()", {}, 53),
    "sys_exit_in_a_function": ("", {"sigmoid": "def sigmoid(z):\n    import sys\n    sys.exit(0)\n"}, BROKEN_SIGMOID),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = tmp_path_factory.mktemp("hostile")
    copy_course(course, ("nbgrader_config.py", "source", "release"))
    os.environ["NNFS_COURSE_ROOT"] = str(course)
    try:
        from graders.tooling.build import build
        build(["01_neuron"], root=course)
        for student, (cell, replace, _) in HOSTILE.items():
            nb = make_submission("01_neuron", Submission(fill="all", replace=replace))
            if cell:
                setup = next(i for i, c in enumerate(nb.cells) if "setup" in c.metadata.get("tags", []))
                nb.cells.insert(setup + 1, nbformat.v4.new_code_cell(cell))
            path = course / "submitted" / student / "01_neuron" / "neuron.ipynb"
            path.parent.mkdir(parents=True)
            nbformat.write(nb, str(path))
        limits = GradingLimits(cell_seconds=8, notebook_seconds=240, memory_bytes=2 * 2**30, output_bytes=2**20,
                               processes=64)
        jobs = grade_class(["01_neuron"], workers=2, limits=limits, root=course)
        rows = exercise_scores(course_db_url(course), "nn-from-scratch", ["01_neuron"])
        yield course, jobs, totals(rows)
    finally:
        os.environ.pop("NNFS_COURSE_ROOT", None)


@pytest.mark.parametrize("student", list(HOSTILE))
def test_hostile_submission_gets_exactly_what_its_honest_parts_earn(graded, student):
    course, jobs, scores = graded
    assert not [j.errors for j in jobs if j.errors], "the grader itself failed"
    assert scores[("01_neuron", student)] == HOSTILE[student][2]


def test_faults_are_explained_in_the_graded_notebook(graded):
    course, _, _ = graded
    def errors(student):
        nb = nbformat.read(str(course / "autograded" / student / "01_neuron" / "neuron.ipynb"), 4)
        return " ".join(o.get("evalue", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error")
    assert "did not finish within 8 s" in errors("loops_forever")
    assert "printed more than 1 MiB" in errors("prints_gigabytes")
    assert "ran out of memory" in errors("allocates_without_bound") or "kernel died" in errors("allocates_without_bound")
    assert "name 'plt' is not defined" not in errors("allocates_without_bound")  # the kernel was restarted
    assert "No such file" in errors("reads_the_solutions")
    assert "No module named 'graders'" in errors("imports_graders")
