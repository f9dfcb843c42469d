"""`./course grade --scheduler ADDRESS`: the execute step on a Dask cluster (here a LocalCluster of two worker
processes) gives exactly the grades of the local process pool, and its jobs carry no path of the coordinator."""
import io
import os

import pytest

distributed = pytest.importorskip("distributed", reason="Dask is in the instructor extra: `./course` installs it")

from graders.engine.classgrade import grade_class  # noqa: E402
from tests.test_nbgrader_native import course_env, example_course, scores  # noqa: E402


def grade(course, **where) -> list:
    """grade_class on `course` (its env as `./course grade` would have it); returns the jobs."""
    saved = dict(os.environ)
    os.environ.update(course_env(course))
    try:
        return grade_class(root=course, out=io.StringIO(), **where)
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """(scores per run, jobs per run, the scheduler's task counts by state per task name): "local" is the example class graded by a local
    pool of two processes; "dask" the same class on a LocalCluster of two single-threaded worker processes."""
    courses = {name: example_course(tmp_path_factory.mktemp(name)) for name in ("local", "dask")}
    jobs = {"local": grade(courses["local"], workers=2)}
    saved = dict(os.environ)
    os.environ.update(course_env(courses["dask"]))  # the workers inherit it: the course their checks read
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      silence_logs=50) as cluster:
            out = io.StringIO()
            jobs["dask"] = grade_class(root=courses["dask"], out=out, scheduler=cluster.scheduler_address)
            ran = {name: dict(prefix.state_counts) for name, prefix in cluster.scheduler.task_prefixes.items()}
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert f"executing on the Dask cluster at {cluster.scheduler_address}" in out.getvalue()
    return {name: scores(course) for name, course in courses.items()}, jobs, ran


def test_a_dask_cluster_gives_exactly_the_grades_of_the_local_pool(graded):
    rows, _, _ = graded
    assert rows["dask"] and rows["dask"] == rows["local"]


def test_the_jobs_ran_on_the_cluster_and_none_failed(graded):
    _, jobs, ran = graded
    assert "execute_job" in ran and not ran["execute_job"].get("erred"), ran
    executed = [j for j in jobs["dask"] if j.status != "unreadable"]  # an unreadable file never reaches a worker
    assert executed and all(j.seconds > 0 for j in executed)
    assert not [(j.student, j.assignment, j.errors) for j in jobs["dask"] if j.status == "failed"]
