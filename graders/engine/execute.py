"""Run one sanitized submission in a sandboxed kernel and decide its test cells outside the kernel.

Ordinary code cells run in the kernel. A test cell is never run there: its checks run here, in the grader's
process, and reach the student's functions only through `RemoteNamespace` (values in, plain arrays out).
The cell's outputs are then written by the grader: the report, and a CheckFailed error when a check failed,
so nbgrader's own rule (`determine_grade`) scores it exactly as the verdict says.

A cell that times out, runs out of memory, prints without end or kills its kernel gets an error output
saying so; the kernel is restarted, the cells that ran before are run again, and grading goes on.

What the student wrote or printed is shown later in a browser (formgrader, from the instructor's logged-in
Jupyter server, and the feedback page), so none of it may run script there: the outputs of the student's
cells keep only text and pixels, with HTML, Markdown and SVG sanitized by nh3 (`safe_outputs`), and the
Markdown cells are sanitized the same way (`sanitize_markdown`). The test cells' outputs are the grader's own.

The course allows NumPy, matplotlib and the standard library: an exercise whose definition imports anything
else (read with `ast` before the notebook runs, `import_violations`) is not checked and earns no points.
"""
from __future__ import annotations

import ast
import copy
import functools
import html
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import nh3
from IPython.core.inputtransformer2 import TransformerManager
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

from ..tooling.course import exercise_of, nbgrader_meta, notebook_path, read_notebook
from ..checks.registry import assignment_of
from ..checks.runner import run_exercise
from ..hidden import LiveExpected, honest_time
from .remote import KERNEL_DIED, RemoteError, RemoteNamespace
from .sandbox import GradingLimits, KernelSession, format_seconds

_TEST_CELL = re.compile(r'^from graders import check\n(?:#.*\n)*(?:### BEGIN HIDDEN TESTS\n)?'
                        r'check\("(?P<exercise>\w+)"(?P<hidden>, hidden=True)?\)\n?(?:### END HIDDEN TESTS\n?)?$')


def parse_test_cell(source: str) -> tuple[str, str] | None:
    """(exercise, level) of a course test cell, or None if the cell is not one."""
    # comment lines go, including nbgrader's "# This cell ... was added back by nbgrader." on a restored cell
    body = "\n".join(line for line in source.strip().split("\n") if line.strip() and not line.startswith("# ")) + "\n"
    match = _TEST_CELL.match(body)
    return (match["exercise"], "hidden" if match["hidden"] else "visible") if match else None


def _error(ename: str, message: str):
    return nbformat.v4.new_output("error", ename=ename, evalue=message,
                                  traceback=[f"\x1b[0;31m{ename}\x1b[0m: {message}"])


# -- what a student's cells may show in a browser -------------------------------------------------------------
#: Output mime types of a student's cell kept as they are: text and pixels, which no browser runs.
PLAIN_MIME_TYPES = ("text/plain", "image/png", "image/jpeg")
#: Kept once sanitized (`clean_html`, `sanitize_markdown`, `clean_svg`). Every other type is removed.
SANITIZED_MIME_TYPES = ("text/html", "text/markdown", "image/svg+xml")
#: Images a Markdown cell may carry as attachments (rendered as data: URLs of these types).
ATTACHMENT_MIME_TYPES = ("image/png", "image/jpeg", "image/gif")

#: nh3's own allowlist, without image maps (their areas are links) and `cite` (a URL no one checks).
_HTML_TAGS = frozenset(nh3.ALLOWED_TAGS - {"area", "map"})
_HTML_ATTRIBUTES = {**{tag: set(names) - {"cite"} for tag, names in nh3.ALLOWED_ATTRIBUTES.items()},
                    "*": {"class", "title", "style", "lang", "dir"}}
#: CSS properties a style attribute keeps: layout and colour (`background` only with no URL in it, below).
_STYLE_PROPERTIES = frozenset({
    "color", "background", "background-color", "font-weight", "font-style", "font-size", "font-family", "text-align",
    "vertical-align", "text-decoration", "white-space", "border-collapse", "border-radius", "width", "height",
    "max-width", "min-width", *(f"{box}{side}" for box in ("margin", "padding") for side in
                                 ("", "-left", "-right", "-top", "-bottom")),
    *(f"border{side}{part}" for side in ("", "-left", "-right", "-top", "-bottom") for part in
      ("", "-color", "-style", "-width"))})
#: A style value with one of these is dropped whole: loads (url, src, image-set), old IE script (expression,
#: behavior, -moz-binding), and CSS escapes, which could spell any of them.
_STYLE_DENIED = re.compile(r"url\s*\(|src\s*\(|image(?:-set)?\s*\(|element\s*\(|expression|behavior|binding|"
                           r"@import|\\", re.IGNORECASE)
_DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*\Z", re.IGNORECASE)
_SVG_TAGS = frozenset({
    "svg", "g", "defs", "symbol", "use", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon",
    "text", "tspan", "title", "desc", "clipPath", "mask", "marker", "pattern", "linearGradient",
    "radialGradient", "stop"})
_SVG_ATTRIBUTES = frozenset({
    "id", "class", "style", "href", "xmlns", "version", "width", "height", "viewBox", "preserveAspectRatio",
    "transform", "d", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "dx", "dy", "points",
    "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-linecap", "stroke-linejoin",
    "stroke-dasharray", "stroke-dashoffset", "stroke-miterlimit", "stroke-opacity", "opacity", "clip-path",
    "clip-rule", "clipPathUnits", "mask", "marker-start", "marker-mid", "marker-end", "markerWidth",
    "markerHeight", "refX", "refY", "orient", "offset", "stop-color", "stop-opacity", "gradientUnits",
    "gradientTransform", "patternUnits", "font-family", "font-size", "font-weight", "font-style",
    "text-anchor", "dominant-baseline"})
_SVG_STYLE_PROPERTIES = frozenset({
    "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-linecap", "stroke-linejoin",
    "stroke-dasharray", "stroke-dashoffset", "stroke-miterlimit", "stroke-opacity", "opacity", "font-family",
    "font-size", "font-weight", "font-style", "text-anchor", "dominant-baseline", "color", "stop-color",
    "stop-opacity"})


def url_scheme(url: str) -> str | None:
    """The scheme of `url` as a browser reads it (lower case), or None for a relative URL.

    Browsers ignore control characters and spaces in a scheme ("java\\tscript:" is javascript:), so they
    are dropped before reading it; a URL that only becomes one by dropping them is judged by its worst reading.
    """
    match = re.match(r"([a-z][a-z0-9+.\-]*):", re.sub(r"[\x00-\x20\x7f]", "", url), re.IGNORECASE)
    return match[1].lower() if match else None


def _safe_attribute(tag: str, name: str, value: str) -> str | None:
    """nh3's attribute_filter: links go to the web or mail, images are pixels, styles load nothing."""
    if name == "href":
        return value if url_scheme(value) in ("http", "https", "mailto", None) else None
    if name == "src":
        return value if url_scheme(value) in ("http", "https") or _DATA_IMAGE.match(value.strip()) else None
    if name == "style" and _STYLE_DENIED.search(value):
        return None
    if name == "class":  # mermaid.js (nbconvert's lab template, JupyterLab) renders what class="mermaid" holds
        return " ".join(c for c in value.split() if "mermaid" not in c.lower()) or None
    return value


def clean_html(fragment: str) -> str:
    """`fragment` (HTML a student's code or Markdown produced) with nothing a browser runs or loads by itself:
    no script, style sheets, event handlers, frames, forms or objects, no javascript: or data: links, images
    only from the web or as data:image/png|jpeg|gif|webp, inline styles only of layout and colour properties.
    Also nbconvert's `clean_html` filter when feedback is rendered (nbgrader_config.py)."""
    return nh3.clean(str(fragment), tags=set(_HTML_TAGS), clean_content_tags={"script", "style"},
                     attributes=_HTML_ATTRIBUTES, attribute_filter=_safe_attribute,
                     url_schemes={"http", "https", "mailto", "data"},
                     filter_style_properties=set(_STYLE_PROPERTIES), strip_comments=True)


def _safe_svg_attribute(tag: str, name: str, value: str) -> str | None:
    # an SVG may point only inside itself: href="#glyph", clip-path="url(#clip)"
    if name == "href":
        return value if value.strip().startswith("#") else None
    if name == "style":
        return None if _STYLE_DENIED.search(value) else value
    if "url(" in value.replace(" ", "").lower() and not re.fullmatch(r"\s*url\(\s*#[\w.:\-]*\s*\)\s*", value):
        return None
    return value


def clean_svg(svg: str) -> str:
    """`svg` (an image/svg+xml output) with shapes, text, gradients and internal references only: no script,
    event handlers, foreignObject, external images or links."""
    cleaned = nh3.clean(str(svg), tags=set(_SVG_TAGS), clean_content_tags={"script", "style"},
                        attributes={"*": set(_SVG_ATTRIBUTES)}, attribute_filter=_safe_svg_attribute,
                        set_tag_attribute_values={"svg": {"xmlns:xlink": "http://www.w3.org/1999/xlink"}},
                        filter_style_properties=set(_SVG_STYLE_PROPERTIES), url_schemes=set(),
                        strip_comments=True)
    return cleaned.replace("&nbsp;", "&#160;")  # an SVG is XML, which has no &nbsp;


