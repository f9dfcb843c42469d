"""Nothing a student writes or prints runs as script where a graded notebook is shown, and the import rule.

Unit tests (`unit`): the sanitizing functions of graders/engine/execute.py, one attack at a time (script tags,
event handlers, javascript: and data: URLs, SVG, JavaScript outputs, Markdown cells, frames, CSS), the
course's own notebooks and check reports passing through unchanged, nbgrader's feedback and formgrade
templates rendering a sanitized hostile notebook with no script in them; and the import rule on notebooks.

End to end (`e2e`): `./course grade` on a scratch course of 01_neuron: an honest submission, one that
imports scipy.special.expit for sigmoid, one that uses sklearn.metrics.pairwise for cosine_similarity, and
a hostile one whose cells display <script>, an <img onerror>, JavaScript, SVG and Markdown outputs and whose
Markdown cell holds a <script>. Then feedback is generated.

In a browser (`browser`, Playwright and the system's Chromium; skipped with the reason without them): the
hostile student's feedback page and formgrader's page of that submission are opened. Every payload would
set window.__pwned and fetch a loopback URL this test serves; a control page (the same outputs rendered
without any sanitizing) proves that the payloads do run when nothing stops them.
"""
from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from traitlets.config import Config, PyFileConfigLoader

from graders.checks.runner import run_exercise
from graders.engine.execute import (cell_imports, clean_html, clean_svg, course_import_violations,
                                    import_violations, markdown_problems, safe_outputs, sanitize_markdown,
                                    sanitized_cell, url_scheme)
from graders.tooling.course import ASSIGNMENTS, autograded_points, nbgrader_meta, notebook_path, read_notebook, total_points
from graders.tooling.examples import Submission, make_submission
from graders.tooling.gradebook import course_db_url
from graders.tooling.reference import reference
from tests.helpers import COURSE, copy_course

ASSIGNMENT = "01_neuron"
MARKER = "__pwned"
HIT = "http://127.0.0.1:{port}/hit/{name}"


def payload(name: str, port: int = 9) -> str:
    """JavaScript that marks the page (window.top.__pwned) and fetches the loopback server: single quotes
    only, so it fits in a double-quoted attribute."""
    return (f"(window.top.{MARKER} = window.top.{MARKER} || []).push('{name}');"
            f"new Image().src = '{HIT.format(port=port, name=name)}'")


def compact(js: str) -> str:
    """The payload with no spaces, for places a space would end it (an unquoted attribute, a Markdown URL)."""
    return js.replace("new Image", "new/**/Image").replace(" ", "")


