"""Every attack in tests/attacks.py earns nothing under `./course grade`, and the ones marked `fools_plain`
really do earn points under plain `nbgrader autograde` (so the catalog tests something real)."""
import os
import re
import subprocess
import sys

import nbformat
import pytest

from graders.engine.classgrade import grade_class
from tests.helpers import copy_course
from graders.tooling.course import course_root, notebook_path, read_notebook
from graders.tooling.gradebook import course_db_url, exercise_scores, totals
from graders.engine.sandbox import GradingLimits
from graders.engine.sandbox import ONE_BLAS_THREAD
from tests.attacks import attacks

ROOT = course_root()


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def make_course(path, root_for_attacks, share=(0, 1)):
    """A scratch course whose submitted/ holds the attacks (the `share[0]`-th of every `share[1]`)."""
    copy_course(path, ("nbgrader_config.py", "source"))
    from graders.tooling.build import build
    build(["01_neuron"], root=path)
    for index, attack in enumerate(attacks(str(root_for_attacks))):
        if index % share[1] != share[0]:
            continue
        nb = attack.apply(read_notebook(notebook_path("01_neuron", "release")))
        target = path / "submitted" / slug(attack.name) / "01_neuron" / "neuron.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, str(target))


def course_scores(course) -> dict:
    rows = exercise_scores(course_db_url(course), "nn-from-scratch", ["01_neuron"])
    return {student: score for (_, student), score in totals(rows).items()}


def grade_ours(course) -> dict:
    make_course(course, course)
    jobs = grade_class(["01_neuron"], workers=2, root=course,
                       limits=GradingLimits(cell_seconds=20, notebook_seconds=240))
    assert not [j.errors for j in jobs if j.errors], "the grader itself failed"
    return course_scores(course)


def grade_plain(courses) -> dict:
    """Plain `nbgrader autograde`, which grades one submission after another: half the catalog in each of
    two course copies, both at once (each copy has its own gradebook), so the two cores are used."""
    for index, course in enumerate(courses):
        make_course(course, course, share=(index, len(courses)))
    runs = [subprocess.Popen([sys.executable, "-m", "nbgrader", "autograde", "01_neuron"], cwd=course,
                             env=dict(os.environ, **ONE_BLAS_THREAD, NNFS_COURSE_ROOT=str(course)),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for course in courses]
    for run in runs:
        run.wait(timeout=1800)
    return {student: score for course in courses for student, score in course_scores(course).items()}


@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    results = {}
    try:
        os.environ["NNFS_COURSE_ROOT"] = str(ours := tmp_path_factory.mktemp("ours"))
        results["ours"] = grade_ours(ours)
        plain = [tmp_path_factory.mktemp(f"plain{index}") for index in range(2)]
        os.environ["NNFS_COURSE_ROOT"] = str(plain[0])
        results["plain"] = grade_plain(plain)
    finally:
        os.environ.pop("NNFS_COURSE_ROOT", None)
    return results


@pytest.mark.parametrize("attack", attacks("."), ids=lambda a: slug(a.name))
def test_attack_earns_nothing_here(scores, attack):
    assert scores["ours"].get(slug(attack.name), 0.0) == 0.0


@pytest.mark.parametrize("attack", attacks("."), ids=lambda a: slug(a.name))
def test_attack_behaves_as_catalogued_under_plain_nbgrader(scores, attack):
    earned = scores["plain"].get(slug(attack.name), 0.0)
    assert (earned > 0) == attack.fools_plain, f"plain nbgrader gave {earned}"


def test_the_catalog_is_big_enough_and_fools_plain_nbgrader_often():
    catalog = attacks(".")
    assert len(catalog) >= 15
    assert sum(a.fools_plain for a in catalog) >= 8
