"""`./course` and `nnfs`: the course's commands, one argparse subcommand each. `./course help` lists them.

This module only describes the commands and their arguments; commands.py does the work. Nothing here imports
nbgrader or nbformat (seconds), so help, --version and argument errors answer at once, and `--help` on any
command prints the help and stops before the command could touch the course folder.
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

from . import commands

DISTRIBUTION = "nnfs-course"


def course_version() -> str:
    """The course's version: the installed `nnfs-course` distribution's, else the version in the clone's
    pyproject.toml (an environment that has not installed the course under that name yet)."""
    from importlib import metadata
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    from .project import project_table
    return project_table(commands.CHECKOUT)["version"]


class _VersionAction(argparse.Action):
    """`--version`: print `nnfs-course <version>` and exit 0; the version is looked up only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{DISTRIBUTION} {course_version()}")  # stdout, as argparse's own version action; exit's goes to stderr
        parser.exit()


def assignment_id(name: str) -> str:
    """argparse `type` of an ASSIGNMENT argument: `name` if an assignment of that id has a notebook under
    source/, else an argparse error listing the ones that do. Looked up only when such an argument is given,
    so help works anywhere, even outside a course."""
    from .course import available_assignments  # nbformat comes with it: import only when needed
    try:
        known = available_assignments("source")
    except RuntimeError as exc:  # no course folder: course_root() says how to point at one
        raise argparse.ArgumentTypeError(str(exc)) from None
    if name not in known:
        choices = ", ".join(known) or "none, source/ holds no assignment notebook"
        raise argparse.ArgumentTypeError(f"invalid choice: {name!r} (choose from {choices})")
    return name


def _add_command(subparsers, name: str, summary: str, run, details: str = "", *, forwards: str = ""):
    """Add one command.

    summary: the line in the command list; details: what `./course help NAME` adds after it; run: the function
    called with the parsed arguments; forwards: the program that receives every argument the command does not
    define (they land in `extra`); empty for a command that rejects unknown arguments.
    Returns the command's own ArgumentParser, to add its arguments to.
    """
    description = f"{summary[0].upper()}{summary[1:]}. {details}".strip()
    usage = f"%(prog)s [-h] [{forwards.split()[0].upper()} ARGS...]" if forwards else None
    parser = subparsers.add_parser(name, help=summary, description=description, usage=usage,
                                   allow_abbrev=not forwards)  # `--he` is the forwarded program's, not --help
    parser.set_defaults(run=run, forwards=forwards, command_parser=parser)
    return parser


def _print_help(parser: argparse.ArgumentParser, commands_by_name: dict, options: argparse.Namespace) -> int:
    """`./course help [COMMAND]`: the help of options.topic, or the top-level help without one. Returns 0."""
    (commands_by_name[options.topic] if options.topic else parser).print_help()
    return 0


def _measure_time_command(options: argparse.Namespace) -> int:
    from .build import measure_time_command  # imports nbgrader: only when the command runs
    return measure_time_command(options)


