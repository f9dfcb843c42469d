"""nbgrader configuration for nn-from-scratch.

Everything grading needs is set here, through nbgrader's own traitlets, so that `nbgrader ...` commands, the
formgrader and the course's `./course` commands all behave the same way.
"""
import os

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    GetGrades,
    IgnorePattern,
    IncludeHeaderFooter,
    LimitOutput,
    LockCells,
    SaveAutoGrades,
)

from graders.engine.preprocessor import SandboxedExecute
from graders.engine.sandbox import default_to_one_blas_thread
from graders.tooling.nbgrader_plugins import ClearHiddenTracebacks, SanitizeStudentContent

# Kernels inherit this process's environment: one BLAS thread (the notebooks' time budgets are per core),
# and no DeprecationWarnings from libraries on stderr (nbgrader scores a test cell that writes to stderr as failed).
default_to_one_blas_thread()
os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
os.environ.setdefault("NNFS_COURSE_ROOT", os.path.dirname(os.path.abspath(__file__)))

c = get_config()  # noqa: F821  (injected by traitlets)

c.CourseDirectory.course_id = "nn-from-scratch"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.solution_directory = "solutions"
# What travels with a notebook (release, exchange, submission, autograde): the notebook, the check data its
# visible checks read (checks_<assignment>.json/.npz, written by ./course build), and data files it loads
# (03's digits_split.npz). Autograde puts source/'s own copy of a data file back over a student's. And what
# nbgrader's `submit` writes beside a submission, which `collect` must carry: timestamp.txt (late penalties,
# resubmissions) and submission_secret.txt (names the feedback a student fetches).
c.CourseDirectory.include = ["*.ipynb", "checks_*.json", "*.npz", "timestamp.txt", "submission_secret.txt"]

# Per-cell timeout. The slowest cells are the training exercises (budgets of 20-30 s on one core);
# 120 s leaves room for a loaded machine without letting an infinite loop stall a class. This is the one
# setting of it: nbgrader's Execute reads it (`nbgrader validate`), and the grading sandbox's
# GradingLimits.cell_seconds follows it, so both stop a cell at the same time.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
# ipykernel warns on its own stderr about unencrypted local TCP on every start; that is noise in a grading log.
c.Execute.extra_arguments = ["--IPKernelApp.log_level=ERROR"]

# Solutions for self-study: the source with its markup, outputs cleared and not executed, so that the
# committed solutions/ is exactly what the build makes (executing would bake figures and timings into git).
c.GenerateSolution.preprocessors = [IncludeHeaderFooter, LockCells, ClearOutput, ClearMarkScheme]
# A written answer's TA rubric sits in its own answer cell (### BEGIN/END MARK SCHEME): solutions/ keep the model
# answer and drop the rubric. nbgrader accepts a mark scheme only in a "task" cell unless this is off; the release
# never sees the rubric either way (ClearSolutions replaces the whole answer cell with "YOUR ANSWER HERE").
c.ClearMarkScheme.enforce_metadata = False

# Student code runs only in the grading sandbox: SandboxedExecute (graders/engine/preprocessor.py) takes the
# place of nbgrader's Execute, so `nbgrader autograde`, formgrader's Autograde button and `./course grade` (whose
# workers run the same preprocessor) grade alike: a fenced kernel per submission, test cells decided outside it,
# under the limits of c.GradingLimits below. It refuses to grade where no kernel can be fenced in (the message
# says how to enable the fence). nbgrader's stock Execute (unsandboxed: the tests' "before" figures) comes back
# by replacing SandboxedExecute with nbgrader.preprocessors.Execute in this list at the end of this file.
#
# A graded notebook is shown in a browser: in formgrader, from the instructor's logged-in Jupyter server, and
# as the feedback page. Nothing a student wrote or printed may run script there. SandboxedExecute sanitizes
# the notebook it runs (graders/engine/execute.py); SanitizeStudentContent does it again right after (so a
# stock Execute put back is covered too), and feedback does it again before GetGrades adds the gradebook's
# scores and comments, so a notebook graded some other way is covered too.
c.Autograde.autograde_preprocessors = [SandboxedExecute, SanitizeStudentContent, IgnorePattern,
                                       ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                       CheckCellMetadata]

# Feedback shows the diagnostics a hidden test printed, never the hidden test code itself (not even quoted
# in a traceback).
c.GenerateFeedback.preprocessors = [SanitizeStudentContent, GetGrades, ClearHiddenTracebacks, ClearHiddenTests,
                                    CSSHTMLHeaderPreprocessor]
# nbconvert's own sanitizing, for the feedback pages and for formgrader (which renders a submission with an
# HTMLExporter made from this config): HTML and Markdown outputs through `clean_html`, and no JavaScript or
# widget output written into the page at all. Its `clean_html` filter is replaced by the course's (nh3, the
# same rules as the graded notebook's): nbconvert's own escapes table headers and drops every style, which
# would show the check reports as raw tags. (nbgrader's templates render Markdown cells without the filter:
# those are sanitized in the notebook itself, above.)
c.HTMLExporter.sanitize_html = True
c.HTMLExporter.filters = {"clean_html": "graders.tooling.nbgrader_plugins.clean_html"}

# A deleted test cell is put back from the source and run, so deleting a test never earns its points.
c.OverwriteCells.add_missing_cells = True

# The grading sandbox's other limits (the notebook's time, memory, CPU, processes, file size, outputs) keep the
# defaults of GradingLimits in graders/engine/sandbox.py, which says what each one bounds; to change one, set
# it here, e.g. c.GradingLimits.memory_bytes = 4 * 2**30.
