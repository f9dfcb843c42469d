"""Every attack and fault of tests/attacks.py, on every assignment, graded by `./course grade`'s machinery as
root and as an ordinary user: each scores exactly as catalogued, the grader reports no error, and nothing
outside the submissions changes.

One scratch course per user: every (attack, assignment) is its own student in submitted/, plus an honest full
solution per assignment graded after them ("zz-honest", with a tripwire that breaks one of its own functions
if it finds anything a previous student left), and the course is graded once (grade_class, two workers).
Around the run: a second copy of the course at /opt and in the grading user's home (readable by that user),
a planted file the link attack points at, and a TCP listener the network attack tries to reach. As an ordinary
user the grading runs as that user (runuser), on a copy of the course and the grader it owns, as in
tests/test_fence.py; this module is then the script it runs (`python -m tests.test_attack_catalog ARGS`).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pwd
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest

from tests.attacks import (
    NOTE,
    Attack,
    attacks,
    base_notebook,
    expected_score,
    leaf_exercise,
    tripwire,
)

REPO = Path(__file__).resolve().parent.parent
#: Every assignment of source/ (NNFS_CATALOG_ASSIGNMENTS, comma-separated, narrows it: while one is rewritten)
ASSIGNMENTS = [name for name in sorted(p.name for p in (REPO / "source").iterdir() if p.is_dir())
               if name in os.environ.get("NNFS_CATALOG_ASSIGNMENTS", name).split(",")]
HONEST = "zz-honest"  # sorts after every attack's student: graded last of its assignment
#: fixed hidden seeds (no grading secret), so that the test can compute every hidden input and look for it in the
#: graded notebooks: what keeps them out must not be the secret
LIMITS = {"cell_seconds": 8, "notebook_seconds": 240, "memory_bytes": 2 * 2**30, "output_bytes": 2**20, "processes": 64,
          "secret_hidden_inputs": False}
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
#: Known holes, found by this catalog: (attack name, assignment) -> why it still succeeds; the test is
#: xfail(strict=True) until the grader closes it (then it fails as XPASS: remove the entry). None known.
KNOWN_HOLES: dict[tuple, str] = {}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


# -- the course --------------------------------------------------------------------------------------------------
def plan(root: Path, port: int, slow: bool = True) -> list[tuple[str, str, Attack | None]]:
    """(student, assignment, attack) for every attack that runs on each assignment, and the honest students.
    As root (`slow`): all of them. As the ordinary user: the attacks on the fence, which run on every
    assignment, and not the slow ones or those on 01 alone (tampering with checks and test cells, which the
    grader decides the same way whoever runs it)."""
    rows = []
    for assignment in ASSIGNMENTS:
        for attack in attacks(str(root), assignment, listener=port, honest=HONEST):
            if (attack.assignments is None or (slow and assignment in attack.assignments)) and (slow or not attack.slow):
                rows.append((slug(attack.name), assignment, attack))
        rows.append((HONEST, assignment, None))
    return rows


#: The honest student: the full solution but its training exercises (they cost the most and prove nothing here)
HONEST_ATTACK = Attack("honest", lambda nb: nb, False, base="solution-without-training")


def honest_notebook(assignment: str):
    """The honest solution, with a tripwire after its leaf exercise's cell (see tests/attacks.py tripwire)."""
    from tests.attacks import after_cell_defining

    leaf = leaf_exercise(assignment)
    return after_cell_defining(leaf, tripwire(leaf))(base_notebook(HONEST_ATTACK, assignment))


