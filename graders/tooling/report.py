"""The class report of one assignment: `./course report ASSIGNMENT`.

One HTML page (reports/<assignment>/report.html), its matplotlib figures as PNG beside it, and a CSV of the same
counts, from two sources only: nbgrader's gradebook (scores, per test cell) and the graded notebooks
(autograded/<student>/<assignment>/*.ipynb: the diagnosis each failed check printed), plus the grading engine's
done markers (.grading/done/<assignment>/<student>.json: seconds and faults of each submission).

The page shows: the score distribution; each exercise's pass rate, visible and hidden checks apart; the mistakes
the class made most, named by the checks' diagnoses ("likely cause"), each with the students who made it; the
students who are stuck (nothing passes, the notebook could not be read, or it hit a limit) with the reason; the
grading time per notebook and the slowest. Everything a student wrote or could influence (ids, diagnoses quoting
their values) is escaped: the page holds no script and forbids any (Content-Security-Policy).
"""
from __future__ import annotations

import csv
import html
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .course import course_root, exercise_of, nbgrader_meta

#: The label under which a failed check names the likely mistake (graders/checks/failures.py, Failure.details).
CAUSE_LABEL = "likely cause:"
#: Slowest submissions listed by name.
SLOWEST = 5
#: What the engine records when a submission could not be read (graders/engine/classgrade.py).
UNREADABLE = "UnreadableSubmission"


class ReportError(RuntimeError):
    """There is nothing to report on (no graded submission of the assignment); the message says what to run."""


@dataclass
class StudentResult:
    """One graded submission.

    student: the student's id; score, max_score: from the gradebook (max_score counts the written answers, score
    counts them once a TA has graded them); cells: grade_id -> (score, max_score) of each test cell; written: the
    points of the written answers; to_grade: written answers still waiting for a TA (nbgrader's
    needs_manual_grade); causes: (exercise, likely cause) of each failed check, once each; seconds, faults: from
    the done marker (None, () when there is none); unreadable: the reason it could not be read, or ""."""
    student: str
    score: float
    max_score: float
    cells: dict = field(default_factory=dict)
    written: float = 0.0
    to_grade: int = 0
    causes: list = field(default_factory=list)
    seconds: float | None = None
    faults: tuple = ()
    unreadable: str = ""


# -- reading -------------------------------------------------------------------------------------------------
def gradebook_results(db_url: str, course_id: str, assignment: str) -> list[StudentResult]:
    """Every submission of `assignment` in the gradebook at db_url (any backend nbgrader accepts), by student id."""
    from nbgrader.api import Gradebook, MissingEntry
    results = []
    with Gradebook(db_url, course_id) as gb:
        try:
            submissions = gb.assignment_submissions(assignment)
        except MissingEntry:
            return []
        for submission in submissions:
            grades = [grade for notebook in submission.notebooks for grade in notebook.grades]
            cells = {grade.name: (float(grade.score or 0.0), float(grade.max_score or 0.0))
                     for grade in grades if exercise_of(grade.name)}
            written = [grade for grade in grades if not exercise_of(grade.name)]
            results.append(StudentResult(submission.student.id, float(submission.score or 0.0),
                                         float(submission.max_score or 0.0), cells,
                                         sum(float(grade.max_score or 0.0) for grade in written),
                                         sum(bool(grade.needs_manual_grade) for grade in written)))
    return sorted(results, key=lambda r: r.student)


def _normalized(cause: str) -> str:
    """A diagnosis with the batch size it quotes taken out, so that one mistake on inputs of different sizes
    counts as one ("exactly N = 8 times too large" and "exactly N = 50 times too large")."""
    return re.sub(r"\bN = \d+\b", "N", " ".join(cause.split()))


def causes_in_text(text: str) -> list[str]:
    """The `likely cause:` diagnoses in a failed check's plain-text report (Failure.text, indented by
    Report.text): each cause with its continuation lines (indented under the label's value) joined."""
    causes, lines = [], text.splitlines()
    for index, line in enumerate(lines):
        position = line.find(CAUSE_LABEL)
        if position < 0 or line[:position].strip():
            continue
        parts = [line[position + len(CAUSE_LABEL):].strip()]
        value_column = position + 15  # failure_text aligns values at 15 columns after the label's start
        for follow in lines[index + 1:]:
            if len(follow) - len(follow.lstrip()) < value_column or not follow.strip():
                break
            parts.append(follow.strip())
        cause = _normalized(" ".join(parts))
        if cause:
            causes.append(cause)
    return causes


