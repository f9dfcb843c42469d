"""What a student sees of a run of checks: a pass line, or each failed check with its details.

Every report has an HTML form (JupyterLab, nbgrader's feedback) and a plain-text twin (nbgrader validate,
terminals, the grader's logs). In a Jupyter kernel a failed check ends in one error line, not a traceback.
"""
from __future__ import annotations

import os
import sys
import textwrap
from dataclasses import dataclass
from html import escape

from .failures import CheckFailed, failure_text


@dataclass
class Result:
    description: str
    passed: bool
    summary: str = ""
    details: tuple = ()   # (label, text) pairs of the failure
    notes: tuple = ()     # what the check said besides its verdict (Tester.note)

    @property
    def message(self) -> str:
        return failure_text(self.summary, self.details) if not self.passed else ""


_PASS_COLOR, _FAIL_COLOR = "#1a7f37", "#cf222e"


@dataclass
class Report:
    exercise: str
    level: str
    results: list[Result]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def text(self) -> str:
        n_pass = sum(r.passed for r in self.results)
        n = len(self.results)
        mark = "✓" if self.passed else "✗"
        lines = [f"{mark} {self.exercise}: {n_pass} of {n} {self.level} checks passed"]
        for r in self.results:
            lines += [f"    ({note})" for note in r.notes]
            if r.passed:
                continue
            body = r.message.replace("\n", "\n      ")
            lines.append(f"  ✗ {r.description}\n      {body}")
        return "\n".join(lines)

    def html(self) -> str:
        """The same report for frontends that render HTML (JupyterLab, nbgrader's feedback): a pass line, or
        each failed check with its expected / got / likely cause / where to look, as a small table."""
        n_pass, n = sum(r.passed for r in self.results), len(self.results)
        color = _PASS_COLOR if self.passed else _FAIL_COLOR
        head = (f'<div style="color:{color};font-weight:600">{"✓" if self.passed else "✗"} '
                f'<code>{escape(self.exercise)}</code>: {n_pass} of {n} {self.level} checks passed</div>')
        blocks = []
        for r in self.results:
            blocks += [f'<div style="margin-left:1.4em;color:var(--jp-ui-font-color2,#57606a)">{escape(note)}</div>'
                       for note in r.notes]
            if r.passed:
                continue
            rows = "".join(f'<tr><th style="text-align:left;vertical-align:top;padding:1px 12px 1px 0;'
                           f'white-space:nowrap;font-weight:500">{escape(label)}</th><td style="text-align:left;'
                           f'padding:1px 0"><pre style="margin:0;white-space:pre-wrap;background:none">'
                           f'{escape(value)}</pre></td></tr>' for label, value in r.details)
            blocks.append(f'<div style="margin:6px 0 2px 0"><span style="color:{_FAIL_COLOR}">✗</span> '
                          f'{escape(r.description)}<div style="margin-left:1.4em"><div style="font-weight:600">'
                          f'{escape(r.summary)}</div><table style="border-collapse:collapse;margin:2px 0;'
                          f'font-size:inherit">{rows}</table></div></div>')
        border = f"border-left:3px solid {color};padding:2px 0 2px 8px"
        return f'<div class="nnfs-check" style="{border}">{head}{"".join(blocks)}</div>'


def _ipython():
    return sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()


def show(report: Report) -> None:
    """Show a report: HTML and plain text in a Jupyter kernel (the frontend picks), plain text elsewhere."""
    if _ipython() is None:
        print(report.text())
        return
    from IPython.display import display
    display({"text/plain": report.text(), "text/html": report.html()}, raw=True)


def _wrapped(text: str, width: int) -> str:
    lines = []
    for line in text.split("\n"):
        indent = " " * (len(line) - len(line.lstrip()))
        lines += textwrap.wrap(line, width, subsequent_indent=indent + "  ", break_on_hyphens=False) or [""]
    return "\n".join(lines)


def _short_error_in_ipython() -> None:
    """In a Jupyter kernel, show a failed check as one error line instead of a traceback.

    The details are already shown above it, the traceback would only repeat the test cell's code (which,
    for hidden tests, must not reach the student), and nbgrader still sees an error output and gives 0.
    Under `nbgrader validate` (and the Validate button) the error is all nbgrader shows of a failed cell,
    so there the error carries the report's text.
    """
    shell = _ipython()
    if shell is None or CheckFailed in getattr(shell, "custom_exceptions", ()):
        return

    def one_line(shell, etype, value, tb, tb_offset=None):
        if os.environ.get("NBGRADER_EXECUTION") == "validate" and getattr(value, "report", ""):
            stb = [_wrapped(value.report, width=86)]  # nbgrader's validator cuts lines at 90 columns
        else:
            stb = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
        shell._showtraceback(etype, value, stb)
        return stb

    shell.set_custom_exc((CheckFailed,), one_line)
