"""nbgrader's sanitize and save steps for a whole class: in memory, with one gradebook session per process.

`nbgrader autograde` grades a submission in two converter passes. Each pass opens the gradebook again for every
database step (OverwriteKernelspec, OverwriteCells, SaveAutoGrades, AssignLatePenalties), queries it cell by
cell, commits after every cell, and writes the notebook to disk between the passes: about 1.5 s of CPU a
notebook, which made the coordinator of `./course grade` the ceiling of any cluster (0.65 notebooks/s).

`GradebookSteps` runs the same preprocessors, the ones the course's `c.Autograde.sanitize_preprocessors` and
`c.Autograde.autograde_preprocessors` list (minus execution, which the workers do), on notebooks in memory:
- the gradebook is opened once; an assignment's source cells are read once (`AssignmentRows`);
- a submission's grade and comment rows are read in one query, and written in one commit;
- nbgrader's preprocessors that open the gradebook themselves run through `InSession`, which hands them this
  session instead (their own per-cell logic runs unchanged); any other preprocessor runs as configured.
The autograded folder ends up as nbgrader leaves it: the graded notebook, the student's other files, the
source's files over them, read-only.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import traceback
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace

import nbformat
from nbgrader import utils
from nbgrader.api import Comment, Grade, Gradebook, MissingEntry, Student
from nbgrader.converters import Autograde
from nbgrader.coursedir import CourseDirectory
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    Execute,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)
from sqlalchemy.orm import joinedload

from ..tooling.course import notebook_path
from .preprocessor import SandboxedExecute

#: A file a student hands in beside the notebook is carried to the kernel only up to this size.
MAX_STUDENT_FILE_BYTES = 64 * 2**20


class Unreadable(Exception):
    """A submission that cannot be graded: its message says why, for the student; `files` are the working
    copy's other files ({relative path: bytes}), which its autograded folder holds all the same."""

    def __init__(self, reason: str, files: dict):
        super().__init__(reason)
        self.files = files


def unreadable_reason(exc: Exception) -> str:
    """Why a notebook could not be read, for the student: the exception's name and the start of its message
    (which may quote the file's first bytes: shown as text, never as HTML)."""
    return f"{type(exc).__name__}: {str(exc)[:100]}"


# -- what the gradebook holds about an assignment, read once -------------------------------------------------
@dataclass(frozen=True)
class AssignmentRows:
    """The gradebook's rows of one assignment's notebook, as plain data (valid across commits and processes).

    notebook: its name (the .ipynb's stem); kernelspec: its JSON text or None; source_cells: name -> namespace
    (name, cell_type, locked, checksum, source), in notebook order; grade_cells / task_cells: name -> namespace
    (name, max_score); solution_cells: name -> namespace(name)."""
    assignment: str
    notebook: str
    kernelspec: str | None
    source_cells: dict
    grade_cells: dict
    task_cells: dict
    solution_cells: dict

    @classmethod
    def read(cls, gradebook: Gradebook, assignment: str, notebook: str) -> AssignmentRows:
        found = gradebook.find_notebook(notebook, assignment)

        def cell(row, *names) -> SimpleNamespace:
            return SimpleNamespace(**{name: getattr(row, name) for name in names})

        return cls(assignment, notebook, found.kernelspec,
                   {c.name: cell(c, "name", "cell_type", "locked", "checksum", "source") for c in found.source_cells},
                   {c.name: cell(c, "name", "max_score") for c in found.grade_cells},
                   {c.name: cell(c, "name", "max_score") for c in found.task_cells},
                   {c.name: cell(c, "name") for c in found.solution_cells})

    def as_notebook(self) -> SimpleNamespace:
        """What nbgrader's Gradebook.find_notebook returns, as far as OverwriteCells reads it."""
        return SimpleNamespace(name=self.notebook, kernelspec=self.kernelspec,
                               source_cells=list(self.source_cells.values()),
                               grade_cells=list(self.grade_cells.values()),
                               task_cells=list(self.task_cells.values()),
                               solution_cells=list(self.solution_cells.values()))


class _CommitLater:
    """A session whose commit() does nothing: the steps commit once, when a whole notebook is through (nbgrader
    commits after every cell; a query flushes what it needs by itself)."""

    def __init__(self, session):
        self._session = session

    def commit(self) -> None:
        pass

    def __getattr__(self, name):
        return getattr(self._session, name)