def _without_blank_lines(text: str) -> str:
    """`text` with each whitespace-only line's newline written as &#10;: the same HTML, but one block that
    Markdown passes through whole (a blank line would end the block and read the rest as Markdown)."""
    return re.sub(r"(?m)^([ \t]*)\n", r"\1&#10;", text)


def _markdown_tokens(tokens):
    for token in tokens:
        yield token
        yield from _markdown_tokens(token.get("children") or ())


def markdown_problems(source: str, images: frozenset = frozenset()) -> tuple[str, ...]:
    """What in Markdown `source` could reach a browser as script, read with the parser nbconvert renders it
    with (its text is escaped; these are the parts passed through as they are):
    raw HTML that sanitizing would change, links other than http(s)/mailto/relative, images other than
    http(s) or one of the cell's attachments (`images`: their names), and mermaid blocks.
    """
    if len(source) <= _REMEMBERED_MARKDOWN_CHARS:  # a class hands in the course's own cells again and again
        return _remembered_markdown_problems(source, images)
    return _markdown_problems(source, images)


_REMEMBERED_MARKDOWN_CHARS = 20_000


def _markdown_problems(source: str, images: frozenset) -> tuple[str, ...]:
    problems = []
    for token in _markdown_tokens(MarkdownWithMath(renderer=None)(source)):
        kind, attrs = token["type"], token.get("attrs") or {}
        if kind in ("block_html", "inline_html"):
            raw = token["raw"].strip()
            if _without_blank_lines(clean_html(raw)) != raw:
                problems.append(f"raw HTML {raw[:60]!r}")
        elif kind == "link" and url_scheme(attrs.get("url", "")) not in ("http", "https", "mailto", None):
            problems.append(f"a link to {attrs.get('url', '')[:60]!r}")
        elif kind == "image":
            url = attrs.get("url", "")
            if not (url_scheme(url) in ("http", "https")
                    or (url.startswith("attachment:") and url[len("attachment:"):] in images)):
                problems.append(f"an image from {url[:60]!r}")
        elif kind == "block_code" and "mermaid" in (attrs.get("info") or ""):
            problems.append("a mermaid block (nbconvert passes it through unescaped)")
    return tuple(problems)


_remembered_markdown_problems = functools.lru_cache(maxsize=2048)(_markdown_problems)


def safe_attachments(attachments: dict | None) -> dict:
    """The image parts of a Markdown cell's attachments (name -> {mime type: base64})."""
    kept = {}
    for name, bundle in (attachments or {}).items():
        images = {mime: data for mime, data in bundle.items()
                  if mime in ATTACHMENT_MIME_TYPES and isinstance(data, str)}
        if images:
            kept[name] = images
    return kept


def sanitize_markdown(source: str, attachments: dict | None = None) -> str:
    """Markdown `source` that renders to nothing a browser runs: as it is when `markdown_problems` finds
    nothing (always so for the course's own cells), else the HTML nbconvert renders it to, sanitized by
    `clean_html`, as one HTML block (so it looks the same, and sanitizing it again changes nothing).

    attachments: the cell's attachments, already through `safe_attachments`.
    """
    attachments = attachments or {}
    if not markdown_problems(source, frozenset(attachments)):
        return source
    try:
        rendered = MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=attachments)).render(source)
    except Exception:  # noqa: BLE001 - e.g. InvalidNotebook (a missing attachment): show the text instead
        rendered = f"<pre>{html.escape(source)}</pre>"
    return f"<div>{_without_blank_lines(clean_html(rendered).strip())}</div>"


def _removed_note(mime_types: list[str]):
    return nbformat.v4.new_output("display_data", data={"text/plain": (
        f"[the grader removed an output of type {', '.join(mime_types)}:\n"
        " it could run script in the browser that shows this notebook; text, images and sanitized HTML are kept]")})


def _safe_image_metadata(metadata: dict, kept: dict) -> dict:
    """Only a kept image's width and height, as numbers: nbconvert writes them into the <img> tag unquoted."""
    safe = {}
    for mime in kept:
        entry = metadata.get(mime) if isinstance(metadata, dict) else None
        if not isinstance(entry, dict):
            continue
        size = {key: int(entry[key]) for key in ("width", "height")
                if isinstance(entry.get(key), (int, float)) and not isinstance(entry.get(key), bool)
                and 0 < entry[key] < 100_000}
        if size:
            safe[mime] = size
    return safe