def _output_text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") == "error":
        return "\n".join([f"{output.get('ename', '')}: {output.get('evalue', '')}", *output.get("traceback", [])])
    return output.get("data", {}).get("text/plain", "") if isinstance(output.get("data"), dict) else ""


def notebook_diagnoses(path: Path) -> tuple[list[tuple[str, str]], str]:
    """What the grader wrote in a graded notebook's test cells.

    path: autograded/<student>/<assignment>/<notebook>.ipynb.
    Returns (causes, unreadable): (exercise, likely cause) of each failed test cell's diagnoses, once each, in
    notebook order; and the reason the submission could not be read ("" when it was read)."""
    nb = nbformat.read(str(path), as_version=4)
    causes, unreadable = [], ""
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        exercise = exercise_of(meta.get("grade_id", ""))
        if cell.cell_type != "code" or not exercise or meta.get("solution"):
            continue
        outputs = cell.get("outputs", [])
        errors = [o for o in outputs if o.get("output_type") == "error"]
        if not errors:
            continue
        if errors[0].get("ename") == UNREADABLE:
            unreadable = unreadable or str(errors[0].get("evalue", ""))
            continue
        for output in outputs:
            for cause in causes_in_text(_output_text(output)):
                if (exercise, cause) not in causes:
                    causes.append((exercise, cause))
    return causes, unreadable


def add_notebook_facts(results: list[StudentResult], root: Path, assignment: str) -> None:
    """Fill each result's causes and unreadable reason from its graded notebooks, and its seconds and faults
    from the engine's done marker. A missing or unreadable file leaves the fields empty."""
    for result in results:
        for path in sorted((root / "autograded" / result.student / assignment).glob("*.ipynb")):
            try:
                causes, unreadable = notebook_diagnoses(path)
            except (OSError, ValueError, nbformat.reader.NotJSONError) as exc:
                result.unreadable = f"the graded notebook could not be read: {type(exc).__name__}"
                continue
            result.causes += [c for c in causes if c not in result.causes]
            result.unreadable = result.unreadable or unreadable
        marker = root / ".grading" / "done" / assignment / f"{result.student}.json"
        if marker.exists():
            try:
                saved = json.loads(marker.read_text(encoding="utf-8"))
                result.seconds, result.faults = float(saved.get("seconds", 0.0)), tuple(saved.get("faults", ()))
            except (ValueError, TypeError):
                pass
        if result.unreadable and not result.seconds:
            result.seconds = None  # never executed: no grading time to show


# -- counting ------------------------------------------------------------------------------------------------
def _level(grade_id: str) -> str:
    return grade_id.rsplit("_", 1)[-1]


def pass_rates(results: list[StudentResult]) -> list[tuple[str, str, int, int]]:
    """(exercise, level, students who passed every check cell of that level, students) in notebook order; a
    cell is passed when it earned all its points."""
    passed: dict = defaultdict(lambda: [0, 0])
    order: list = []
    for result in results:
        by_key: dict = defaultdict(list)
        for grade_id, (score, maximum) in result.cells.items():
            by_key[exercise_of(grade_id), _level(grade_id)].append(score >= maximum > 0)
        for key, verdicts in by_key.items():
            if key not in order:
                order.append(key)
            passed[key][0] += all(verdicts)
            passed[key][1] += 1
    return [(exercise, level, *passed[exercise, level]) for exercise, level in order]


def mistakes(results: list[StudentResult]) -> list[tuple[str, str, list[str]]]:
    """(exercise, likely cause, students who made it), the most common first."""
    students: dict = defaultdict(list)
    for result in results:
        for key in result.causes:
            students[key].append(result.student)
    return sorted(((ex, cause, names) for (ex, cause), names in students.items()),
                  key=lambda row: (-len(row[2]), row[0], row[1]))


def stuck(results: list[StudentResult]) -> list[tuple[str, str]]:
    """(student, reason) of each student who is stuck: the notebook could not be read, it hit a limit of the
    sandbox (a fault), or no exercise passes a single check cell."""
    rows = []
    for result in results:
        if result.unreadable:
            rows.append((result.student, f"notebook could not be read: {result.unreadable}"))
        elif result.faults:
            rows.append((result.student, f"hit a limit: {'; '.join(result.faults)}"))
        elif result.cells and not any(score >= maximum > 0 for score, maximum in result.cells.values()):
            rows.append((result.student, "no check passes"))
    return rows


def score_bins(results: list[StudentResult], bins: int = 10) -> list[tuple[float, float, int]]:
    """(low, high, students) over [0, max score] in `bins` equal bins, the last one closed."""
    maximum = max((r.max_score for r in results), default=0.0) or 1.0
    counts = Counter(min(int(bins * r.score / maximum), bins - 1) for r in results)
    return [(maximum * i / bins, maximum * (i + 1) / bins, counts.get(i, 0)) for i in range(bins)]


