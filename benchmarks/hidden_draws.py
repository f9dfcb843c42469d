"""Does any verdict depend on the hidden inputs' draw? Grades every catalog entry (tests/catalog/) in-process with
the hidden checks' fixed seeds and with K random grading secrets, and prints each entry whose verdict changes:
a Wrong entry that escapes under some draw, or a Right entry that fails under one.

    .venv/bin/python benchmarks/hidden_draws.py [K] [ASSIGNMENT ...]      (K = 3 by default; every assignment)

Training checks have time budgets: run it on an idle machine, or read their lines as timing, not draws.
"""
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from graders.checks.registry import exercises  # noqa: E402
from graders.checks.runner import run_exercise  # noqa: E402
from graders.hidden import LiveExpected  # noqa: E402
from tests.catalog import catalogs  # noqa: E402
from tests.helpers import COURSE, _environment, namespace_with  # noqa: E402


def hidden_verdicts(exercise: str, namespace: dict, expected, draws: list) -> list[bool]:
    """Whether `exercise`'s hidden checks pass on `namespace`, once per draw (None: the fixed seeds)."""
    return [run_exercise(exercise, namespace, "hidden", expected=expected, secret=draw,
                         show_hidden_expected=False).passed for draw in draws]


def main(k: int, only: list[str]) -> None:
    draws = [None] + [secrets.token_bytes(32) for _ in range(k)]
    for catalog in catalogs():
        assignment = catalog.ASSIGNMENT
        if only and assignment not in only:
            continue
        expected = LiveExpected(assignment)
        for wrong in catalog.WRONG:
            namespace = namespace_with(assignment, wrong.code)
            with _environment(NNFS_CHECK_DATA=str(COURSE / "release" / assignment)):
                if not run_exercise(wrong.exercise, namespace, "visible").passed:
                    continue  # caught whatever the draw
            verdicts = hidden_verdicts(wrong.exercise, namespace, expected, draws)
            if len(set(verdicts)) > 1 or all(verdicts):
                print("WRONG", assignment, wrong.exercise, wrong.mistake, verdicts, flush=True)
        for right in catalog.CORRECT:
            namespace = namespace_with(assignment, right.code)
            for exercise in exercises(assignment):
                verdicts = hidden_verdicts(exercise, namespace, expected, draws[1:])
                if not all(verdicts):
                    print("RIGHT", assignment, right.name, exercise, verdicts, flush=True)
        print("done", assignment, flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3, sys.argv[2:])
