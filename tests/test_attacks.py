"""Every attack in tests/attacks.py on 01 earns nothing unearned and damages nothing under plain `nbgrader
autograde` with the course's nbgrader_config.py (whose SandboxedExecute is what `./course grade`'s workers run
too): it scores exactly its `expected_score` (0 on the release; the intact exercises of a solution base). The
ones marked `fools_plain` really do earn more when nbgrader's stock Execute is put back (the "before" column: the
catalog tests something real); only those run unsandboxed, since the others include fork bombs and disk fillers.
The `slow` attacks (time limits) are left to tests/test_attack_catalog.py."""
import hashlib
import os
import re
import subprocess
import sys

import nbformat
import pytest

from tests.helpers import copy_course
from graders.tooling.course import autograded_points, course_root, notebook_path, read_notebook
from graders.tooling.gradebook import course_db_url, exercise_scores, totals
from graders.engine.sandbox import ONE_BLAS_THREAD
from tests.attacks import attacks, base_notebook, expected_score

ROOT = course_root()
#: An honest submission (the source notebook) graded among the attacks: full marks prove none of them spoiled
#: the grading of the others.
CONTROL = "zz-honest-control"
#: Shorter limits than the course's, so a hanging attack costs the test less; the same for both columns.
FAST_LIMITS = "\nc.GradingLimits.cell_seconds = 20\nc.GradingLimits.notebook_seconds = 240\n"
#: The "before" column: nbgrader's stock Execute in place of the course's SandboxedExecute.
STOCK_EXECUTE = """
from nbgrader.preprocessors import Execute as _StockExecute
from graders.engine.preprocessor import SandboxedExecute as _Sandboxed
c.Autograde.autograde_preprocessors = [_StockExecute if p is _Sandboxed else p for p in c.Autograde.autograde_preprocessors]
"""
#: What a submission could damage in the course folder: nothing in them may change while the class is graded.
GUARDED = ("nbgrader_config.py", "source", "release", "submitted")


def catalog(root: str = ".") -> list:
    """The attacks this module runs on 01: not slow, and meant for 01."""
    return [a for a in attacks(root, "01_neuron", honest=CONTROL)
            if not a.slow and (a.assignments is None or "01_neuron" in a.assignments)]


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def make_course(path, share=(0, 1), extra_config="", only_fooling=False):
    """A scratch course whose submitted/ holds the attacks (the `share[0]`-th of every `share[1]`; only those
    marked fools_plain if `only_fooling`) and the honest control; `extra_config` is appended to its
    nbgrader_config.py."""
    copy_course(path, ("nbgrader_config.py", "source"))
    with open(path / "nbgrader_config.py", "a", encoding="utf-8") as handle:
        handle.write(FAST_LIMITS + extra_config)
    from graders.tooling.build import build
    build(["01_neuron"], root=path)
    submissions = {CONTROL: read_notebook(notebook_path("01_neuron", "source"))}
    chosen = [a for a in catalog(str(path)) if a.fools_plain or not only_fooling]
    for index, attack in enumerate(chosen):
        if index % share[1] == share[0]:
            submissions[slug(attack.name)] = attack.apply(base_notebook(attack, "01_neuron"))
    for student, nb in submissions.items():
        target = path / "submitted" / student / "01_neuron" / "neuron.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, str(target))


def digest(course) -> dict:
    """path relative to the course -> sha256 of every file under GUARDED."""
    files = {}
    for name in GUARDED:
        top = course / name
        for path in sorted([top] if top.is_file() else top.rglob("*")):
            if path.is_file():
                files[str(path.relative_to(course))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def course_scores(course) -> dict:
    rows = exercise_scores(course_db_url(course), "nn-from-scratch", ["01_neuron"])
    return {student: score for (_, student), score in totals(rows).items()}


def autograde(courses, extra_config: str, only_fooling: bool) -> dict:
    """Plain `nbgrader autograde` over the catalog with the course's config (plus `extra_config`): half the
    catalog in each of two course copies, both at once (nbgrader grades one submission after another; each copy
    has its own gradebook), so the two cores are used. Returns {"scores": student -> total, "changed": files
    under GUARDED that changed while grading, per copy}."""
    for index, course in enumerate(courses):
        make_course(course, share=(index, len(courses)), extra_config=extra_config, only_fooling=only_fooling)
    before = [digest(course) for course in courses]
    runs = [subprocess.Popen([sys.executable, "-m", "nbgrader", "autograde", "01_neuron"], cwd=course,
                             env=dict(os.environ, **ONE_BLAS_THREAD, NNFS_COURSE_ROOT=str(course)),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for course in courses]
    for run in runs:
        run.wait(timeout=1800)
    changed = [sorted(set(old.items()) ^ set(digest(course).items())) for old, course in zip(before, courses)]
    return {"scores": {student: score for course in courses for student, score in course_scores(course).items()},
            "changed": changed}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """"sandboxed": the course's config as it is; "stock": nbgrader's own Execute put back."""
    results = {}
    try:
        for column, extra in (("sandboxed", ""), ("stock", STOCK_EXECUTE)):
            courses = [tmp_path_factory.mktemp(f"{column}{index}") for index in range(2)]
            os.environ["NNFS_COURSE_ROOT"] = str(courses[0])
            results[column] = autograde(courses, extra, only_fooling=column == "stock")
    finally:
        os.environ.pop("NNFS_COURSE_ROOT", None)
    return results


def test_the_course_config_replaces_nbgrader_execute():
    from nbgrader.preprocessors import Execute
    from traitlets.config.loader import PyFileConfigLoader
    from graders.engine.preprocessor import SandboxedExecute
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    steps = config.Autograde.autograde_preprocessors
    assert steps[0] is SandboxedExecute and not any(step is Execute for step in steps)


@pytest.mark.parametrize("attack", catalog(), ids=lambda a: slug(a.name))
def test_attack_earns_nothing_unearned_under_nbgrader_autograde(graded, attack):
    scores = graded["sandboxed"]["scores"]
    assert slug(attack.name) in scores, "nbgrader did not grade it at all"
    assert scores[slug(attack.name)] == expected_score(attack, "01_neuron")


def test_attacks_damage_nothing(graded):
    assert graded["sandboxed"]["changed"] == [[], []]
    control = autograded_points("01_neuron")  # its written answer waits for a TA
    assert graded["sandboxed"]["scores"][CONTROL] == control, "an attack spoiled the grading of an honest notebook"


def stock_proven() -> list:
    """The fools_plain attacks this module proves under stock Execute: those on the release notebook of 01. The
    others need the setting of tests/test_attack_catalog.py (course copies elsewhere, a classmate graded first),
    or earned no more than their honest parts in this module's course (the catalog's two "..., and a wrong
    function" ones): they still run in the stock column."""
    return [a for a in catalog() if a.fools_plain and a.base == "release" and a.assignments]


@pytest.mark.parametrize("attack", stock_proven(), ids=lambda a: slug(a.name))
def test_attack_earns_unearned_points_under_stock_execute(graded, attack):
    earned = graded["stock"]["scores"].get(slug(attack.name), 0.0)
    assert earned > expected_score(attack, "01_neuron"), f"nbgrader's stock Execute gave {earned}"


def test_the_catalog_is_big_enough_and_fools_plain_nbgrader_often():
    assert len(catalog()) >= 15
    assert len(stock_proven()) >= 8