def build_parser() -> argparse.ArgumentParser:
    """The `./course` parser: `./course COMMAND ...`, one subcommand per course command."""
    parser = argparse.ArgumentParser(
        prog="./course",
        description="Build the course, grade a class, check your own notebook. Inside the course's environment, "
                    "`nnfs COMMAND` does the same as `./course COMMAND`.",
        epilog="`./course help COMMAND` (or `./course COMMAND --help`) describes a command and its arguments.")
    parser.add_argument("--version", action=_VersionAction, help=f"print `{DISTRIBUTION} <version>` and exit")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")

    assignments = {"nargs": "*", "metavar": "ASSIGNMENT", "type": assignment_id}
    build = _add_command(
        subparsers, "build", "generate release/ and solutions/ from source/ with nbgrader", commands.build_command,
        "For each assignment: nbgrader generate_assignment into release/<assignment>/, with the check data the "
        "visible checks answer from (checks_<assignment>.json and .npz), and generate_solution into "
        "solutions/<assignment>/.")
    build.add_argument("assignments", **assignments, help="assignment ids under source/ (default: every one)")

    _add_command(
        subparsers, "demo", "build the course, grade the example class, print and write the grades",
        commands.demo_command,
        f"It first deletes what an earlier demo wrote into the course folder ({', '.join(commands.DEMO_OUTPUTS)}), "
        "and refuses to when submitted/ holds anyone but the example class (examples/students.py). Then it builds "
        "release/ and solutions/, writes the example class into submitted/, grades it as `./course grade` does, "
        "generates feedback and writes reports/.")

    _add_command(
        subparsers, "test", "run the test suite; every argument goes to pytest", commands.test_command,
        "`./course test` passes its arguments to pytest, e.g. `./course test -m \"not slow\"` (a quick loop), "
        "`./course test -m unit` or `./course test tests/test_cli.py`; `./course test --help` is pytest's help. "
        "It first installs, once, what the browser tests need (Playwright, Chromium); `nnfs test` runs pytest "
        "in the clone without installing anything.", forwards="pytest")

    grade = _add_command(
        subparsers, "grade",
        "grade every submission under submitted/: parallel, sandboxed, tamper-proof, into the gradebook",
        commands.grade_command,
        "nbgrader's autograde pipeline with each submission in its own sandboxed kernel, several at once. "
        "A submission unchanged since it was graded is skipped, so an interrupted run resumes. Exits 1 if the "
        "grader itself failed on a submission.")
    grade.add_argument("assignments", **assignments,
                       help="assignment ids under source/ (default: every one with submissions)")
    grade.add_argument("--workers", type=int, metavar="N", help="parallel kernels (default: one per core)")
    grade.add_argument("--force", action="store_true", help="grade again even what is already graded")
    grade.add_argument("--student", nargs="+", metavar="ID", dest="students",
                       help="grade only these students' submissions (default: everyone's)")
    grade.add_argument("--scheduler", metavar="ADDRESS",
                       help="execute on the existing Dask cluster whose scheduler is at ADDRESS (e.g. "
                            "tcp://10.0.0.5:8786; default: c.ClassGrading.scheduler, else local processes)")
    grade.add_argument("--allow-unfenced", action="store_true",
                       help="grade even where no kernel can be fenced (no user namespaces and not root): the "
                            "submissions then run with rlimits only; by default grading refuses and says why")

    watch = _add_command(
        subparsers, "watch", "grade submissions as they arrive and release their feedback, until stopped",
        commands.watch_command,
        "Every few seconds: nbgrader's collect --update from the exchange, grading of each new or resubmitted "
        "submission as `./course grade` does, then nbgrader's generate_feedback and release_feedback, so the "
        "student fetches the feedback. One log line per submission. Ctrl-C (or SIGTERM) stops it; started again, "
        "it picks up where it stopped (.grading/watch.json).")
    watch.add_argument("--poll", type=float, metavar="SECONDS", dest="poll_seconds",
                       help="seconds between two looks at the exchange (default: c.Watch.poll_seconds, 3)")
    watch.add_argument("--allow-unfenced", action="store_true",
                       help="grade even where no kernel can be fenced, as `./course grade --allow-unfenced`")

    report = _add_command(
        subparsers, "report", "write the class report of an assignment: an HTML page, its figures, a CSV",
        commands.report_command,
        "From the gradebook and the graded notebooks alone: the score distribution, each exercise's pass rate "
        "(visible and hidden checks apart), the mistakes the class made most with the students who made them, "
        "the students who are stuck and why, and the grading time per notebook. Prints where it wrote them.")
    report.add_argument("assignment", type=assignment_id, metavar="ASSIGNMENT", help="an assignment id under source/")
    report.add_argument("--out", type=Path, metavar="DIR",
                        help="folder to write into (default: reports/<assignment>/ in the course folder)")

    measure = _add_command(
        subparsers, "measure-time", "time the full solutions' grading; the grader fits its time limits to it",
        _measure_time_command,
        "Grades each source notebook in the sandbox and records the seconds in graders/hidden/timing.json: a "
        "notebook may then run c.GradingLimits.notebook_time_factor x that + notebook_time_margin, a cell "
        "cell_time_factor x the slowest cell + cell_time_margin. Run it on the grading machine, unloaded.")
    measure.add_argument("assignments", **assignments, help="assignment ids under source/ (default: every one)")
    measure.add_argument("--repeat", type=int, default=1, metavar="N", help="runs each; the fastest counts")

    bundle = _add_command(
        subparsers, "release-bundle", "write one zip per assignment with everything a student needs",
        commands.release_bundle_command,
        "bundles/nnfs-<assignment>.zip holds the release folder, the student package's wheel (nnfs-checks) "
        "and a README; nothing of the instructor's. Run `./course build` first. Prints the bundles' paths.")
    bundle.add_argument("assignments", **assignments,
                        help="assignment ids under source/ (default: every one with a release notebook)")
    bundle.add_argument("--out", type=Path, metavar="DIR", help="folder to write into (default: bundles/ in the "
                                                                "course folder)")

    _add_command(
        subparsers, "lab", "open the course in JupyterLab (the notebooks are under release/)", commands.lab_command,
        "Runs `jupyter lab` in the course folder; every argument goes to it, e.g. `./course lab --port 8889`.",
        forwards="jupyter lab")

    validate = _add_command(
        subparsers, "validate",
        "nbgrader validate, with an exit status: 1 if a test fails, 2 if a locked cell changed",
        commands.validate_command,
        "Runs each saved notebook's visible tests in a fresh kernel, as nbgrader's Validate button does, and "
        "lists the test cells that fail.")
    validate.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK", help="notebook files (.ipynb)")

    selfcheck = _add_command(
        subparsers, "selfcheck", "run the hidden tests on your own notebook and print your score",
        commands.selfcheck_command,
        "Runs the notebook in a fresh kernel with the hidden tests, prints the score per exercise and the "
        "diagnostics of every failed check, and exits non-zero until you have full marks.")
    selfcheck.add_argument("notebook", type=Path, metavar="NOTEBOOK", help="your notebook file (.ipynb)")
    selfcheck.add_argument("--assignment", type=assignment_id, metavar="ID",
                           help="the notebook's assignment (default: its folder's name, else the source "
                                "notebook of the same file name)")

    totext = _add_command(
        subparsers, "totext", "print a source notebook in the editable text form", commands.totext_command,
        "Edit the text, then write it back with `./course fromtext`; CONTRIBUTING.md describes the cell markers.")
    totext.add_argument("notebook", type=Path, metavar="NOTEBOOK", help="a source notebook (.ipynb)")

    fromtext = _add_command(
        subparsers, "fromtext", "write a source notebook from the text form", commands.fromtext_command,
        "The notebook is checked against nbformat's schema before it is written.")
    fromtext.add_argument("text", type=Path, metavar="TEXT", help="the text form, as `./course totext` prints it")
    fromtext.add_argument("notebook", type=Path, metavar="NOTEBOOK", help="the notebook to write (replaced)")

    # subparsers.choices is the live table of commands, so `help` also knows itself
    helper = _add_command(subparsers, "help", "print this help, or a command's",
                          functools.partial(_print_help, parser, subparsers.choices))
    helper.add_argument("topic", nargs="?", choices=subparsers.choices, metavar="COMMAND",
                        help="the command to describe (default: list every command)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `./course` command.

    argv: the arguments after the program's name (default: sys.argv[1:]). Returns the exit status; argparse
    exits by itself for --help, --version (0) and a usage error (2).
    """
    parser = build_parser()
    options, extra = parser.parse_known_args(argv)
    if options.command is None:
        parser.print_help()
        return 0
    if extra and not options.forwards:
        options.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    options.extra = extra
    return int(options.run(options) or 0)