def hostile_outputs(port: int = 9) -> list:
    """Outputs a student's code can display, each carrying a payload (and some honest content)."""
    display = lambda data, metadata=None: nbformat.v4.new_output("display_data", data=data, metadata=metadata or {})  # noqa: E731
    return [
        display({"text/html": f"<script>{payload('script', port)}</script><b>bold honest html</b>",
                 "text/plain": "<HTML>"}),
        display({"text/html": f'<img src="x" onerror="{payload("onerror", port)}">'}),
        display({"application/javascript": payload("javascript", port), "text/plain": "<Javascript>"}),
        display({"image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg" onload="{payload("svg", port)}">'
                                  f'<script>{payload("svg-script", port)}</script><circle r="5"/></svg>'}),
        display({"text/html": f'<iframe srcdoc="<script>{payload("iframe", port)}</script>"></iframe>'}),
        display({"text/html": f'<a href="javascript:{payload("link", port)}">a link</a>'
                              f'<a href="data:text/html,<script>{payload("data-link", port)}</script>">data</a>'}),
        display({"text/html": f'<div style="width:expression({payload("css", port)});color:red">styled</div>'}),
        display({"text/markdown": f"<script>{payload('markdown-output', port)}</script>*markdown output*"}),
        display({"image/png": "bm90IGEgcG5n"},  # not a PNG, so an injected onerror would fire
                {"image/png": {"width": f"1 onerror={compact(payload('width', port))}"}}),
        display({"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "a widget"}),
    ]


def hostile_markdown(port: int = 9) -> str:
    return (f"Honest markdown note.\n\n<script>{payload('markdown', port)}</script>\n\n"
            f'<img src="x" onerror="{payload("markdown-onerror", port)}">\n\n'
            f"[click](javascript:{compact(payload('markdown-link', port))})\n\n"
            f"```mermaid\n<img src=x onerror=\"{payload('mermaid', port)}\">\n```\n")


class ScriptFinder(HTMLParser):
    """Where a marker occurs in a page in a form a browser may run: in a <script>, an on* handler, a
    javascript:/data: URL, an iframe's srcdoc, or a style."""

    def __init__(self, marker: str):
        super().__init__(convert_charrefs=True)
        self.marker, self.found, self._in_script = marker, [], False

    def handle_starttag(self, tag, attrs):
        self._in_script = tag == "script"
        for name, value in attrs:
            value = value or ""
            if self.marker in value and (name.startswith("on") or name in ("srcdoc", "style")
                                         or url_scheme(value) in ("javascript", "data", "vbscript")):
                self.found.append(f"<{tag} {name}=...>")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and self.marker in data:
            self.found.append("<script>")


def runnable_markers(page: str, marker: str = MARKER) -> list[str]:
    finder = ScriptFinder(marker)
    finder.feed(page)
    return finder.found


# ---------------------------------------------------------------------------------------------- sanitizing

@pytest.mark.unit
def test_script_tags_are_removed_and_the_rest_of_the_html_is_kept():
    html = clean_html(f"<p>before</p><script>{payload('s')}</script><b>after</b><SCRIPT SRC=//x.js></SCRIPT>")
    assert "script" not in html.lower() and MARKER not in html
    assert "<p>before</p>" in html and "<b>after</b>" in html


@pytest.mark.unit
def test_event_handlers_are_removed():
    for attack in (f'<img src="x" onerror="{payload("e")}">', f'<body onload="{payload("e")}">',
                   f'<details open ontoggle="{payload("e")}">x</details>', f'<b onmouseover="{payload("e")}">x</b>'):
        html = clean_html(attack)
        assert not re.search(r"\son\w+=", html) and MARKER not in html, (attack, html)


@pytest.mark.unit
def test_javascript_urls_are_removed_however_they_are_spelled():
    for url in ("javascript:alert(1)", "  JaVaScRiPt:alert(1)", "java\tscript:alert(1)", "vbscript:x",
                "&#106;avascript:alert(1)", "jav&#x09;ascript:alert(1)"):
        html = clean_html(f'<a href="{url}">x</a>')
        assert "href" not in html, (url, html)
    assert 'href="https://numpy.org"' in clean_html('<a href="https://numpy.org">NumPy</a>')
    assert 'href="#part-2"' in clean_html('<a href="#part-2">part 2</a>')


@pytest.mark.unit
def test_data_urls_are_removed_from_links_but_kept_for_images():
    html = clean_html(f'<a href="data:text/html,<script>{payload("d")}</script>">x</a>'
                      '<a href="data:text/html;base64,PHNjcmlwdD4=">y</a>')
    assert "data:" not in html and MARKER not in html
    image = clean_html('<img src="data:image/png;base64,iVBORw0KGgo=" alt="a plot">')
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in image
    assert "src" not in clean_html('<img src="data:image/svg+xml;base64,PHN2Zz4=">')
    assert "src" not in clean_html('<img src="/api/contents">')  # nothing of the server the page is on


@pytest.mark.unit
def test_iframes_objects_forms_and_meta_refreshes_are_removed():
    for attack in (f'<iframe srcdoc="<script>{payload("i")}</script>"></iframe>', '<iframe src="https://x.org"></iframe>',
                   '<object data="x.swf"></object>', '<embed src="x.swf">', '<form action="https://x.org"><input autofocus onfocus="x"></form>',
                   '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">', '<base href="https://x.org/">',
                   '<link rel="stylesheet" href="https://x.org/x.css">', '<style>body{display:none}</style>'):
        html = clean_html(attack)
        assert not re.search(r"<(iframe|object|embed|form|input|meta|base|link|style)\b", html), (attack, html)
        assert MARKER not in html


@pytest.mark.unit
def test_styles_keep_layout_and_colour_but_nothing_that_runs_or_loads():
    kept = clean_html('<div style="color:red;font-weight:600;border-left:3px solid #cf222e">x</div>')
    assert "color:red" in kept and "border-left:3px solid #cf222e" in kept
    for attack in ("width:expression(alert(1))", "background:url(http://x.org/beacon)", "background-image:url(x)",
                   "behavior:url(x.htc)", "-moz-binding:url(x.xml#x)", "background:\\75 rl(x)", "position:fixed;top:0"):
        html = clean_html(f'<div style="color:red;{attack}">x</div>')
        assert not re.search(r"expression|url|behavior|binding|position|\\", html), (attack, html)


@pytest.mark.unit
def test_svg_outputs_keep_their_shapes_and_lose_their_scripts():
    svg = clean_svg(f'<svg xmlns="http://www.w3.org/2000/svg" onload="{payload("s")}"><script>{payload("s")}</script>'
                    f'<a href="javascript:{payload("s")}"><circle r="5" fill="red"/></a><use href="#glyph"/>'
                    '<use href="https://x.org/x.svg#a"/><image href="https://x.org/beacon.png"/>'
                    f'<foreignObject><img src="x" onerror="{payload("s")}"></foreignObject></svg>')
    assert MARKER not in svg and "onload" not in svg and "foreignObject" not in svg and "image" not in svg
    assert '<circle r="5" fill="red">' in svg and '<use href="#glyph">' in svg and "x.org" not in svg
    assert "<svg" not in clean_html('<svg onload="x"><circle r="1"/></svg>')  # SVG inside HTML goes whole


@pytest.mark.unit
def test_a_matplotlib_svg_keeps_its_drawing():
    import io
    from matplotlib.figure import Figure
    figure = Figure(figsize=(2, 2))
    figure.add_subplot().plot([0, 1], [1, 0], "o-")
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    svg = clean_svg(buffer.getvalue())
    assert svg.count("<path") >= 5 and svg.count("<use") >= 4 and 'xmlns:xlink="http://www.w3.org/1999/xlink"' in svg
    assert "&nbsp;" not in svg  # an SVG is XML: an HTML entity there would break the image


@pytest.mark.unit
def test_javascript_widget_and_other_outputs_are_removed_with_a_note():
    outputs = safe_outputs(hostile_outputs())
    text = json.dumps(outputs)
    assert MARKER not in text.replace("\\u", "")  # no payload survives anywhere in the outputs
    kinds = {mime for o in outputs for mime in o.get("data", {})}
    assert not kinds - {"text/plain", "text/html", "text/markdown", "image/svg+xml", "image/png"}, kinds
    notes = [o["data"]["text/plain"] for o in outputs if o.get("data", {}).get("text/plain", "").startswith("[the grader removed")]
    assert any("application/javascript" in n for n in notes) and any("widget-view" in n for n in notes)
    assert "<Javascript>" in text  # the object's own text is still shown
    assert {"output_type": "display_data", "metadata": {}, "data": {"text/plain": "<HTML>", "text/html": "<b>bold honest html</b>"}} in outputs
    assert all("width" not in json.dumps(o.get("metadata", {})) for o in outputs)  # nbconvert writes it unquoted


@pytest.mark.unit
def test_text_streams_and_errors_are_kept_and_stream_names_normalised():
    outputs = safe_outputs([nbformat.v4.new_output("stream", name="stdout", text="<script>x</script>\n"),
                            nbformat.v4.new_output("stream", name='"><script>', text="y"),
                            nbformat.v4.new_output("error", ename="ValueError", evalue="<b>", traceback=["ValueError: <b>"])])
    assert outputs[0].text == "<script>x</script>\n"  # text, which every frontend escapes
    assert outputs[1].name == "stdout"
    assert outputs[2].ename == "ValueError" and outputs[2].traceback == ["ValueError: <b>"]


@pytest.mark.unit
def test_a_script_in_a_markdown_cell_is_removed_and_the_text_kept():
    cell = sanitized_cell(nbformat.v4.new_markdown_cell(hostile_markdown()))
    rendered = markdown2html_mistune(cell.source)
    assert not runnable_markers(rendered), rendered
    assert "Honest markdown note." in rendered and "click" in rendered
    assert sanitize_markdown(cell.source) == cell.source  # sanitizing again changes nothing
    assert not markdown_problems(cell.source)


@pytest.mark.unit
def test_markdown_problems_name_each_way_markdown_passes_html_through():
    assert markdown_problems("<script>x</script>")[0].startswith("raw HTML")
    assert markdown_problems("a <b onclick=x>b</b>")
    assert markdown_problems("[x](javascript:alert(1))") and markdown_problems("<javascript:alert(1)>")
    assert markdown_problems("[x](jav&#x61;script:alert(1))")  # the parser decodes it, as a browser would
    assert markdown_problems("![x](attachment:missing.png)") and markdown_problems("![x](/files/x.png)")
    assert not markdown_problems("![x](attachment:plot.png)", frozenset({"plot.png"}))
    assert markdown_problems("```mermaid\ngraph TD\n```")
    assert not markdown_problems("# Title\n\n`<script>` in code, $x<y$, **bold**, [NumPy](https://numpy.org)\n\n"
                                 "    <script>indented code</script>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")


@pytest.mark.unit
def test_markdown_attachments_keep_images_only_and_a_missing_one_does_not_break_rendering():
    cell = nbformat.v4.new_markdown_cell("![plot](attachment:plot.png) ![page](attachment:page.html)")
    cell.attachments = {"plot.png": {"image/png": "iVBORw0KGgo="}, "page.html": {"text/html": "<script>x</script>"}}
    safe = sanitized_cell(cell)
    assert set(safe.attachments) == {"plot.png"}
    exporter = HTMLExporter(config=course_exporter_config())
    # nbconvert raises on an image whose attachment is missing: the cell is shown as its text instead
    rendered = exporter.from_notebook_node(nbformat.v4.new_notebook(cells=[safe]))[0]
    assert "![page](attachment:page.html)" in rendered
    cell.source = "![plot](attachment:plot.png)"
    rendered = exporter.from_notebook_node(nbformat.v4.new_notebook(cells=[sanitized_cell(cell)]))[0]
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in rendered


@pytest.mark.unit
def test_the_course_notebooks_markdown_is_left_exactly_as_it_is():
    for assignment in ASSIGNMENTS:
        for kind in ("source", "release"):
            for cell in read_notebook(notebook_path(assignment, kind)).cells:
                if cell.cell_type == "markdown":
                    assert sanitize_markdown(cell.source) == cell.source, (assignment, kind, cell.source[:80])


@pytest.mark.unit
def test_the_course_check_reports_keep_their_tags_and_colours():
    namespace = reference(ASSIGNMENT)
    exec("def sigmoid_grad(z):\n    return sigmoid(z) * (1 - z)\n", namespace)
    for report in (run_exercise("sigmoid_grad", namespace, "visible"), run_exercise("sigmoid", namespace, "visible")):
        html = report.html()
        cleaned = clean_html(html)
        tags = lambda text: sorted(re.findall(r"<(\w+)", text))  # noqa: E731
        assert tags(cleaned) == sorted(tags(html) + ["tbody"] * html.count("<table")), (html, cleaned)
        assert cleaned.count("style=") == html.count("style=")
        for color in re.findall(r"color:(#[0-9a-f]{6})", html):
            assert color in cleaned


@pytest.mark.unit
def test_nbgrader_metadata_keeps_only_nbgraders_keys_and_plain_grade_ids():
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["nbgrader"] = {"grade_id": "sol_x", "solution": True, "grade": False, "locked": False,
                                 "schema_version": 3, "comment": "<script>x</script>", "score": "<b>"}
    assert sanitized_cell(cell).metadata["nbgrader"] == {"grade_id": "sol_x", "solution": True, "grade": False,
                                                         "locked": False, "schema_version": 3}
    cell.metadata["nbgrader"]["grade_id"] = f'x"><img src=x onerror="{payload("id")}">'
    assert "nbgrader" not in sanitized_cell(cell).metadata  # formgrader writes grade_id into the page as is


@pytest.mark.unit
def test_the_grader_s_own_test_cell_outputs_are_kept_as_they_are():
    cell = nbformat.v4.new_code_cell('from graders import check\ncheck("sigmoid")')
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": "<div style='background:url(x)'>r</div>"})]
    assert sanitized_cell(cell, keep_outputs=True).outputs == cell.outputs
    assert sanitized_cell(cell).outputs[0].data["text/html"] == "<div>r</div>"


def course_exporter_config(**extra) -> Config:
    """The HTMLExporter settings of the course's nbgrader_config.py (what feedback and formgrader use)."""
    saved = dict(os.environ)  # the config file sets defaults in the environment of the process reading it
    try:
        config = PyFileConfigLoader("nbgrader_config.py", path=str(COURSE)).load_config()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    exporter = Config({"HTMLExporter": {"sanitize_html": config.HTMLExporter.sanitize_html,
                                        "filters": dict(config.HTMLExporter.filters), **extra}})
    return exporter


def hostile_graded_notebook(port: int = 9):
    """01's source notebook with hostile cells added, as the kernel would have left it (outputs unsanitized)."""
    nb = read_notebook(notebook_path(ASSIGNMENT, "source"))
    code = nbformat.v4.new_code_cell("display(...)")
    code.outputs = hostile_outputs(port)
    nb.cells[1:1] = [code, nbformat.v4.new_markdown_cell(hostile_markdown(port))]
    return nb


@pytest.mark.unit
@pytest.mark.parametrize("template", ["feedback", "formgrade"])
def test_nbgraders_templates_render_a_sanitized_hostile_notebook_with_no_script(template):
    """nbgrader's two pages of a graded notebook, rendered as nbgrader renders them (its template, the course's
    exporter settings): nothing of a payload is left where a browser runs it. Without the sanitizing in the
    notebook, Markdown cells (nbgrader's templates skip nbconvert's filter there) and image sizes leak."""
    from nbgrader.server_extensions.formgrader import handlers
    bootstrap = Path(handlers.static_path) / "node_modules" / "bootstrap" / "dist" / "css"  # as nbgrader sets it
    config = course_exporter_config(template_name=template, extra_template_basedirs=[handlers.template_path],
                                    extra_template_paths=[str(bootstrap)])
    resources = {"resources": {"base_url": "", "index": 0, "total": 1, "notebook_id": "neuron",
                               "nbgrader": {"notebook": "neuron", "score": 53, "max_score": 53,
                                            "late_penalty": 0}}}
    raw = hostile_graded_notebook()
    safe = nbformat.v4.new_notebook(cells=[sanitized_cell(c) for c in raw.cells], metadata=raw.metadata)
    for cell in [*raw.cells, *safe.cells]:  # what nbgrader's GetGrades adds (after sanitizing) for the page
        if nbgrader_meta(cell).get("grade"):
            cell.metadata.nbgrader["score"] = cell.metadata.nbgrader["points"]
    page = HTMLExporter(config=config).from_notebook_node(safe, resources=resources["resources"])[0]
    assert not runnable_markers(page), runnable_markers(page)
    assert "bold honest html" in page and "Honest markdown note." in page
    unsafe = HTMLExporter(config=config).from_notebook_node(raw, resources=resources["resources"])[0]
    assert runnable_markers(unsafe), "the payloads would not have run anyway: the test proves nothing"


@pytest.mark.unit
def test_the_notebook_an_unreadable_submission_is_graded_as_quotes_no_runnable_html():
    from graders.engine.classgrade import _unreadable_notebook
    from graders.engine.steps import unreadable_reason
    try:
        nbformat.reads(f"<img src=x onerror=\"{MARKER}=1\">", as_version=4)  # nbformat quotes the first bytes
    except Exception as exc:  # noqa: BLE001 - nbformat's NotJSONError, as the grader reports it
        reason = unreadable_reason(exc)
    nb = _unreadable_notebook(ASSIGNMENT, reason)
    rendered = "".join(markdown2html_mistune(c.source) for c in nb.cells if c.cell_type == "markdown")
    assert not runnable_markers(rendered), runnable_markers(rendered)


# ------------------------------------------------------------------------------------------- import rule

#: Where scipy or scikit-learn is not installed (the course installs neither), the same function in NumPy, so
#: that on any machine the points lost are the import rule's alone.
SCIPY_SIGMOID = ("try:\n    from scipy.special import expit\nexcept ImportError:\n"
                 "    def expit(z):\n        e = np.exp(-np.abs(z))\n"
                 "        return np.where(z >= 0, 1 / (1 + e), e / (1 + e))\n\n"
                 "def sigmoid(z):\n    return expit(z)\n")
SKLEARN_COSINE = ("try:\n    from sklearn.metrics.pairwise import cosine_similarity as pairwise_cosine\n"
                  "except ImportError:\n"
                  "    def pairwise_cosine(a, b):\n"
                  "        na, nb = np.linalg.norm(a), np.linalg.norm(b)\n"
                  "        return np.array([[0.0 if na == 0 or nb == 0 else float((a @ b.T)[0, 0]) / (na * nb)]])\n\n"
                  "def cosine_similarity(u, v):\n"
                  "    return float(pairwise_cosine(np.atleast_2d(u), np.atleast_2d(v))[0, 0])\n")


@pytest.mark.unit
def test_cell_imports_finds_static_and_dynamic_imports():
    uses = cell_imports("import scipy.special as sp, os\nfrom sklearn.metrics import pairwise\n"
                        "def f():\n    import torch\n    m = __import__('jax')\n"
                        "lib = importlib.import_module('sklearn.svm')\nx = __import__(name)\n%timeit f()\n")
    assert sorted((u.module, tuple(u.names)) for u in uses) == sorted([
        ("scipy.special", ("sp",)), ("os", ("os",)), ("sklearn.metrics", ("pairwise",)), ("torch", ("torch",)),
        ("jax", ("m",)), ("sklearn.svm", ("lib",)), ("(computed)", ("x",))])
    assert cell_imports("def broken(:\n") == []


def _with_cell(nb, source: str, after_tag: str = "setup"):
    index = next(i for i, c in enumerate(nb.cells) if after_tag in c.metadata.get("tags", []))
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb


@pytest.mark.unit
def test_the_import_rule_fails_exactly_the_exercises_whose_cell_imports_a_forbidden_module():
    nb = make_submission(ASSIGNMENT, Submission(replace={"sigmoid": SCIPY_SIGMOID, "cosine_similarity": SKLEARN_COSINE}))
    violations = course_import_violations(nb)
    assert set(violations) == {"sigmoid", "cosine_similarity"}
    assert "from scipy.special import expit" in violations["sigmoid"] and "'scipy.special'" in violations["sigmoid"]
    assert "'sklearn.metrics.pairwise'" in violations["cosine_similarity"]
    assert "NumPy, matplotlib and the standard library" in violations["sigmoid"]


@pytest.mark.unit
def test_the_import_rule_follows_names_imported_in_another_cell_and_dynamic_imports():
    nb = _with_cell(make_submission(ASSIGNMENT, Submission(replace={
        "sigmoid": "def sigmoid(z):\n    return sp.expit(z)\n",
        "relu": "def relu(z):\n    return __import__('torch').relu(z)\n"})), "import scipy.special as sp")
    assert set(course_import_violations(nb)) == {"sigmoid", "relu", "relu_grad"}  # sol_relu defines both
    nb = _with_cell(make_submission(ASSIGNMENT, Submission()), "from scipy.special import expit as sigmoid")
    assert set(course_import_violations(nb)) == {"sigmoid"}  # a cell of its own that defines the exercise


@pytest.mark.unit
def test_honest_notebooks_break_no_import_rule():
    for assignment in ASSIGNMENTS:
        assert course_import_violations(read_notebook(notebook_path(assignment, "source"))) == {}, assignment
        assert course_import_violations(make_submission(assignment, Submission())) == {}, assignment


@pytest.mark.unit
def test_what_the_given_cells_import_is_allowed_but_not_what_a_student_adds_to_them():
    given = [nbformat.v4.new_code_cell("import numpy as np\nimport sklearn")]
    test = nbformat.v4.new_code_cell('from graders import check\ncheck("f")')
    test.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "test_f_visible"}
    solution = nbformat.v4.new_code_cell("import sklearn\ndef f():\n    return sklearn")
    solution.metadata["nbgrader"] = {"grade": False, "solution": True, "grade_id": "sol_f"}
    from graders.engine.execute import ALLOWED_MODULES, given_imports
    allowed = ALLOWED_MODULES | given_imports(given)
    assert import_violations([*given, solution, test], given_sources={given[0].source}, allowed=allowed) == {}
    assert "f" in import_violations([*given, solution, test])
    changed = nbformat.v4.new_code_cell("import numpy as np\nimport sklearn, scipy as f")
    assert "f" in import_violations([changed, test], given_sources={given[0].source}, allowed=allowed)


# ------------------------------------------------------------------------------- ./course grade, end to end

STUDENTS = {
    "honest": (Submission(), None, 53),
    "scipy_sigmoid": (Submission(replace={"sigmoid": SCIPY_SIGMOID}), None, 53 - 4),
    "sklearn_cosine": (Submission(replace={"cosine_similarity": SKLEARN_COSINE}), None, 53 - 3),
    "hostile_html": (Submission(), "hostile", 53),
}


def hostile_cells(port: int) -> list:
    """Cells a student adds after the setup cell: each displays a payload; some honest output too."""
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" onload="{payload("svg", port)}"><circle r="5"/></svg>'
    width = {"image/png": {"width": "1 onerror=" + compact(payload("width", port))}}
    displays = [
        f"HTML({'<script>' + payload('script', port) + '</script><b>bold honest html</b>'!r})",
        f"HTML({'<img src=x onerror=' + chr(34) + payload('onerror', port) + chr(34) + '>'!r})",
        f"Javascript({payload('javascript', port)!r})",
        f"SVG({svg!r})",
        f"Markdown({'<script>' + payload('markdown-output', port) + '</script>*markdown output*'!r})",
        f"{{'image/png': 'bm90IGEgcG5n'}}, raw=True, metadata={width!r}",  # not a PNG: an onerror would fire
    ]
    return [nbformat.v4.new_code_cell("from IPython.display import HTML, SVG, Javascript, Markdown, display"),
            *(nbformat.v4.new_code_cell(f"display({shown})") for shown in displays),
            nbformat.v4.new_markdown_cell(hostile_markdown(port)),
            nbformat.v4.new_code_cell("print('HONEST-OUTPUT-42')")]


class HitCounter(http.server.BaseHTTPRequestHandler):
    """The loopback server a payload would call: it records every request path."""
    hits: list = []

    def do_GET(self):  # noqa: N802 - the handler API's name
        type(self).hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def hit_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HitCounter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], HitCounter.hits
    finally:
        server.shutdown()
        server.server_close()