def safe_output(output) -> list:
    """One output of a student's cell as it may be shown: [] to many outputs (a note replaces what was removed).

    Streams and errors are text (nbconvert and JupyterLab escape them). Of rich outputs, text/plain and
    PNG/JPEG images stay as they are, HTML, Markdown and SVG are sanitized, everything else (JavaScript,
    widgets, JSON, LaTeX, PDF, custom types) is removed and a text note says so.
    """
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
        return [nbformat.v4.new_output("stream", name=name, text=str(output.get("text", "")))]
    if kind == "error":
        return [nbformat.v4.new_output("error", ename=str(output.get("ename", "")), evalue=str(output.get("evalue", "")),
                                       traceback=[str(line) for line in output.get("traceback", [])])]
    if kind not in ("display_data", "execute_result"):
        return [_removed_note([f"{kind} output"])]
    kept, removed = {}, []
    for mime, value in (output.get("data") or {}).items():
        if not isinstance(value, str):
            removed.append(mime)
        elif mime in PLAIN_MIME_TYPES:
            kept[mime] = value
        elif mime == "text/html":
            kept[mime] = clean_html(value)
        elif mime == "text/markdown":
            kept[mime] = sanitize_markdown(value)
        elif mime == "image/svg+xml":
            kept[mime] = clean_svg(value)
        else:
            removed.append(mime)
    safe = []
    if kept:
        metadata = _safe_image_metadata(output.get("metadata") or {}, kept)
        if kind == "execute_result":
            safe.append(nbformat.v4.new_output(kind, data=kept, metadata=metadata,
                                               execution_count=output.get("execution_count")))
        else:
            safe.append(nbformat.v4.new_output(kind, data=kept, metadata=metadata))
    if removed:
        safe.append(_removed_note(removed))
    return safe


def safe_outputs(outputs: list) -> list:
    """The outputs of a student's cell, as they may be shown in a browser (see `safe_output`)."""
    return [safe for output in outputs for safe in safe_output(output)]


#: nbgrader's own metadata keys (schema 3); anything else a student put there (a "comment", a "score") goes.
_NBGRADER_KEYS = frozenset({"grade", "grade_id", "locked", "points", "schema_version", "solution", "task",
                            "cell_type", "checksum"})


def safe_nbgrader_metadata(meta: dict) -> dict | None:
    """A cell's nbgrader metadata with only nbgrader's keys, or None when its grade_id is not a plain name:
    nbgrader's feedback and formgrade templates write grade_id (and a comment) into the page unescaped, and
    every grade_id the gradebook knows is a plain name."""
    if "grade_id" in meta and not re.fullmatch(r"[A-Za-z0-9_\-]+", str(meta["grade_id"])):
        return None
    return {key: value for key, value in meta.items() if key in _NBGRADER_KEYS}


def sanitized_cell(cell, *, keep_outputs: bool = False):
    """A copy of `cell` that shows nothing a browser runs: Markdown (and raw) source sanitized, attachments
    reduced to images, outputs through `safe_outputs` unless `keep_outputs` (the grader's own test cells),
    nbgrader metadata through `safe_nbgrader_metadata`."""
    cell = copy.deepcopy(cell)
    meta = cell.get("metadata", {})
    if "nbgrader" in meta:
        nbgrader = safe_nbgrader_metadata(meta["nbgrader"]) if isinstance(meta["nbgrader"], dict) else None
        if nbgrader is None:
            del meta["nbgrader"]
        else:
            meta["nbgrader"] = nbgrader
    if cell.cell_type in ("markdown", "raw") and "attachments" in cell:
        cell.attachments = safe_attachments(cell.attachments)
        if not cell.attachments:
            del cell["attachments"]
    if cell.cell_type == "markdown":
        cell.source = sanitize_markdown(cell.source, cell.get("attachments"))
    elif cell.cell_type == "raw":
        # nbconvert's HTML export shows a raw cell without a format, or of an HTML or Markdown one, as HTML
        if str(meta.get("raw_mimetype", meta.get("format", ""))).lower() in ("", "text/html", "text/markdown"):
            cleaned = clean_html(cell.source)
            if cleaned != cell.source:
                cell.source = cleaned
    elif cell.cell_type == "code" and not keep_outputs:
        cell.outputs = safe_outputs(cell.get("outputs", []))
    return cell


# -- the import rule ----------------------------------------------------------------------------------------
#: Top-level modules any cell may import: the course is written in NumPy (matplotlib for its figures).
ALLOWED_MODULES = frozenset({"numpy", "matplotlib"}) | frozenset(sys.stdlib_module_names)
COURSE_RULE = ("the course allows NumPy, matplotlib and the standard library (and what the given cells "
               "import): each exercise is written in NumPy, from first principles")