def make_course(course: Path, port: int, slow: bool) -> list[tuple[str, str, Attack | None]]:
    """Build a scratch course at `course` whose submitted/ holds the plan; returns the plan."""
    from graders.tooling.build import build
    from graders.tooling.course import notebook_path
    from tests.helpers import copy_course

    course.mkdir(parents=True, exist_ok=True)
    copy_course(course, ("nbgrader_config.py", "source"))
    os.environ["NNFS_COURSE_ROOT"] = str(course)
    try:
        build(ASSIGNMENTS, root=course)
        (course / "planted").mkdir()
        (course / "planted" / "target.txt").write_text("planted by the test: must stay as it is\n")
        rows = plan(course, port, slow)
        for student, assignment, attack in rows:
            nb = honest_notebook(assignment) if attack is None else attack.apply(base_notebook(attack, assignment))
            path = course / "submitted" / student / assignment / notebook_path(assignment).name
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(path))
    finally:
        os.environ.pop("NNFS_COURSE_ROOT", None)
    return rows


def plant_copy(folder: Path, course: Path, owner: tuple[int, int] | None = None) -> Path:
    """A second copy of the course (source, solutions, release, the gradebook) at `folder`, readable by all."""
    folder.mkdir(parents=True)
    for name in ("source", "solutions", "release", "gradebook.db"):
        (shutil.copytree if (course / name).is_dir() else shutil.copy)(course / name, folder / name)
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
        if owner:
            os.chown(path, *owner)
    return folder


def tree_hashes(*folders: Path) -> dict[str, str]:
    """path -> sha256 of every file (and link target) under the folders."""
    hashes = {}
    for folder in folders:
        for path in sorted([folder] if folder.is_file() else folder.rglob("*")):
            if path.is_symlink():
                hashes[str(path)] = "link:" + os.readlink(path)
            elif path.is_file():
                hashes[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def guarded(course: Path) -> list[Path]:
    """What no submission may change: the course's own files, every submission, the planted file."""
    return [course / name for name in ("source", "solutions", "release", "submitted", "planted", "nbgrader_config.py")]


# -- grading (in the process of the grading user) ----------------------------------------------------------------
def grade(course: str) -> dict:
    """Grade every submission of `course` once; returns the jobs and the gradebook's scores (JSON-able)."""
    from graders.engine.classgrade import grade_class
    from graders.engine.sandbox import GradingLimits
    from graders.tooling.gradebook import course_db_url, exercise_scores, totals

    saved = os.environ.get("NNFS_COURSE_ROOT")
    os.environ["NNFS_COURSE_ROOT"] = course
    try:
        started = time.monotonic()
        jobs = grade_class(ASSIGNMENTS, workers=2, root=Path(course), limits=GradingLimits(**LIMITS),
                           out=io.StringIO())
        seconds = time.monotonic() - started
    finally:  # the course of the tests that run after this one in the same process is this clone again
        if saved is None:
            os.environ.pop("NNFS_COURSE_ROOT", None)
        else:
            os.environ["NNFS_COURSE_ROOT"] = saved
    rows = exercise_scores(course_db_url(Path(course)), "nn-from-scratch", ASSIGNMENTS)
    return {"seconds": seconds,
            "jobs": [{"student": j.student, "assignment": j.assignment, "status": j.status, "errors": list(j.errors),
                      "faults": list(j.faults), "seconds": j.seconds} for j in jobs],
            "scores": [[a, s, score] for (a, s), score in totals(rows).items()],
            "maxima": {f"{r.assignment}/{r.exercise}": r.max_score for r in rows}}


def scores_now(course: Path) -> dict:
    from graders.tooling.gradebook import course_db_url, exercise_scores, totals
    return {f"{a}/{s}": v for (a, s), v in totals(exercise_scores(course_db_url(course), "nn-from-scratch", ASSIGNMENTS)).items()}


# -- around the run: a listener, scratch leftovers ----------------------------------------------------------------
class Listener:
    """A TCP server on 127.0.0.1 outside every sandbox: counts the connections it accepts."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self):
        self.server.close()


def scratch_leftovers() -> list[str]:
    return sorted(str(p) for folder in SCRATCH for p in Path(folder).glob(f"{NOTE}*"))


def clear_scratch_leftovers() -> None:
    for path in scratch_leftovers():
        Path(path).unlink(missing_ok=True)


# -- hidden inputs, as the grader's own checks draw them -----------------------------------------------------------
def hidden_inputs(assignment: str, exercises: list[str], release: Path) -> set[str]:
    """The first six values (as the attack prints them) of every array a hidden check passes to a function of
    `exercises` that no visible check passes too, drawn in-process by the same checks with the same seeds.
    release: the folder of the assignment's release (its check data answer the visible checks)."""
    import numpy as np

    from graders.tooling.course import graded_cells, notebook_path, read_notebook
    from graders.tooling.reference import reference
    from tests.helpers import _environment

    seen = {"visible": set(), "hidden": set()}
    level = ["visible"]

    def flat(value):
        if isinstance(value, np.ndarray):
            yield value
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from flat(item)
        elif isinstance(value, dict):
            for item in value.values():
                yield from flat(item)

    def recording(name, function):
        def record(*args, **kwargs):
            for array in flat([args, kwargs]):
                if array.size >= 3 and array.dtype.kind == "f" and len(set(array.ravel()[:6].tolist())) > 2:
                    seen[level[0]].add(repr(np.asarray(array, dtype=float).ravel()[:6].tolist()))
            return function(*args, **kwargs)
        return record

    namespace = reference(assignment)
    for name in exercises:
        namespace[name] = recording(name, namespace[name])
    for cell in graded_cells(read_notebook(notebook_path(assignment))):
        if cell.exercise not in exercises:
            continue
        level[0] = cell.level
        data = str(release) if cell.level == "visible" else ""
        with contextlib.redirect_stdout(io.StringIO()), _environment(NNFS_CHECK_DATA=data):
            try:
                exec(compile(cell.source, f"<{cell.grade_id}>", "exec"), namespace)  # noqa: S102 - the course's own test cell
            except Exception:  # noqa: BLE001, S110 - a failed check still drew its inputs
                pass
    return seen["hidden"] - seen["visible"]


def student_outputs(course: Path, student: str, assignment: str) -> str:
    """The text of every output of the student's own cells in the graded notebook."""
    from graders.tooling.course import nbgrader_meta, notebook_path

    path = course / "autograded" / student / assignment / notebook_path(assignment).name
    nb = nbformat.read(str(path), as_version=4)
    texts = []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and not (meta.get("grade") and not meta.get("solution")):
            texts.append(json.dumps(cell.get("outputs", [])))
    return "\n".join(texts)


def course_paths(text: str, course: Path) -> list[str]:
    """The paths into the course or the grader's clone that `text` names (the clone's .venv, the Python
    install every kernel runs from, aside; and the paths a submission wrote itself, which it knew already)."""
    found = []
    for folder in (str(course), str(REPO)):
        found += [m.group(0) for m in re.finditer(re.escape(folder) + r"(?!/\.venv\b)[^\s\"'\\]*", text)]
    return found


def _submitted_text(course: Path, student: str, assignment: str) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in (course / "submitted" / student / assignment).glob("*.ipynb"))


