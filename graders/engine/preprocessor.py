"""The course's grading as an nbgrader preprocessor: what nbgrader_config.py puts in place of nbgrader's Execute.

`nbgrader autograde`, formgrader's Autograde button and `./course grade` all execute a sanitized submission
through `SandboxedExecute.preprocess`: the notebook runs in a fenced kernel (graders/engine/sandbox.py) and its
test cells are decided outside the kernel (graders/engine/execute.py). `./course grade` constructs the same
preprocessor in its workers (local processes or Dask workers) with the limits its coordinator read, so the two
ways of grading cannot drift apart; it only adds parallelism, resume and the summary.

nbgrader's stock Execute stays importable (`nbgrader.preprocessors.Execute`): putting it back with
`--Autograde.autograde_preprocessors=...` gives plain, unsandboxed execution (the tests' "before" figures).
"""
from __future__ import annotations

from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Instance, List, Unicode

from .execute import ExecutionSummary, execute_notebook
from .sandbox import GradingLimits, check_fence, fence_summary

#: What `preprocess` leaves in `resources` for its caller: the ExecutionSummary of the run.
SUMMARY_KEY = "nnfs_execution"

_FENCES: dict = {}  # allow_unfenced -> the fence check_fence found: probed once per process


def grader_clone() -> Path:
    """The folder of the clone the grader runs from (its source/ holds the solutions, like the course's)."""
    return Path(__file__).resolve().parent.parent.parent


def hidden_folders(root: Path, extra=()) -> tuple:
    """What no kernel may see, sorted: the course at `root`, the grader's clone and the `extra` folders (str)."""
    return tuple(sorted({str(Path(root).resolve()), str(grader_clone()), *map(str, extra)}))


def course_grading_limits(config, root: Path) -> GradingLimits:
    """GradingLimits as `config` sets them (c.GradingLimits.*, c.Execute.timeout), with the course's grading
    secret in run_secret where c.GradingLimits.secret_hidden_inputs asks for one.

    config: a traitlets Config (nbgrader's); root: the course folder, which keeps the secret in .grading/."""
    limits = GradingLimits(config=config)
    if limits.secret_hidden_inputs and not limits.run_secret:
        from .classgrade import grading_secret  # classgrade imports this module
        limits.run_secret = grading_secret(Path(root))
    return limits


def fence_once(limits: GradingLimits) -> dict:
    """check_fence, once per process and allow_unfenced: raises FenceUnavailable (saying how to enable the
    fence) before any kernel starts where none can be fenced in and unfenced grading is not allowed."""
    if limits.allow_unfenced not in _FENCES:
        _FENCES[limits.allow_unfenced] = check_fence(limits)
    return _FENCES[limits.allow_unfenced]


class SandboxedExecute(NbGraderPreprocessor):
    """Execute a sanitized submission in a fenced kernel, with its test cells decided by the grader.

    The kernel's working copy is the notebook's folder (resources['metadata']['path']: nbgrader's Autograde
    runs its autograde preprocessors on the copy in autograded/<student>/<assignment>/, with the files
    CourseDirectory.include brought beside it). Faults of the student's code (timeouts, a dead kernel) are
    written into the notebook as error outputs and logged; a failure of a check itself (a bug of ours) is
    logged as an error, and that cell earns nothing, as under `./course grade`.
    """

    hidden_paths = List(Unicode(), config=True, help=(
        "Folders a kernel must not see besides the course folder and the grader's own clone (which are always "
        "hidden): grading refuses to start a kernel whose Python install holds one."))
    limits = Instance(GradingLimits, allow_none=True, help=(
        "The sandbox's limits. None (the default): GradingLimits from this same config (c.GradingLimits.*, "
        "c.Execute.timeout), with the course's grading secret. `./course grade` passes its coordinator's."))
    course_root = Unicode("", help=(
        "The course folder, hidden from kernels and home of the grading secret. Empty (the default): "
        "c.CourseDirectory.root."))

    def _root(self) -> Path:
        return Path(self.course_root or CourseDirectory(config=self.config).root).resolve()

    def preprocess(self, nb, resources):
        """Run `nb` in place; returns (nb, resources), with the ExecutionSummary in resources[SUMMARY_KEY].

        nb: the sanitized notebook (nbformat NotebookNode); resources: nbconvert's, whose
        ['metadata']['path'] is the folder holding the notebook and its data files."""
        root = self._root()
        limits = self.limits or course_grading_limits(self.config, root)
        fence = fence_once(limits)
        workdir = Path(resources["metadata"]["path"] or ".").resolve()
        summary: ExecutionSummary = execute_notebook(nb, workdir, limits=limits,
                                                     hide=hidden_folders(root, self.hidden_paths))
        # in formgrader's Autograde log too: the instructor sees that the notebook ran fenced in, and how
        self.log.info("%s: executed in the grading sandbox in %.1f s (%s)", workdir.name, summary.seconds,
                      fence_summary(fence))
        for fault in summary.faults:
            self.log.info("%s: %s", workdir.name, fault)
        for error in summary.grader_errors:
            self.log.error("GRADER ERROR in %s: %s", workdir, error)
        resources[SUMMARY_KEY] = summary
        return nb, resources
