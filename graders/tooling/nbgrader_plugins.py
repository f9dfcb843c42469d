"""Small nbgrader preprocessors the course plugs in through nbgrader_config.py."""
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode


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
