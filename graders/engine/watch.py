"""Grade submissions as they arrive: `./course watch`.

Each poll, for every assignment released to nbgrader's exchange:
1. nbgrader's own `collect --update` copies new submissions, and newer resubmissions, into submitted/;
2. the submissions whose files changed since they were graded (the same fingerprints and `.grading/done/`
   markers as the batch) are graded with grade_class(students=[...]): the fence, the sandbox, the gradebook,
   everything as `./course grade`;
3. each graded submission's feedback is made (nbgrader's generate_feedback) and released to the exchange
   (release_feedback), where the student's `fetch_feedback` (or the Assignments tab) finds it;
4. one line per submission is logged: when, who, what, score, seconds.

What has been released, and which grader failures have been reported, is kept in `.grading/watch.json` (written
atomically), next to the done markers: a watcher stopped at any moment (even SIGKILL) and started again grades
what was not finished, releases what was graded but not released, and reports nothing twice. A resubmission
changes the submission's fingerprint, so it is graded again and its grade replaces the old one.
"""
from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from traitlets import Float, Int
from traitlets.config import LoggingConfigurable

from ..tooling.build import nbgrader_api
from ..tooling.course import course_root
from .classgrade import STATE, Job, _done_marker, course_limits, find_jobs, grade_class

STATE_FILE = "watch.json"
#: What nbgrader's `submit` writes beside the notebook and its own `collect` must carry into submitted/: the
#: submission's time (its grade's late penalty, and a resubmission's new fingerprint) and the key that names
#: its feedback file for the student's fetch_feedback. The course's CourseDirectory.include (what travels with
#: a notebook) names neither, so collect would drop both.
SUBMISSION_FILES = ("timestamp.txt", "submission_secret.txt")


class Watch(LoggingConfigurable):
    """The watcher's settings; set them in nbgrader_config.py (`c.Watch.poll_seconds = 10`) or with flags."""

    poll_seconds = Float(3.0, config=True, help="Seconds between two looks at the exchange.")
    workers = Int(1, config=True, help=(
        "Parallel kernels per poll. Submissions trickle in one or two at a time, so one worker keeps a core "
        "free for the instructor's own work; more help when a deadline brings many at once."))


@dataclass
class WatchState:
    """What the watcher has done, by `assignment/student`: released maps to the fingerprint whose feedback was
    released; failed maps to the fingerprint whose grader failure was reported (graded again only when the
    submission changes)."""
    released: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> "WatchState":
        """root: the course folder. Returns the saved state, or an empty one on a first start."""
        path = root / STATE / STATE_FILE
        if not path.exists():
            return cls()
        saved = json.loads(path.read_text(encoding="utf-8"))
        return cls(dict(saved.get("released", {})), dict(saved.get("failed", {})))

    def save(self, root: Path) -> None:
        path = root / STATE / STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"released": self.released, "failed": self.failed}, indent=1), encoding="utf-8")
        os.replace(tmp, path)  # a kill between the two leaves the old state whole


def _key(job: Job) -> str:
    return f"{job.assignment}/{job.student}"


def _marker(root: Path, job: Job) -> dict | None:
    """The done marker of `job` if it is for these very files (fingerprint), else None."""
    path = _done_marker(root, job)
    if not path.exists():
        return None
    marker = json.loads(path.read_text(encoding="utf-8"))
    return marker if marker.get("fingerprint") == job.fingerprint else None


def to_grade(root: Path, jobs: list[Job], state: WatchState) -> list[Job]:
    """The jobs neither graded (no done marker for their fingerprint) nor already reported as failed."""
    return [job for job in jobs if _marker(root, job) is None and state.failed.get(_key(job)) != job.fingerprint]


def to_release(root: Path, jobs: list[Job], state: WatchState) -> list[Job]:
    """The jobs graded (a done marker for their fingerprint) whose feedback has not been released."""
    return [job for job in jobs if _marker(root, job) is not None and state.released.get(_key(job)) != job.fingerprint]


def submission_score(api, assignment: str, student: str) -> tuple[float, float]:
    """(score, max_score) of one submission, from the gradebook nbgrader's API reads."""
    from nbgrader.api import Gradebook
    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
        submission = gb.find_submission(assignment, student)
        return float(submission.score), float(submission.max_score)


def log_line(student: str, assignment: str, outcome: str, seconds: float) -> str:
    """One line of the watcher's log: time of day, student, assignment, outcome (score or reason), seconds."""
    return f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {student:12s} {assignment:14s} {outcome}  ({seconds:.1f} s)"


def release(api, root: Path, job: Job, state: WatchState) -> str:
    """Make and release the feedback of one graded submission; record it. Returns the outcome for the log."""
    for step in ("generate_feedback", "release_feedback"):
        result = getattr(api, step)(job.assignment, job.student)
        if not result.get("success"):
            if "KeyboardInterrupt" in result.get("error", ""):  # nbgrader's capture_log caught our stop
                raise KeyboardInterrupt
            last = (result.get("error") or result.get("log", "")).strip().splitlines()[-1:] or ["no reason given"]
            raise RuntimeError(f"nbgrader {step} failed: {last[0][:300]}")
    score, maximum = submission_score(api, job.assignment, job.student)
    state.released[_key(job)] = job.fingerprint
    state.failed.pop(_key(job), None)
    state.save(root)
    faults = (_marker(root, job) or {}).get("faults") or []
    reason = f"; {faults[0]}" if faults else ""
    return f"score {score:g}/{maximum:g}{reason}, feedback released"