@dataclass(frozen=True)
class ImportUse:
    """One import in a cell. module: the dotted name as written ("scipy.special"; "(computed)" when the
    name is built at run time); names: what it binds in the namespace ("*" for a star import); line: its code."""
    module: str
    names: frozenset
    line: str


def _python_of_cell(source: str) -> str:
    # IPython syntax (%magics, !shell) in the form Python parses
    return TransformerManager().transform_cell(source)


def _dynamic_import(node) -> str | None:
    """The module a call imports (`__import__("m")`, `importlib.import_module("m")`), "(computed)" when its
    name is not a literal, None when the call is not an import."""
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name not in ("__import__", "import_module"):
        return None
    first = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else "(computed)"


def cell_imports(source: str) -> list[ImportUse]:
    """Every import in a cell's code, at any depth (inside functions too), static or by a call with the
    module's name. A cell that does not parse has none (it fails when it runs)."""
    try:
        tree = ast.parse(_python_of_cell(source))
    except (SyntaxError, ValueError):
        return []
    lines = source.split("\n")
    bound_by_call = {}
    for node in ast.walk(tree):  # `sp = importlib.import_module("scipy")` binds sp
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound_by_call[id(node.value)] = frozenset(t.id for t in targets if isinstance(t, ast.Name))
    uses = []
    for node in ast.walk(tree):
        line = lines[node.lineno - 1].strip() if hasattr(node, "lineno") and node.lineno <= len(lines) else ""
        if isinstance(node, ast.Import):
            uses += [ImportUse(alias.name, frozenset({alias.asname or alias.name.split(".")[0]}), line)
                     for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            uses.append(ImportUse(module, frozenset(a.asname or a.name for a in node.names), line))
        elif isinstance(node, ast.Call):
            module = _dynamic_import(node)
            if module is not None:
                uses.append(ImportUse(module, bound_by_call.get(id(node), frozenset()), line))
    return uses


def module_allowed(module: str, allowed: frozenset = ALLOWED_MODULES) -> bool:
    """Whether importing `module` (a dotted name) keeps to the course's rule, given the top-level names allowed."""
    return not module.startswith(".") and module != "(computed)" and module.split(".")[0] in allowed


def _defined_names(source: str) -> tuple[frozenset, frozenset]:
    """(names a cell binds at its top level, names it reads anywhere)."""
    try:
        tree = ast.parse(_python_of_cell(source))
    except (SyntaxError, ValueError):
        return frozenset(), frozenset()
    defined = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {a.asname or a.name.split(".")[0] for a in node.names}
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return frozenset(defined), frozenset(read)


def given_imports(cells) -> frozenset:
    """Top-level modules the given cells (neither solution nor test) of a source notebook import."""
    modules = set()
    for cell in cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and not meta.get("solution") and not meta.get("grade"):
            modules |= {use.module.split(".")[0] for use in cell_imports(cell.source) if not use.module.startswith(".")}
    return frozenset(modules)


def import_violations(cells, *, given_sources=frozenset(), allowed: frozenset = ALLOWED_MODULES) -> dict[str, str]:
    """Exercise -> why it is not checked, for the exercises of a submission that break the import rule.

    cells: the submission's cells. given_sources: the sources of the given cells of the assignment's own
    notebook (those cells, unchanged, are the course's; `allowed` should include what they import).
    A solution cell, or any other cell the student wrote, that imports a module outside `allowed` fails the
    exercises it defines (the functions, or other names, it binds that have test cells); a cell that only
    reads a name such an import bound elsewhere (`import scipy.special as sp` in a cell of its own) fails
    the exercises it defines too, and a star import taints every cell the student wrote.
    """
    tested = {exercise_of(nbgrader_meta(c).get("grade_id", "")) for c in cells
              if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")} - {None}
    written = [c for c in cells if c.cell_type == "code" and not
               (nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution"))
               and (nbgrader_meta(c).get("solution") or c.source.strip() not in given_sources)]
    tainted: dict[str, ImportUse] = {}  # name bound by a forbidden import -> that import
    direct: list[tuple[object, ImportUse]] = []
    for cell in written:
        for use in cell_imports(cell.source):
            if not module_allowed(use.module, allowed):
                direct.append((cell, use))
                # an exercise's own name is judged as that exercise (by the cell that defines it), so that a
                # function calling it keeps its points, as when the forbidden import is inside its cell
                tainted.update({name: use for name in use.names - tested})
    violations: dict[str, str] = {}
    for cell in written:
        defines, reads = _defined_names(cell.source)
        exercises = sorted(defines & tested)
        if not exercises:
            continue
        use = next((u for c, u in direct if c is cell), None)
        how = "imports"
        if use is None:
            name = next((n for n in sorted(reads) if n in tainted), None) or ("*" if "*" in tainted else None)
            if name is None:
                continue
            use, how = tainted[name], "uses what another cell imports with"
        module = "a module named at run time" if use.module == "(computed)" else repr(use.module)
        for exercise in exercises:
            violations.setdefault(exercise, (
                f"{exercise} was not checked and earns no points: the cell that defines it {how} `{use.line}`, "
                f"and importing {module} is not allowed ({COURSE_RULE})."))
    return violations


@dataclass
class ExecutionSummary:
    faults: list[str] = field(default_factory=list)   # what went wrong in the student's kernel, for the log
    grader_errors: list[str] = field(default_factory=list)  # bugs of ours: these make the command fail
    seconds: float = 0.0
    slowest_cell_seconds: float = 0.0  # the slowest code cell the kernel ran (test cells run here, not there)
    cell_limit: float = 0.0      # the limits this notebook ran under (GradingLimits.fitted)
    notebook_limit: float = 0.0


def execute_notebook(nb, workdir: Path, *, limits: GradingLimits | None = None,
                     hide: tuple = ()) -> ExecutionSummary:
    """Execute `nb` (already sanitized by nbgrader) in place, with `workdir` as the kernel's working copy.

    Time: a code cell may run the assignment's fitted cell limit and the notebook its fitted notebook limit
    (GradingLimits.fitted); a cell that overruns is interrupted, and once the notebook's time is up the cells
    left are not run. A check's call of a student function has a budget of its own (GradingLimits.call_seconds);
    the seconds of a call that overran it, and of restarting a kernel that ignored the interrupt, are not
    counted against the notebook, since that check fails for it already; a cell other than a solution cell
    that uses a function that overran in its checks is not run (it would only time out again).

    Order: every cell in order, except the test cells of hidden checks, which are graded last (in order), so
    that no cell of the student's runs after their functions have seen hidden inputs; they keep at least half
    of the notebook's limit.
    """
    started = time.monotonic()
    limits = limits or GradingLimits()
    summary = ExecutionSummary()
    assignment = _assignment_of(nb)
    cell_limit, notebook_limit = limits.fitted(honest_time(assignment) if assignment else None)
    summary.cell_limit, summary.notebook_limit = cell_limit, notebook_limit
    violations = course_import_violations(nb)
    summary.faults += [f"{exercise}: an import the course does not allow" for exercise in sorted(violations)]
    session = KernelSession(workdir, limits=limits, hide=hide)
    session.notebook_deadline = started + notebook_limit
    stuck: dict[str, dict] = {}  # exercise -> its functions that overran (see RemoteFunction)
    replayable: list[tuple[str, bool]] = []  # (source, whether a solution cell) of the cells that ran ok
    exercises = frozenset(parsed[0] for cell in nb.cells
                          if _is_test_cell(cell) and (parsed := parse_test_cell(cell.source)))
    gave_up = None
    hidden_cells: list[int] = []  # graded after every other cell (see `_is_hidden_test_cell`)

    time_up = None

    def out_of_time(cell) -> bool:
        nonlocal time_up
        if not (gave_up or time_up) and time.monotonic() >= session.notebook_deadline:
            time_up = (f"the notebook ran out of its {format_seconds(notebook_limit)} s time limit before this "
                       "cell; cells that had run keep their credit.")
            summary.faults.append("notebook time limit")
        if gave_up or time_up:
            cell.outputs = [_error("NotRun", gave_up or time_up)]
        return bool(gave_up or time_up)

    def grade(index: int) -> None:
        nonlocal gave_up
        _grade_test_cell(nb.cells[index], session, summary, violations, stuck)
        if not session.alive():  # a call ignored its interrupt: its check failed already, so the restart is free
            summary.faults.append(f"cell {index}: kernel restarted")
            before = time.monotonic()
            later = [nb.cells[i] for i in hidden_cells if i > index] + nb.cells[index + 1:]
            needed = _needed(replayable, later, exercises, frozenset().union(*stuck.values()))
            gave_up = _restart_and_replay(session, needed, limits, cell_limit)
            session.notebook_deadline += time.monotonic() - before

    try:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            meta = nbgrader_meta(cell)
            cell.outputs = []
            if _is_hidden_test_cell(cell):
                hidden_cells.append(index)
                continue
            if out_of_time(cell):
                continue
            if meta.get("grade") and not meta.get("solution"):
                grade(index)
                continue
            calls_stuck = sorted(_defined_names(cell.source)[1] & set().union(*stuck.values()))
            if calls_stuck and not meta.get("solution"):
                # it would only wait out its time limit in the same loop; a cell of this kind earns nothing itself
                cell.outputs = [_error("NotRun", (
                    f"this cell was not run: it uses `{calls_stuck[0]}`, which did not return within its time limit "
                    "in the checks above (see their message), so it would only have timed out here too."))]
                summary.faults.append(f"cell {index}: not run, it uses {calls_stuck[0]}")
                continue
            cell_started = time.monotonic()
            timeout = min(cell_limit, session.notebook_deadline - cell_started)
            status, outputs = session.run(cell.source, timeout=timeout)
            summary.slowest_cell_seconds = max(summary.slowest_cell_seconds, time.monotonic() - cell_started)
            cell.outputs = outputs
            if any(o.get("ename") == "OutputLimitExceeded" for o in outputs):
                status = "output-limit"
            elif any(o.get("ename") == "MemoryError" for o in outputs):
                status = "memory"  # what it allocated may still be held: start afresh
            if status in ("ok", "error"):
                if status == "ok":
                    replayable.append((cell.source, bool(meta.get("solution"))))
                continue
            summary.faults.append(f"cell {index}: {status}")
            if status == "timeout" and timeout < cell_limit:
                cell.outputs.append(_error("NotebookTimeout", (
                    f"this cell was stopped after {format_seconds(timeout)} s, when the notebook's "
                    f"{format_seconds(notebook_limit)} s time limit ran out; cells that had run keep their credit.")))
            else:
                cell.outputs.append(_error(*_fault_message(status, limits, cell_limit)))
            grace = limits.interrupt_grace_seconds
            if not (status not in ("died", "memory") and session.alive() and session.settle(grace + 2)):
                summary.faults.append(f"cell {index}: kernel restarted")
                needed = _needed(replayable, nb.cells[index + 1:], exercises, frozenset().union(*stuck.values()))
                gave_up = _restart_and_replay(session, needed, limits, cell_limit)
        # the hidden checks keep at least half the notebook's limit whatever the student's cells took: slow cells
        # must not cost every hidden point at once (they come last)
        session.notebook_deadline = max(session.notebook_deadline, time.monotonic() + notebook_limit / 2)
        time_up = None
        for index in hidden_cells:
            if not out_of_time(nb.cells[index]):
                grade(index)
    finally:
        session.close()
    # the test cells' outputs are the grader's own; everything else came from the student
    nb.cells = [sanitized_cell(cell, keep_outputs=_is_test_cell(cell)) for cell in nb.cells]
    summary.seconds = time.monotonic() - started
    return summary


def _needed(replayable: list[tuple[str, bool]], later_cells, exercises: frozenset,
            stuck: frozenset = frozenset()) -> list[str]:
    """Of the cells that ran ok, those a restarted kernel needs again, in order: every solution cell, and each
    other cell that binds a name that a later cell, a cell kept here, or a test cell (`exercises`) reads.
    A demo cell whose results nothing reads (a plot, a training run shown) is not run again: it earns nothing,
    and it is most of the time a replay takes.

    Inputs:
      replayable: [(source, is a solution cell)] of the cells that ran ok. later_cells: the notebook's cells
      after the one that needed the restart. exercises: the names the notebook's test cells check. stuck: the
      functions that overran in their checks (a later cell, not a solution cell, that uses one is not run).
    Returns:
      the sources to run again.
    """
    wanted = set(exercises)
    for cell in later_cells:
        if cell.cell_type == "code" and not _is_test_cell(cell):
            reads = _defined_names(cell.source)[1]
            if nbgrader_meta(cell).get("solution") or not reads & stuck:
                wanted |= reads
    kept = []
    for source, solution in reversed(replayable):
        defines, reads = _defined_names(source)
        if solution or defines & wanted:
            kept.append(source)
            wanted |= reads
    return kept[::-1]


def _assignment_of(nb) -> str | None:
    """The assignment whose exercises the notebook's test cells check (the first one's), or None."""
    for cell in nb.cells:
        parsed = parse_test_cell(cell.source) if _is_test_cell(cell) else None
        if parsed:
            try:
                return assignment_of(parsed[0])
            except KeyError:
                return None
    return None


def _is_hidden_test_cell(cell) -> bool:
    """Whether `cell` is a course test cell of hidden checks. These are graded after every other cell of the
    notebook has run, so that no cell of the student's runs after a function of theirs has seen hidden inputs:
    a later cell cannot print what the hidden checks asked into the graded notebook."""
    parsed = _is_test_cell(cell) and parse_test_cell(cell.source)
    return bool(parsed) and parsed[1] == "hidden"


def _is_test_cell(cell) -> bool:
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def course_import_violations(nb) -> dict[str, str]:
    """`import_violations` of a submission, with the given cells of its assignment's source notebook (the
    assignment is the one its test cells check; none found, or no source: only ALLOWED_MODULES)."""
    exercises = [parsed[0] for cell in nb.cells if _is_test_cell(cell) and (parsed := parse_test_cell(cell.source))]
    try:
        source = read_notebook(notebook_path(assignment_of(exercises[0]), "source"))
    except (IndexError, KeyError, OSError, RuntimeError):
        return import_violations(nb.cells)
    given = [cell for cell in source.cells if cell.cell_type == "code" and not nbgrader_meta(cell).get("solution")
             and not nbgrader_meta(cell).get("grade")]
    return import_violations(nb.cells, given_sources=frozenset(cell.source.strip() for cell in given),
                             allowed=ALLOWED_MODULES | given_imports(given))


def _fault_message(status: str, limits: GradingLimits, cell_limit: float | None = None) -> tuple[str, str]:
    if status == "timeout":
        seconds = limits.cell_seconds if cell_limit is None else cell_limit
        return "CellTimeout", (f"this cell did not finish within {format_seconds(seconds)} s (an infinite loop? a long "
                               "sleep?); it was stopped and grading went on.")
    if status == "died":
        return KERNEL_DIED, ("the kernel died while running this cell (os._exit, a crash, or more than "
                             f"{limits.memory_bytes / 2**30:g} GiB of memory); it was restarted, the cells "
                             "before this one were run again, and grading went on.")
    if status == "memory":
        return "MemoryLimit", (f"this cell ran out of memory (the cap is {limits.memory_bytes / 2**30:g} GiB); the "
                               "kernel was restarted, the cells before this one were run again, and grading went on.")
    return "OutputLimit", f"this cell printed more than {limits.output_bytes // 2**20} MiB; the output was cut."


def _restart_and_replay(session: KernelSession, replayable: list[str], limits: GradingLimits,
                        cell_limit: float | None = None) -> str | None:
    """Restart the kernel and re-run the cells that had run (each within cell_limit, by default
    limits.cell_seconds); a reason to stop if that fails."""
    try:
        session.restart()
        for source in replayable:
            status, _ = session.run(source, timeout=limits.cell_seconds if cell_limit is None else cell_limit,
                                    keep_outputs=False)
            if status not in ("ok", "error"):
                return "the kernel could not be brought back after it died, so this cell could not run."
    except RemoteError:
        return "the kernel could not be restarted after it died, so this cell could not run."
    return None


def _grade_test_cell(cell, session: KernelSession, summary: ExecutionSummary, violations: dict,
                     stuck: dict | None = None) -> None:
    parsed = parse_test_cell(cell.source)
    if parsed is None:
        cell.outputs = [_error("UnknownTestCell", "this test cell is not one the course's grader knows; no points.")]
        summary.grader_errors.append(f"unknown test cell {nbgrader_meta(cell).get('grade_id')}")
        return
    exercise, level = parsed
    if exercise in violations:
        cell.outputs = [_error("ImportNotAllowed", violations[exercise])]
        return
    try:
        namespace = RemoteNamespace(session, None if stuck is None else stuck.setdefault(exercise, {}))
        report = run_exercise(exercise, namespace, level,
                              expected=LiveExpected(assignment_of(exercise)),
                              secret=session.limits.run_secret or None,
                              show_hidden_expected=session.limits.show_hidden_expected)
    except Exception as exc:  # noqa: BLE001 - a bug in a check: no points, and the command reports it
        cell.outputs = [_error("GraderError", f"the check itself failed ({type(exc).__name__}: {exc}); "
                                              "tell your instructor.")]
        summary.grader_errors.append(f"{exercise} {level}: {type(exc).__name__}: {exc}")
        return
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": report.text(), "text/html": report.html()})]
    if not report.passed:
        failed = sum(not r.passed for r in report.results)
        cell.outputs.append(_error("CheckFailed", f"{exercise}: {failed} {level} check(s) failed, details above."))


def execute_file(source_path: str, output_path: str, *, limits: GradingLimits | None = None,
                 hide: tuple = ()) -> ExecutionSummary:
    """Read a sanitized notebook, execute it in a sandbox, write the result atomically."""
    nb = nbformat.read(source_path, as_version=4)
    summary = execute_notebook(nb, Path(source_path).parent, limits=limits, hide=hide)
    tmp = output_path + ".tmp"
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    nbformat.write(nb, tmp)
    os.replace(tmp, output_path)
    return summary