# -- writing -------------------------------------------------------------------------------------------------
def _figure(width: float = 7.0, height: float = 3.2):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return figure, figure.add_subplot()


def plot_scores(results: list[StudentResult], path: Path) -> None:
    figure, axes = _figure()
    maximum = max((r.max_score for r in results), default=1.0) or 1.0
    axes.hist([r.score for r in results], bins=10, range=(0, maximum), color="#4c72b0", edgecolor="white")
    axes.set(xlabel=f"score (of {maximum:g})", ylabel="students", title="Score distribution")
    axes.yaxis.get_major_locator().set_params(integer=True)
    figure.savefig(path)


def plot_pass_rates(rates: list[tuple[str, str, int, int]], path: Path) -> None:
    exercises = list(dict.fromkeys(row[0] for row in rates))
    share = {(ex, level): 100 * passed / total for ex, level, passed, total in rates if total}
    figure, axes = _figure(7.0, 0.9 + 0.42 * len(exercises))
    positions = range(len(exercises))
    for offset, level, color in ((-0.2, "visible", "#55a868"), (0.2, "hidden", "#c44e52")):
        axes.barh([p + offset for p in positions], [share.get((ex, level), 0) for ex in exercises], height=0.38,
                  color=color, label=f"{level} checks")
    axes.set_yticks(list(positions), exercises)
    axes.invert_yaxis()
    axes.set(xlim=(0, 100), xlabel="students passing (%)", title="Pass rate per exercise")
    axes.legend(loc="lower right", fontsize="small")
    figure.savefig(path)


def plot_seconds(results: list[StudentResult], path: Path) -> None:
    figure, axes = _figure()
    axes.hist([r.seconds for r in results if r.seconds is not None], bins=15, color="#8172b2", edgecolor="white")
    axes.set(xlabel="seconds of grading per notebook", ylabel="notebooks", title="Grading time")
    axes.yaxis.get_major_locator().set_params(integer=True)
    figure.savefig(path)


