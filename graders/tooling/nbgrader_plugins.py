"""Small nbgrader preprocessors (and one nbconvert filter) the course plugs in through nbgrader_config.py."""
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Unicode

from ..engine.execute import clean_html, sanitized_cell

__all__ = ["ClearHiddenTracebacks", "SanitizeStudentContent", "clean_html"]


class ClearHiddenTracebacks(NbGraderPreprocessor):
    """Reduce the error output of a hidden test cell to its last line, for feedback.

    nbgrader's ClearHiddenTests removes hidden test code from a cell's source, but a Python traceback quotes
    the code of the line that failed. Run this before ClearHiddenTests, which it needs to find those cells.
    """

    begin_test_delimeter = Unicode("BEGIN HIDDEN TESTS").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and self.begin_test_delimeter in cell.source:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename')}: {output.get('evalue')}"]
        return cell, resources


class SanitizeStudentContent(NbGraderPreprocessor):
    """Make a graded notebook show nothing that runs script in a browser (formgrader, the feedback page).

    The outputs of the student's cells keep text/plain, PNG and JPEG as they are and HTML, Markdown and SVG
    sanitized (nh3); JavaScript and every other type are removed, with a text note. Markdown and raw cells are
    sanitized, attachments reduced to images, nbgrader metadata to nbgrader's own keys. The rules are those
    of `./course grade` (graders/engine/execute.py: `sanitized_cell`), which applies them itself; this brings
    them to plain `nbgrader autograde` (after Execute) and to `nbgrader generate_feedback` (before GetGrades,
    which adds the gradebook's scores and comments).
    """

    sanitize_test_cells = Bool(True, help=(
        "Sanitize the outputs of test cells too. Under plain `nbgrader autograde` the student's kernel writes "
        "them (a solution can display anything from inside a check); `./course grade` writes them itself. The "
        "course's check reports keep their look: their tags and styles are within what is allowed.")).tag(config=True)
    sanitize_markdown_cells = Bool(True, help=(
        "Sanitize the source of Markdown and raw cells (a student can write or add any). The course's own "
        "Markdown has no raw HTML and is left exactly as it is.")).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type in ("markdown", "raw") and not self.sanitize_markdown_cells:
            return cell, resources
        meta = cell.get("metadata", {}).get("nbgrader", {})
        is_test = cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")
        return sanitized_cell(cell, keep_outputs=is_test and not self.sanitize_test_cells), resources