def errors_of(course: Path, student: str, assignment: str) -> str:
    from graders.tooling.course import notebook_path

    path = course / "autograded" / student / assignment / notebook_path(assignment).name
    nb = nbformat.read(str(path), as_version=4)
    return " ".join(o.get("evalue", "") for c in nb.cells for o in c.get("outputs", [])
                    if o.get("output_type") == "error")


# -- the two runs --------------------------------------------------------------------------------------------------
def run_and_observe(course: Path, plant_home: Path, owner: tuple[int, int] | None, grade_it) -> dict:
    """Make the course, plant the copies, grade it with `grade_it(course) -> dict`, and see what changed.
    The slow attacks run once: as root (owner None)."""
    listener = Listener()
    opt = Path(tempfile.mkdtemp(prefix="nnfs-copy-", dir="/opt"))
    try:
        rows = make_course(course, listener.port, slow=owner is None)
        copies = [plant_copy(opt / "course", course), plant_copy(plant_home / f"nnfs-copy-{course.name}", course, owner)]
        os.chmod(opt, 0o755)
        if owner:
            for path in [course, *course.rglob("*")]:
                os.chown(path, *owner, follow_symlinks=False)
        before = tree_hashes(*guarded(course), *copies)
        clear_scratch_leftovers()
        result = grade_it(course)
        after_run = scores_now(course)
        time.sleep(5)  # a process left behind by a submission would have had time to change a score
        result.update(rows=rows, before=before, after=tree_hashes(*guarded(course), *copies),
                      scores_after_run=after_run, scores_later=scores_now(course),
                      connections=listener.connections, leftovers=scratch_leftovers(), course=course)
        return result
    finally:
        listener.close()
        clear_scratch_leftovers()
        shutil.rmtree(opt, ignore_errors=True)
        shutil.rmtree(plant_home / f"nnfs-copy-{course.name}", ignore_errors=True)