def course_env(course: Path) -> dict:
    env = dict(os.environ, NNFS_COURSE_ROOT=str(course), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    env.pop("MPLBACKEND", None)  # grading kernels use the inline backend, as in JupyterLab
    return env


def run_in(course: Path, *command: str, timeout: int = 900) -> str:
    run = subprocess.run([sys.executable, "-m", *command], cwd=course, env=course_env(course), capture_output=True,
                         text=True, timeout=timeout)
    assert run.returncode == 0, f"{' '.join(command)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run.stdout


@pytest.fixture(scope="module")
def graded(tmp_path_factory, hit_server):
    """A scratch course (as tests/test_demo.py makes one) with the STUDENTS' submissions of 01, graded by
    `./course grade`, and their feedback generated by `nbgrader generate_feedback`."""
    port, _ = hit_server
    course = tmp_path_factory.mktemp("html-safety")
    copy_course(course, ("nbgrader_config.py", "source", "release", "examples"))
    run_in(course, "graders", "build", ASSIGNMENT)
    os.environ["NNFS_COURSE_ROOT"] = str(course)  # make_submission reads the scratch course's release
    try:
        for student, (submission, extra, _) in STUDENTS.items():
            nb = make_submission(ASSIGNMENT, submission)
            if extra == "hostile":
                setup = next(i for i, c in enumerate(nb.cells) if "setup" in c.metadata.get("tags", []))
                nb.cells[setup + 1:setup + 1] = hostile_cells(port)
            path = course / "submitted" / student / ASSIGNMENT / "neuron.ipynb"
            path.parent.mkdir(parents=True)
            nbformat.write(nb, str(path))
    finally:
        os.environ.pop("NNFS_COURSE_ROOT", None)
    grade_log = run_in(course, "graders", "grade", ASSIGNMENT)
    run_in(course, "nbgrader", "generate_feedback", ASSIGNMENT, "--force", timeout=600)
    return course, grade_log


def autograded(course: Path, student: str):
    return nbformat.read(str(course / "autograded" / student / ASSIGNMENT / "neuron.ipynb"), as_version=4)


@pytest.mark.e2e
@pytest.mark.slow
def test_each_submission_loses_exactly_the_exercises_that_import_what_the_course_forbids(graded):
    """The functions work (with scipy and scikit-learn, or the NumPy fallback where they are not installed): the
    points lost are the import rule's, and nothing else of the notebook suffers from it."""
    from graders.tooling.gradebook import exercise_scores, totals
    course, log = graded
    rows = exercise_scores(course_db_url(course), "nn-from-scratch", [ASSIGNMENT])
    scores = totals(rows)
    for student, (_, _, expected) in STUDENTS.items():
        assert scores[(ASSIGNMENT, student)] == expected, (student, log)
    by_exercise = {(r.student, r.exercise): (r.score, r.max_score) for r in rows}
    assert by_exercise[("scipy_sigmoid", "sigmoid")][0] == 0 and by_exercise[("sklearn_cosine", "cosine_similarity")][0] == 0
    for student, exercise, module in (("scipy_sigmoid", "sigmoid", "'scipy.special'"),
                                      ("sklearn_cosine", "cosine_similarity", "'sklearn.metrics.pairwise'")):
        nb = autograded(course, student)
        errors = {nbgrader_meta(c)["grade_id"]: o for c in nb.cells for o in c.get("outputs", [])
                  if o.get("output_type") == "error" and nbgrader_meta(c).get("grade_id")}
        assert set(errors) == {f"test_{exercise}_visible", f"test_{exercise}_hidden"}, student
        for error in errors.values():
            assert error.ename == "ImportNotAllowed" and module in error.evalue and "NumPy" in error.evalue
    assert "sigmoid: an import the course does not allow" in log


@pytest.mark.e2e
@pytest.mark.slow
def test_the_graded_notebook_and_feedback_of_a_hostile_submission_hold_no_runnable_script(graded):
    course, _ = graded
    nb = autograded(course, "hostile_html")
    mimes = {m for c in nb.cells for o in c.get("outputs", []) for m in o.get("data", {})}
    assert "application/javascript" not in mimes
    outputs = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "<script" not in outputs and "onerror" not in outputs and "onload" not in outputs
    assert "HONEST-OUTPUT-42" in outputs and "bold honest html" in outputs
    for html_file in (course / "feedback" / "hostile_html").rglob("*.html"):
        page = html_file.read_text()
        assert not runnable_markers(page), (html_file, runnable_markers(page))
        assert "HONEST-OUTPUT-42" in page and "Honest markdown note." in page
        # every autograded point; the written answer waits for a TA
        assert f"neuron (Score: {autograded_points(ASSIGNMENT):.1f} / {total_points(ASSIGNMENT):.1f})" in page


@pytest.mark.e2e
@pytest.mark.slow
def test_plain_nbgrader_autograde_sanitizes_with_the_course_config_too(graded, tmp_path):
    """Without `./course grade`: nbgrader's own Execute runs the test cells in the student's kernel, and the
    course's SanitizeStudentContent (nbgrader_config.py) cleans the notebook right after."""
    course, _ = graded
    copy = tmp_path / "course"
    shutil.copytree(course, copy, ignore=shutil.ignore_patterns(".grading", "autograded", "feedback"))
    run_in(copy, "nbgrader", "autograde", ASSIGNMENT, "--student", "hostile_html", "--force")
    nb = autograded(copy, "hostile_html")
    mimes = {m for c in nb.cells for o in c.get("outputs", []) for m in o.get("data", {})}
    assert not mimes - {"text/plain", "text/html", "text/markdown", "image/svg+xml", "image/png"}, mimes
    outputs = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "<script" not in outputs and "onerror" not in outputs and "onload" not in outputs
    assert "HONEST-OUTPUT-42" in outputs and "bold honest html" in outputs and "nnfs-check" in outputs
    markdown = "".join(markdown2html_mistune(c.source) for c in nb.cells if c.cell_type == "markdown")
    assert not runnable_markers(markdown) and "Honest markdown note." in markdown


# ------------------------------------------------------------------------------------------------ browser

def _why_no_browser() -> str | None:
    from tests.browser import why_no_browser
    return why_no_browser()


MISSING_BROWSER = _why_no_browser()
#: What the hostile submission shows honestly: its own outputs, Markdown, and the grader's pass lines.
HONEST_PARTS = ("HONEST-OUTPUT-42", "bold honest html", "Honest markdown note.", "markdown output",
                re.compile(r"✓ sigmoid: \d+ of \d+ hidden checks passed"))
browser_test = [pytest.mark.browser, pytest.mark.slow,
                pytest.mark.skipif(MISSING_BROWSER is not None, reason=str(MISSING_BROWSER))]


def mark(*marks):
    def decorate(test):
        for one in marks:
            test = one(test)
        return test
    return decorate


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright
    from tests.browser import CHROMIUM_ARGS, chromium_path
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def new_page(browser):
    from tests.browser import VIEWPORT
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


#: Screenshots of the pages the browser tests open, for a person to look at (CI keeps test-artifacts/).
SHOTS = COURSE / "test-artifacts" / "html-safety"


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def pwned(page) -> list:
    """Every frame's window.__pwned (a payload that ran pushed its name there)."""
    return [name for frame in page.frames for name in (frame.evaluate(f"() => window.{MARKER} || []") or [])]


@mark(*browser_test)
def test_control_the_payloads_run_in_chromium_when_nothing_sanitizes_them(chromium, hit_server, tmp_path):
    """The same outputs, rendered with no sanitizing at all: the payloads do run, and the loopback server
    and the page marker do see them. Without this, the two tests below could pass with broken payloads."""
    port, hits = hit_server
    page_file = tmp_path / "control.html"
    config = Config({"HTMLExporter": {"template_name": "classic"}})
    page_file.write_text(HTMLExporter(config=config).from_notebook_node(hostile_graded_notebook(port))[0])
    page = new_page(chromium)
    before = len(hits)
    try:
        page.goto(page_file.as_uri(), wait_until="load")
        page.wait_for_function(f"() => (window.{MARKER} || []).length >= 4", timeout=20_000)
        ran = set(pwned(page))
    finally:
        page.context.close()
    assert {"script", "onerror", "markdown", "markdown-onerror"} <= ran, ran
    page_hits = hits[before:]
    assert any(hit.startswith("/hit/script") for hit in page_hits), page_hits


@mark(*browser_test)
def test_the_feedback_page_runs_no_student_script_and_shows_the_honest_parts(chromium, graded, hit_server):
    course, _ = graded
    port, hits = hit_server
    before = len(hits)
    page = new_page(chromium)
    try:
        page.goto((course / "feedback" / "hostile_html" / ASSIGNMENT / "neuron.html").as_uri(), wait_until="load")
        body = page.locator("body")
        for text in HONEST_PARTS:
            body.get_by_text(text).first.wait_for(state="attached")
        page.wait_for_timeout(1500)  # a late payload (an image's onerror, a fetch) has had its time
        page.get_by_text("bold honest html").first.scroll_into_view_if_needed()
        shoot(page, "feedback-hostile")
        assert pwned(page) == []
    finally:
        page.context.close()
    assert hits[before:] == []


@mark(*browser_test)
def test_formgrader_shows_the_hostile_submission_without_running_its_script(chromium, graded, hit_server,
                                                                            tmp_path_factory):
    """Formgrader as the instructor opens it (JupyterLab, Nbgrader > Formgrader, in its tab), then the
    submission's page in that tab, as "Manual Grading" links to it."""
    from nbgrader.api import Gradebook
    from playwright.sync_api import expect
    from tests.browser import JupyterServer
    course, _ = graded
    port, hits = hit_server
    with Gradebook(course_db_url(course)) as gradebook:
        submission_id = gradebook.find_submission_notebook("neuron", ASSIGNMENT, "hostile_html").id
    server = JupyterServer("lab", course, tmp_path_factory.mktemp("jupyter-safety"))
    server.start()
    page = new_page(chromium)
    before = len(hits)
    try:
        server.wait_until_ready()
        page.goto(server.url("/lab/workspaces/safety"))
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Nbgrader$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Formgrader$")).click()
        frame = page.frame_locator(".jp-MainAreaWidget iframe[src*='formgrader']")
        expect(frame.locator("#main-table td", has_text=re.compile(f"^{ASSIGNMENT}$"))).to_be_visible()
        formgrader = next(f for f in page.frames if "/formgrader" in f.url)
        formgrader.goto(f"http://127.0.0.1:{server.port}/formgrader/submissions/{submission_id}/")
        notebook = frame.locator("#notebook")
        for text in HONEST_PARTS:
            expect(notebook.get_by_text(text).first).to_be_attached()
        page.wait_for_timeout(1500)
        notebook.get_by_text("bold honest html").first.scroll_into_view_if_needed()
        shoot(page, "formgrader-hostile")
        assert pwned(page) == []
    finally:
        page.context.close()
        server.stop()
    assert hits[before:] == []