class SessionGradebook:
    """The part of nbgrader's Gradebook its preprocessors use, answered from one open session.

    gradebook: an open nbgrader Gradebook; rows: the AssignmentRows of the notebook in hand; student: whose
    submission it is. A submission's Grade and Comment rows are read on first use, each kind in one query with
    their cells (nbgrader queries once per cell). Anything else is the real gradebook's, except that commit()
    does nothing."""

    def __init__(self, gradebook: Gradebook, rows: AssignmentRows, student: str):
        self._gradebook, self.rows, self.student = gradebook, rows, student
        self.db = _CommitLater(gradebook.db)
        self._submitted: dict = {}  # "notebook" -> the SubmittedNotebook; Grade / Comment -> {grade_id: row}

    def _submission_rows(self, kind) -> dict:
        if kind not in self._submitted:
            notebook = self.find_submission_notebook(self.rows.notebook, self.rows.assignment, self.student)
            query = self._gradebook.db.query(kind).options(joinedload(kind.cell)).filter(kind.notebook_id == notebook.id)
            self._submitted[kind] = {row.cell.name: row for row in query}
        return self._submitted[kind]

    def find_submission_notebook(self, notebook: str, assignment: str, student: str):
        if "notebook" not in self._submitted:
            self._submitted["notebook"] = self._gradebook.find_submission_notebook(notebook, assignment, student)
        return self._submitted["notebook"]

    def find_notebook(self, notebook: str, assignment: str):
        return self.rows.as_notebook()

    def find_source_cell(self, name: str, notebook: str, assignment: str):
        return self._row(self.rows.source_cells, name)

    def find_graded_cell(self, name: str, notebook: str, assignment: str):
        return self._row({**self.rows.grade_cells, **self.rows.task_cells}, name)

    def find_grade(self, name: str, notebook: str, assignment: str, student: str):
        return self._row(self._submission_rows(Grade), name)

    def find_comment(self, name: str, notebook: str, assignment: str, student: str):
        return self._row(self._submission_rows(Comment), name)

    @staticmethod
    def _row(rows: dict, name: str):
        if name not in rows:
            raise MissingEntry(name)
        return rows[name]

    def __getattr__(self, name):
        return getattr(self._gradebook, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass  # the steps own the real gradebook, and close it once


# -- nbgrader's database preprocessors, handed the session instead of opening the gradebook ------------------
class InSession:
    """Mixin: the preprocessor's `Gradebook(db_url)` becomes resources['nnfs_gradebook'] (a SessionGradebook).

    nbgrader's preprocessors open the gradebook at the top of `preprocess` and then run their own logic; the
    subclasses below repeat only that top, and call nbgrader's per-cell methods as they are."""

    def _session(self, resources) -> SessionGradebook:
        info = resources["nbgrader"]
        self.notebook_id, self.assignment_id = info["notebook"], info["assignment"]
        self.student_id, self.db_url = info.get("student"), info["db_url"]
        self.gradebook = resources["nnfs_gradebook"]
        return self.gradebook


class OverwriteKernelspecInSession(InSession, OverwriteKernelspec):
    def preprocess(self, nb, resources):
        kernelspec = self._session(resources).rows.kernelspec
        if kernelspec:
            nb.metadata["kernelspec"] = json.loads(kernelspec)
        return nb, resources


class OverwriteCellsInSession(InSession, OverwriteCells):
    def preprocess(self, nb, resources):
        self._session(resources)
        nb, resources = super(OverwriteCells, self).preprocess(nb, resources)  # nbgrader's per-cell pass
        if self.add_missing_cells:
            nb, resources = self.add_missing_grade_cells(nb, resources)
            nb, resources = self.add_missing_task_cells(nb, resources)
        return nb, resources


class SaveAutoGradesInSession(InSession, SaveAutoGrades):
    def preprocess(self, nb, resources):
        self._session(resources)
        return super(SaveAutoGrades, self).preprocess(nb, resources)  # nbgrader's _add_score, _add_comment


class AssignLatePenaltiesInSession(InSession, AssignLatePenalties):
    def preprocess(self, nb, resources):
        gradebook = self._session(resources)
        self.init_plugin()
        notebook = gradebook.find_submission_notebook(self.notebook_id, self.assignment_id, self.student_id)
        notebook.late_submission_penalty = None
        submission = notebook.assignment
        if submission.total_seconds_late > 0:
            gradebook.db.flush()
            gradebook.db.expire(notebook, ["score"])  # computed by the database, from the grades just saved
            penalty = self.plugin_inst.late_submission_penalty(self.student_id, notebook.score,
                                                               submission.total_seconds_late)
            if penalty is not None:
                notebook.late_submission_penalty = self._check_late_penalty(notebook, penalty)
        return nb, resources


class RememberingMetadataValidator(MetadataValidator):
    """nbgrader's cell-metadata validator, remembering which metadata passed: jsonschema checks and compiles
    nbgrader's schema again for every cell (90 ms a notebook), and a class hands in the same cells again and again.
    A verdict depends on the cell's type and nbgrader metadata only (the source is quoted in messages)."""

    def __init__(self) -> None:
        super().__init__()
        self._valid: set = set()

    def validate_cell(self, cell) -> None:
        key = (cell.cell_type, json.dumps(cell.metadata.get("nbgrader"), sort_keys=True, default=repr))
        if key not in self._valid:
            super().validate_cell(cell)
            self._valid.add(key)


class CheckCellMetadataRemembering(CheckCellMetadata):
    """nbgrader's CheckCellMetadata with one RememberingMetadataValidator for all notebooks (the same checks:
    each cell against the schema, then unique grade ids across the notebook)."""

    def preprocess(self, nb, resources):
        if not hasattr(self, "_validator"):
            self._validator = RememberingMetadataValidator()
        try:
            self._validator.validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            raise ValidationError("Notebook failed to validate; the nbgrader metadata may be corrupted.")
        return nb, resources


IN_SESSION = {OverwriteKernelspec: OverwriteKernelspecInSession, OverwriteCells: OverwriteCellsInSession,
              SaveAutoGrades: SaveAutoGradesInSession, AssignLatePenalties: AssignLatePenaltiesInSession,
              CheckCellMetadata: CheckCellMetadataRemembering}
EXECUTION = (Execute, SandboxedExecute)


def step_preprocessors(classes: list, config) -> list:
    """Instances of the preprocessor `classes` (classes or dotted names, as nbgrader_config.py lists them) made
    from `config`, each of nbgrader's database steps replaced by its InSession variant, execution left out."""
    made = []
    for cls in classes:
        if isinstance(cls, str):
            module, _, name = cls.rpartition(".")
            cls = getattr(__import__(module, fromlist=[name]), name)
        if issubclass(cls, EXECUTION):
            continue
        made.append(IN_SESSION.get(cls, cls)(config=config))
    return made


# -- files a student handed in, read without following a link --------------------------------------------------
def read_regular_file(path: Path, limit: int) -> bytes | None:
    """The bytes of `path` if it is a regular file (not a link) of at most `limit` bytes, else None."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        return handle.read(limit + 1)[:limit]


def student_files(folder: Path, ignore: list) -> dict:
    """{path relative to folder: bytes} of the regular files a student handed in beside the notebook, as nbgrader
    copies them into autograded/ (its CourseDirectory.ignore patterns left out, notebooks left out); links and
    files over MAX_STUDENT_FILE_BYTES are never read."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(folder):  # os.walk does not follow links to folders
        dirnames[:] = [d for d in dirnames if not any(fnmatch(d, p) for p in ignore)]
        for name in filenames:
            if name.endswith(".ipynb") or any(fnmatch(name, p) for p in ignore):
                continue
            path = Path(dirpath, name)
            data = read_regular_file(path, MAX_STUDENT_FILE_BYTES)
            if data is not None:
                files[path.relative_to(folder).as_posix()] = data
    return files


# -- the steps ------------------------------------------------------------------------------------------------
class GradebookSteps:
    """nbgrader's sanitize and save steps for a course, one gradebook session for all submissions.

    config: the course's nbgrader config (nbgrader_api(root).config, which names the course folder)."""

    def __init__(self, config):
        autograde = Autograde(coursedir=CourseDirectory(config=config), config=config)
        self.coursedir = autograde.coursedir
        self.ignore = list(self.coursedir.ignore)
        self.permissions = int(str(autograde.permissions), 8)
        self.sanitizers = step_preprocessors(autograde.sanitize_preprocessors, config)
        # the second CheckCellMetadata is left out: sanitizing validated the same metadata, and execution
        # writes only outputs (it costs a third of the coordinator's time on a notebook)
        savers = list(autograde.autograde_preprocessors)
        if savers and savers[-1] is CheckCellMetadata:
            savers = savers[:-1]
        self.savers = step_preprocessors(savers, config)
        self.gradebook = Gradebook(self.coursedir.db_url, self.coursedir.course_id)
        self._rows: dict = {}
        self._source_files: dict = {}
        self._students = {s.id for s in self.gradebook.students}

    def close(self) -> None:
        self.gradebook.close()

    def add_students(self, students) -> None:
        """Make the gradebook rows of the `students` (ids) it does not hold yet, in one commit (as nbgrader's
        autograde makes a student it meets, with no name or email)."""
        missing = sorted(set(students) - self._students)
        if not missing:
            return
        self.gradebook.db.add_all([Student(id=student) for student in missing])
        self.gradebook.db.commit()
        self._students.update(missing)

    def rows(self, assignment: str) -> AssignmentRows:
        """The assignment's gradebook rows (its one notebook), read once."""
        if assignment not in self._rows:
            self._rows[assignment] = AssignmentRows.read(self.gradebook, assignment,
                                                         notebook_path(assignment, "release").stem)
        return self._rows[assignment]

    def source_files(self, assignment: str) -> dict:
        """{relative path: bytes} of the files beside the assignment's source notebook (check data, .npz), which
        nbgrader puts over a student's copies: read once."""
        if assignment not in self._source_files:
            folder = Path(self.coursedir.format_path(self.coursedir.source_directory, ".", assignment))
            files = student_files(folder, self.ignore)  # the same walk; these files are the instructor's
            self._source_files[assignment] = files
        return self._source_files[assignment]

    def _resources(self, assignment: str, student: str) -> dict:
        rows = self.rows(assignment)
        return {"unique_key": rows.notebook, "output_files_dir": f"{rows.notebook}_files",
                "nbgrader": {"student": student, "assignment": assignment, "notebook": rows.notebook,
                             "db_url": self.coursedir.db_url}}

    def submitted_folder(self, assignment: str, student: str) -> Path:
        return Path(self.coursedir.format_path(self.coursedir.submitted_directory, student, assignment))

    def autograded_folder(self, assignment: str, student: str) -> Path:
        return Path(self.coursedir.format_path(self.coursedir.autograded_directory, student, assignment))

    def sanitize(self, assignment: str, student: str) -> dict:
        """Make the submission's gradebook rows and sanitize its notebook, as nbgrader's first autograde pass.

        Returns the job for a worker: {"name": the notebook's file name, "notebook": the sanitized notebook's
        JSON, "files": {relative path: bytes} of the kernel's working copy besides it}. Raises Unreadable (with
        the reason) for a notebook nbgrader could not sanitize; its rows exist then, to be saved as failed."""
        folder = self.submitted_folder(assignment, student)
        self.add_students([student])  # made up front for a whole run; a student met only now, here
        files = student_files(folder, self.ignore)
        timestamp = files.get("timestamp.txt", b"").decode("utf-8", "replace").strip()
        try:
            submission = {"timestamp": utils.parse_utc(timestamp)} if timestamp else {}
        except ValueError:
            submission = {}  # nbgrader fails the whole run here; one bad file costs its student the lateness only
        with self.gradebook.db.no_autoflush:  # nbgrader builds the rows before adding them (SAWarnings else)
            self.gradebook.update_or_create_submission(assignment, student, **submission)
        files.update(self.source_files(assignment))
        name = f"{self.rows(assignment).notebook}.ipynb"
        raw = read_regular_file(folder / name, 2**31)
        if raw is None:
            raise Unreadable(f"no notebook {name} (a regular file) was handed in", files)
        try:
            nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
            nb = self._run(self.sanitizers, nb, assignment, student)
        except Exception as exc:  # whatever nbgrader refuses, the student is told why
            self.gradebook.db.rollback()
            raise Unreadable(unreadable_reason(exc), files) from exc
        return {"name": name, "notebook": json.dumps(nb), "files": files}

    def save(self, assignment: str, student: str, executed: str, files: dict) -> None:
        """Save the executed notebook's grades, as nbgrader's second autograde pass, in one commit; write the
        graded notebook and `files` (the working copy's other files) to autograded/, read-only.

        executed: the executed notebook's JSON (from a worker, or the unreadable notebook): nbformat 4, written
        by the grader (validated when it was read as a submission)."""
        nb = nbformat.v4.reads(executed)  # as nbformat.reads, without validating again
        try:
            nb = self._run(self.savers, nb, assignment, student)
            self.gradebook.db.commit()
        except BaseException:
            self.gradebook.db.rollback()
            raise
        self._write_autograded(assignment, student, nb, files)

    def _run(self, preprocessors: list, nb, assignment: str, student: str):
        resources = self._resources(assignment, student)
        resources["nnfs_gradebook"] = SessionGradebook(self.gradebook, self.rows(assignment), student)
        for preprocessor in preprocessors:
            nb, resources = preprocessor(nb, resources)
        return nb

    def _write_autograded(self, assignment: str, student: str, nb, files: dict) -> None:
        """autograded/<student>/<assignment>/ as nbgrader leaves it: replaced whole, files read-only."""
        folder = self.autograded_folder(assignment, student)
        if folder.exists():
            shutil.rmtree(folder)
        # nbformat's own layout (indent 1, sorted keys), without validating again or splitting lines
        notebook = (json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
        for name, data in {**files, f"{self.rows(assignment).notebook}.ipynb": notebook}.items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(self.permissions)
