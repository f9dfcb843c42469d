"""What a failed check is, and the words a student reads for it.

A check raises `Failure` with a one-line summary and the details a student needs at midnight: the inputs,
what was expected, what came back, the likely cause and where to look. `failure_text` renders it; the faults
of a grading kernel (a timeout, a dead kernel) are named here once, with what they usually mean.
"""
from __future__ import annotations


class CheckFailed(AssertionError):
    """Raised by a test cell when a check fails; nbgrader then gives the cell no points."""


class Failure(Exception):
    """One check failed. The fields become the message a student reads."""

    def __init__(self, summary: str, *, expected: str | None = None, got: str | None = None,
                 cause: str | None = None, hint: str | None = None, inputs: str | None = None,
                 raised_at: str | None = None):
        super().__init__(summary)
        self.summary, self.expected, self.got = summary, expected, got
        self.cause, self.hint, self.inputs, self.raised_at = cause, hint, inputs, raised_at

    def details(self) -> list[tuple[str, str]]:
        """(label, text) pairs in reading order, the empty ones left out."""
        return [(label, str(value)) for label, value in (
            ("inputs", self.inputs), ("raised at", self.raised_at), ("expected", self.expected), ("got", self.got),
            ("likely cause", self.cause), ("where to look", self.hint)) if value]

    def text(self) -> str:
        return failure_text(self.summary, self.details())


class NotWritten(Failure):
    """The student's function still raises NotImplementedError."""


def failure_text(summary: str, details) -> str:
    """A failure as plain text: the summary, then one aligned `label: text` line per detail.

    Inputs:
      summary: str, one sentence.
      details: iterable of (label, text) pairs.
    Returns:
      text: str, several lines.
    """
    lines = [summary]
    for label, value in details:
        lines.append(f"{label + ':':15s}" + value.replace("\n", "\n" + " " * 15))
    return "\n".join(lines)


#: Faults of a grading kernel (not exceptions of the student's code), with what they usually mean. The engine
#: raises a StudentError whose type_name is one of these; nothing else names them.
GRADING_FAULTS = {
    "Timeout": "an infinite loop, or far more work than the exercise needs.",
    "KernelDied": "the kernel died: os._exit, a crash, or the memory cap (an allocation that never stops).",
    "OutputTooLarge": "the function returned far more data than the exercise asks for.",
    "NoAnswer": "the kernel did not answer the grader.",
    "ProtocolError": "the kernel's answer could not be read.",
}