def collecting_api(root: Path):
    """The course's NbGraderAPI with CourseDirectory.include widened to SUBMISSION_FILES, for `collect` only."""
    include = list(nbgrader_api(root).coursedir.include)
    return nbgrader_api(root, **{"CourseDirectory.include": include + [n for n in SUBMISSION_FILES if n not in include]})


def poll_once(root: Path, api, state: WatchState, settings: Watch, limits, out=sys.stdout, collector=None) -> int:
    """One look at the exchange: collect, grade what changed, release its feedback, log each submission.

    root: the course folder; api: its NbGraderAPI; state: the watcher's state (updated and saved here);
    settings: poll interval and workers; limits: the sandbox's GradingLimits; collector: the API that runs
    `collect` (default: collecting_api(root)). Returns the number of log lines.
    """
    lines = 0
    collector = collector or collecting_api(root)
    for assignment in sorted(api.get_released_assignments()):
        collected = collector.collect(assignment, update=True)
        if not collected.get("success"):
            if "KeyboardInterrupt" in collected.get("error", ""):
                raise KeyboardInterrupt
            # what was collected before is still graded below; the same failure is not repeated every poll
            reason = (collected.get("error") or collected.get("log", "")).strip().splitlines()[-1:] or ["?"]
            if state.failed.get(f"collect/{assignment}") != reason[0]:
                state.failed[f"collect/{assignment}"] = reason[0]
                state.save(root)
                print(log_line("-", assignment, f"COLLECT FAILED: {reason[0][:300]}", 0.0), file=out, flush=True)
                lines += 1
        jobs = find_jobs(root, [assignment])
        pending = to_grade(root, jobs, state)
        started = time.monotonic()
        if pending:
            # the batch's own progress lines would interleave with the log's one line per submission
            graded = grade_class([assignment], students=[job.student for job in pending], root=root, limits=limits,
                                 workers=min(settings.workers, len(pending)), out=io.StringIO())
            for job in graded:
                if job.status == "failed":
                    state.failed[_key(job)] = job.fingerprint
                    state.save(root)
                    reason = "; ".join(job.errors) or "the grader failed"
                    print(log_line(job.student, assignment, f"NOT GRADED: {reason}", time.monotonic() - started),
                          file=out, flush=True)
                    lines += 1
        for job in to_release(root, find_jobs(root, [assignment]), state):
            try:
                outcome = release(api, root, job, state)
            except Exception as exc:  # noqa: BLE001 - reported once; the watcher goes on with the others
                state.failed[_key(job)] = job.fingerprint
                state.released[_key(job)] = job.fingerprint
                state.save(root)
                outcome = f"NO FEEDBACK: {type(exc).__name__}: {exc}"
            # from noticing it to its feedback released; one graded before a restart: its grading seconds
            seconds = (time.monotonic() - started if _key(job) in {_key(p) for p in pending}
                       else (_marker(root, job) or {}).get("seconds", 0.0))
            print(log_line(job.student, assignment, outcome, seconds), file=out, flush=True)
            lines += 1
    return lines


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def watch(root: Path | None = None, *, poll_seconds: float | None = None, allow_unfenced: bool = False,
          out=sys.stdout, polls: int | None = None) -> int:
    """Run the watcher until SIGINT or SIGTERM (or `polls` looks, for a test). Returns the exit status: 0 when
    stopped, 2 where no kernel can be fenced.

    root: the course folder (default: course_root()); poll_seconds: overrides c.Watch.poll_seconds.
    """
    from .sandbox import FenceUnavailable
    root = Path(root or course_root()).resolve()
    api = nbgrader_api(root)
    settings = Watch(config=api.config)
    if poll_seconds is not None:
        settings.poll_seconds = poll_seconds
    limits = course_limits(root)
    limits.allow_unfenced = limits.allow_unfenced or allow_unfenced
    state = WatchState.load(root)
    collector = collecting_api(root)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    print(f"watching the exchange of {api.coursedir.course_id} every {settings.poll_seconds:g} s; Ctrl-C stops",
          file=out, flush=True)
    count = 0
    try:
        while polls is None or count < polls:
            with warnings.catch_warnings():
                # nbgrader's own internals warn (SQLAlchemy autoflush on a failed submission, a restored cell
                # with no id) while the grades are right; the log is one line per submission
                warnings.simplefilter("ignore")
                poll_once(root, api, state, settings, limits, out, collector)
            count += 1
            if polls is None or count < polls:
                time.sleep(settings.poll_seconds)
    except KeyboardInterrupt:
        print("stopped: start it again to pick up where it stopped", file=out, flush=True)
    except FenceUnavailable as refusal:
        print(f"./course watch: {refusal}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