def _csv_cell(value) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (a student id may start with = + - @)."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(path: Path, results, rates, mistake_rows, stuck_rows) -> None:
    """One table of every count on the page: section, exercise, level, what, count, total, students."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["section", "exercise", "level", "what", "count", "total", "students"])
        for low, high, count in score_bins(results):
            writer.writerow(["score", "", "", f"{low:g}-{high:g}", count, len(results), ""])
        for exercise, level, passed, total in rates:
            writer.writerow(["pass_rate", exercise, level, "passed", passed, total, ""])
        for exercise, cause, names in mistake_rows:
            writer.writerow(map(_csv_cell, ["mistake", exercise, "", cause, len(names), len(results), ";".join(names)]))
        for student, reason in stuck_rows:
            writer.writerow(map(_csv_cell, ["stuck", "", "", reason, 1, len(results), student]))
        for r in results:
            writer.writerow(map(_csv_cell, ["student", "", "", "score", f"{r.score:g}", f"{r.max_score:g}", r.student]))
            if r.seconds is not None:
                writer.writerow(map(_csv_cell, ["seconds", "", "", "seconds", f"{r.seconds:.2f}", "", r.student]))


STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1100px;color:#1f2328;padding:0 16px}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5em 0}th,td{padding:3px 10px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#57606a}img{max-width:100%;border:1px solid #eaeef2}
.bar{display:inline-block;height:.8em;background:#4c72b0;vertical-align:middle}.students{max-width:520px}
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: list[str], rows: list[list], numeric: set[int] = frozenset(), table_id: str = "") -> str:
    head = "".join(f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="n">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    ident = f' id="{_e(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _rate_rows(rates: list[tuple[str, str, int, int]]) -> list[list[str]]:
    """One row per exercise: its name, then `passed of total (rate)` for the visible and the hidden checks."""
    cells = {(ex, level): f"{passed} of {total} ({100 * passed / total:.0f} %)" if total else "-"
             for ex, level, passed, total in rates}
    return [[ex, cells.get((ex, "visible"), "-"), cells.get((ex, "hidden"), "-")]
            for ex in dict.fromkeys(row[0] for row in rates)]


def _written_note(results: list[StudentResult]) -> str:
    """What the summary says of the written answers: their points in the maximum, and how many answers still
    wait for a TA (until then a score holds only the autograded points). "" when there are none."""
    written = max((r.written for r in results), default=0.0)
    if not written:
        return ""
    waiting = sum(r.to_grade for r in results)
    return (f" ({written:g} of them for written answers a TA grades in formgrader's Manual Grading; "
            f"{waiting} {'answer' if waiting == 1 else 'answers'} still to grade, not yet counted)")


def render_html(assignment: str, results, rates, mistake_rows, stuck_rows, figures: dict) -> str:
    """The page. Every value is escaped (html.escape) where it is written; figures: name -> PNG file name."""
    n = len(results)
    maximum = max((r.max_score for r in results), default=0.0)
    mean = sum(r.score for r in results) / n if n else 0.0
    timed = sorted((r for r in results if r.seconds is not None), key=lambda r: -r.seconds)
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        # no script of any kind, images only from beside the page, inline style only
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src 'self'; "
        "style-src 'unsafe-inline'\">",
        f"<title>Class report: {_e(assignment)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Class report: {_e(assignment)}</h1>",
        f'<p class="muted" id="summary">{n} graded submissions; mean score {mean:.1f} of {maximum:g}'
        f"{_written_note(results)}; {len(stuck_rows)} stuck; {len(mistake_rows)} distinct diagnosed mistakes.</p>",
        "<h2>Score distribution</h2>",
        f'<img src="{_e(figures["scores"])}" alt="histogram of the scores">',
        "<h2>Most common mistakes</h2>",
        '<p class="muted">Named by the diagnosis (\u201clikely cause\u201d) of each failed check, one count per '
        "student and exercise.</p>",
        _table(["students", "exercise", "likely cause", "who"],
               [[len(names), ex, cause, ", ".join(names)] for ex, cause, names in mistake_rows], {0}, "mistakes")
        if mistake_rows else "<p>No failed check named a mistake.</p>",
        "<h2>Students who are stuck</h2>",
        _table(["student", "why"], [list(row) for row in stuck_rows], table_id="stuck")
        if stuck_rows else "<p>Nobody is stuck.</p>",
        "<h2>Pass rate per exercise</h2>",
        f'<img src="{_e(figures["pass_rates"])}" alt="pass rate of each exercise, visible and hidden checks">',
        _table(["exercise", "visible checks passed", "hidden checks passed"], _rate_rows(rates), {1, 2}, "pass-rates"),
        "<h2>Grading time</h2>",
        f'<img src="{_e(figures["seconds"])}" alt="histogram of grading seconds per notebook">'
        if timed else "<p>No grading times recorded (.grading/done/).</p>",
        _table(["slowest", "seconds"], [[r.student, f"{r.seconds:.1f}"] for r in timed[:SLOWEST]], {1}, "slowest")
        if timed else "",
        "<h2>Every submission</h2>",
        _table(["student", "score", "of", "seconds"],
               [[r.student, f"{r.score:g}", f"{r.max_score:g}", "-" if r.seconds is None else f"{r.seconds:.1f}"]
                for r in results], {1, 2, 3}, "scores"),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(assignment: str, out: Path | None = None, root: Path | None = None) -> list[Path]:
    """Write the class report of `assignment`.

    out: the folder (default: <course>/reports/<assignment>/); root: the course folder (default: course_root()).
    Returns the paths written: the HTML page first, then the CSV and the figures. Raises ReportError when the
    gradebook holds no submission of the assignment."""
    from .build import nbgrader_api
    root = Path(root or course_root()).resolve()
    coursedir = nbgrader_api(root).coursedir
    results = gradebook_results(coursedir.db_url, coursedir.course_id, assignment)
    if not results:
        raise ReportError(f"the gradebook holds no graded submission of {assignment}: run `./course grade "
                          f"{assignment}` first")
    add_notebook_facts(results, root, assignment)
    rates, mistake_rows, stuck_rows = pass_rates(results), mistakes(results), stuck(results)

    out = Path(out or root / "reports" / assignment)
    out.mkdir(parents=True, exist_ok=True)
    figures = {"scores": "score_distribution.png", "pass_rates": "pass_rates.png", "seconds": "grading_seconds.png"}
    plot_scores(results, out / figures["scores"])
    plot_pass_rates(rates, out / figures["pass_rates"])
    written_figures = [out / figures["scores"], out / figures["pass_rates"]]
    if any(r.seconds is not None for r in results):
        plot_seconds(results, out / figures["seconds"])
        written_figures.append(out / figures["seconds"])
    page, table = out / "report.html", out / "counts.csv"
    write_csv(table, results, rates, mistake_rows, stuck_rows)
    page.write_text(render_html(assignment, results, rates, mistake_rows, stuck_rows, figures), encoding="utf-8")
    return [page, table, *written_figures]