def as_root(tmp: Path) -> dict:
    if os.geteuid() != 0:
        pytest.skip("this run is not root (the ordinary-user run covers this user)")
    return run_and_observe(tmp / "course", Path("/root"), None, lambda course: grade(str(course)))


def as_user(user: str) -> dict:
    from tests.test_fence import _as_user, user_python

    entry = pwd.getpwnam(user)
    folder = Path(tempfile.mkdtemp(prefix="nnfs-catalog-", dir=entry.pw_dir))
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    try:
        python = user_python(user, folder)

        def grade_it(course: Path) -> dict:
            shutil.copytree(REPO / "graders", course / "graders", ignore=shutil.ignore_patterns("__pycache__"))
            (course / "tests").mkdir()
            for name in ("__init__.py", "test_attack_catalog.py", "attacks.py", "helpers.py"):
                shutil.copy(REPO / "tests" / name, course / "tests" / name)
            for path in [course, *course.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
            ran = _as_user(user, python, "-m", "tests.test_attack_catalog", json.dumps({"grade": str(course)}),
                           timeout=1200, cwd=str(course))
            assert ran.returncode == 0, ran.stderr[-3000:]
            return json.loads(ran.stdout.strip().splitlines()[-1])

        return dict(run_and_observe(folder / "course", Path(entry.pw_dir), (entry.pw_uid, entry.pw_gid), grade_it),
                    folder=folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


@pytest.fixture(scope="module", params=["root", "user"])
def run(request, tmp_path_factory):
    """The observed grading run of one user (root, or an ordinary user); its folder goes afterwards."""
    if request.param == "root":
        result = as_root(tmp_path_factory.mktemp("catalog-root"))
    else:
        from tests.test_fence import ordinary_user
        result = as_user(ordinary_user())
    if os.environ.get("NNFS_CATALOG_REPORT"):  # for a developer: where the time went
        Path(os.environ["NNFS_CATALOG_REPORT"] + f".{request.param}.json").write_text(json.dumps(
            {"seconds": result["seconds"], "jobs": result["jobs"]}, indent=1))
    yield result
    shutil.rmtree(result.get("folder", result["course"]), ignore_errors=True)


def _cases() -> list:
    cases = []
    for student, assignment, attack in plan(Path("/course"), 9):
        if attack is None:
            continue
        hole = KNOWN_HOLES.get((attack.name, assignment))
        marks = [pytest.mark.xfail(strict=True, reason=hole)] if hole else []
        cases.append(pytest.param(student, assignment, id=f"{assignment}-{student}", marks=marks))
    return cases


def _attack(result: dict, student: str, assignment: str) -> Attack | None:
    found = [attack for s, a, attack in result["rows"] if s == student and a == assignment]
    if not found:
        pytest.skip("run as root only (a slow attack, or one on 01 that does not depend on the fence)")
    return found[0]


def _job(result: dict, student: str, assignment: str) -> dict:
    return next(j for j in result["jobs"] if j["student"] == student and j["assignment"] == assignment)


# -- the tests -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("student, assignment", _cases())
def test_attack_scores_as_catalogued_and_breaks_nothing_in_grading(run, student, assignment):
    attack = _attack(run, student, assignment)
    job = _job(run, student, assignment)
    # nbgrader refuses a notebook whose test cells' checksums changed: "unreadable", 0 points, no grader error
    assert job["status"] in ("graded", "unreadable") and not job["errors"], f"the grader failed: {job}"
    maxima = {key.split("/", 1)[1]: value for key, value in run["maxima"].items() if key.startswith(assignment + "/")}
    expected = expected_score(attack, assignment, maxima)
    earned = {f"{a}/{s}": v for a, s, v in run["scores"]}[f"{assignment}/{student}"]
    assert earned == expected, f"{attack.name} on {assignment}: earned {earned}, catalogued {expected} ({attack.note})"
    own = _submitted_text(run["course"], student, assignment)
    shown = [path for path in course_paths(student_outputs(run["course"], student, assignment), run["course"])
             if path not in own]
    assert not shown, f"{attack.name}: the graded notebook shows the course's folders: {shown[:5]}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_honest_student_after_the_attacks_scores_full_marks(run, assignment):
    job = _job(run, HONEST, assignment)
    assert job["status"] == "graded" and not job["errors"], job
    maxima = {key.split("/", 1)[1]: value for key, value in run["maxima"].items() if key.startswith(assignment + "/")}
    total = expected_score(HONEST_ATTACK, assignment, maxima)
    earned = {f"{a}/{s}": v for a, s, v in run["scores"]}[f"{assignment}/{HONEST}"]
    assert earned == total, (f"{assignment}: the honest student after the attacks got {earned}/{total}: "
                             f"{student_outputs(run['course'], HONEST, assignment)[-2000:]}")


def test_nothing_outside_the_submissions_changed(run):
    changed = sorted(p for p in set(run["before"]) | set(run["after"]) if run["before"].get(p) != run["after"].get(p))
    assert changed == [], f"changed by grading: {changed[:20]}"


def test_no_score_changes_after_the_run(run):
    assert run["scores_after_run"] == run["scores_later"]


def test_no_connection_reached_the_listener_and_no_scratch_file_was_left(run):
    assert run["connections"] == 0
    assert run["leftovers"] == []


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_hidden_inputs_stay_out_of_the_graded_notebook(run, assignment):
    from tests.attacks import exercise_maxima, training_exercises

    student = slug("record the hidden inputs and print them in a last cell")
    outputs = student_outputs(run["course"], student, assignment)
    assert "ARG:" in outputs, "the attack printed nothing: it proves nothing"
    # training exercises and 03's sanity drills are checked on the notebook's own data (the digits), no secret
    exercises = [e for e in exercise_maxima(assignment)
                 if e not in training_exercises(assignment) and e != "sanity_checks"]
    leaked = [values for values in hidden_inputs(assignment, exercises, run["course"] / "release" / assignment)
              if values in outputs]
    assert not leaked, f"{len(leaked)} hidden inputs are printed in the graded notebook, e.g. {leaked[:2]}"


def test_faults_are_explained_in_the_graded_notebook(run):
    _attack(run, slug("loop forever in a cell"), "01_neuron")  # skips where the faults did not run (the user's)
    course = run["course"]

    def errors(name):
        return errors_of(course, slug(name), "01_neuron")
    assert "did not finish within 8 s" in errors("loop forever in a cell")
    assert "printed more than 1 MiB" in errors("print gigabytes")
    memory = errors("allocate without bound")
    # the cap stops it (MemoryError, or the kernel killed), or the cell's time limit does first
    assert any(words in memory for words in ("out of memory", "kernel died", "did not finish")), memory
    assert "name 'plt' is not defined" not in memory  # the kernel was restarted and the cells before replayed
    assert "No such file" in errors("read the solutions by absolute path")
    # the student side of graders is in the kernel's view; patching it changes nothing, the checks run outside
    assert "1 visible check(s) failed" in errors("import graders, and a wrong function")


if __name__ == "__main__":  # run as the ordinary user by as_user()
    arguments = json.loads(sys.argv[1])
    print(json.dumps(grade(arguments["grade"])))
