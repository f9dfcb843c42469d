"""The student's side as a student gets it: the wheel `nnfs-checks` and the bundle of an assignment.

A bundle unpacked into an empty folder, its wheel pip-installed into a fresh venv, runs its release notebook in
that venv's kernel: unwritten exercises say "not written yet", the reference answers pass, a catalog mistake
gets its diagnosis. And nothing a student receives carries solution code, hidden check code or the names of
hidden checks and generators.
"""
from __future__ import annotations

import ast
import base64
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from graders.tooling.bundle import bundle_name, write_bundles
from graders.tooling.course import (
    ASSIGNMENTS,
    course_root,
    nbgrader_meta,
    notebook_path,
    read_notebook,
)
from graders.tooling.examples import Submission, make_submission
from graders.tooling.student_package import (
    StudentPackageError,
    build_student_wheel,
    check_student_files,
    instructor_imports,
)
from graders.tooling.project import project_table
from tests.catalog import neuron as neuron_catalog

COURSE = course_root()
ASSIGNMENT = "01_neuron"
KERNEL = "nnfs-student"
SLIP = next(w for w in neuron_catalog.WRONG if w.mistake == "sigmoid(z) * (1 - z)")
#: Variables of the course's own environment that must not reach the student's venv or kernel.
COURSE_VARIABLES = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONWARNINGS", "MPLBACKEND",
                    "NNFS_COURSE_ROOT", "NNFS_CHECK_DATA", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR")
#: Run last in the student's kernel: where `graders` comes from, and that no instructor part is importable.
PROBE = ("import sys, importlib.util, graders\n"
         "print(sys.prefix)\nprint(graders.__file__)\n"
         "print([importlib.util.find_spec(f'graders.{p}') is None for p in ('hidden', 'engine', 'tooling')])")


# -- helpers ---------------------------------------------------------------------------------------------------

def is_test_cell(cell) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


def is_visible_test(cell) -> bool:
    return is_test_cell(cell) and nbgrader_meta(cell).get("grade_id", "").endswith("_visible")


def errors(cell) -> list:
    return [o for o in cell.outputs if o.output_type == "error"]


def plain_text(cell) -> str:
    """Everything a code cell showed, as plain text."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("display_data", "execute_result"):
            parts.append(output.data.get("text/plain", ""))
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
    return "\n".join(parts)


def run_in_kernel(nb, folder: Path):
    """Execute `nb` in the student's kernel with `folder` as its working folder; every cell runs, as with Run All
    past failed checks. Returns the executed notebook."""
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    NotebookClient(nb, timeout=180, kernel_name=KERNEL, allow_errors=True,
                   extra_arguments=["--IPKernelApp.log_level=ERROR"],
                   resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def check_common(nb, venv: Path) -> None:
    """What every run must show: every cell ran, nothing on stderr, and `graders` is the venv's, student side only."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "a cell did not run"
    for cell in code:
        stderr = [o for o in cell.outputs if o.get("name") == "stderr"]
        assert not stderr, f"{cell.source[:60]!r} wrote to stderr: {stderr[0].text[:300]}"
    prefix, graders_file, absent = plain_text(code[-1]).strip().splitlines()
    assert Path(prefix).resolve() == venv.resolve(), f"the kernel is not the student's venv: {prefix}"
    assert Path(graders_file).resolve().is_relative_to(venv.resolve()), graders_file
    assert absent == "[True, True, True]", f"instructor-only parts importable in the student's kernel: {absent}"


def by_grade_id(nb) -> dict:
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if nbgrader_meta(c).get("grade_id")}


def student_environment() -> dict:
    return {name: value for name, value in os.environ.items() if name not in COURSE_VARIABLES}


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


# -- the student's install -------------------------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.slow
def test_a_bundle_installs_in_a_fresh_venv_and_its_notebook_runs_there(tmp_path, monkeypatch):
    [bundle] = write_bundles([ASSIGNMENT], tmp_path / "bundles")
    student = tmp_path / "student"
    student.mkdir()
    assert not any(student.iterdir())
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(student)
    [wheel] = student.glob("nnfs_checks-*-py3-none-any.whl")
    release = notebook_path(ASSIGNMENT, "release")
    folder = student / ASSIGNMENT
    assert (folder / release.name).read_bytes() == release.read_bytes(), "the bundle's notebook is not the release"
    assert (student / "README.md").is_file()

    for name in COURSE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    venv = student / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=student_environment(), timeout=300)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    python = venv / "bin" / "python"
    start = time.perf_counter()
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
                              wheel.name], check=False, cwd=student, env=student_environment(), capture_output=True,
                             text=True, timeout=1200)
    install_seconds = time.perf_counter() - start
    assert install.returncode == 0, install.stdout + install.stderr
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = Path(subprocess.run([str(python), "-c", purelib], check=True, capture_output=True,
                                        text=True).stdout.strip())
    largest = sorted(((folder_size(p), p.name) for p in site_packages.iterdir() if p.is_dir()), reverse=True)[:6]
    print(f"\nwheel {wheel.stat().st_size / 1024:.1f} KiB, bundle {bundle.stat().st_size / 1024:.1f} KiB, "
          f"pip install {install_seconds:.1f} s, installed {folder_size(site_packages) / 2**20:.1f} MiB "
          f"(site-packages of the fresh venv; graders/ {folder_size(site_packages / 'graders') / 1024:.0f} KiB "
          "with its bytecode); largest: " + ", ".join(f"{name} {size / 2**20:.0f} MiB" for size, name in largest))

    kernels = tmp_path / "jupyter" / "kernels" / KERNEL
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "nnfs student venv", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))

    # An untouched release: each visible test cell says its function is not written yet, nothing else raises.
    nb = run_in_kernel(nbformat.read(str(folder / release.name), as_version=4), folder)
    check_common(nb, venv)
    visible = [c for c in nb.cells if is_visible_test(c)]
    assert visible
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if is_visible_test(cell):
            assert [e.ename for e in errors(cell)] == ["CheckFailed"], plain_text(cell)
            assert "not written yet" in plain_text(cell) and "NotImplementedError" in plain_text(cell), plain_text(cell)
        else:
            assert not errors(cell), f"{cell.source[:60]!r} raised {errors(cell)[0].ename} in a fresh release"

    # The reference answers pasted in: every visible test cell passes.
    nb = run_in_kernel(make_submission(ASSIGNMENT, Submission(fill="all")), folder)
    check_common(nb, venv)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not errors(cell), f"{cell.source[:60]!r}: {plain_text(cell)[:500]}"
    for cell in (c for c in nb.cells if is_visible_test(c)):
        assert plain_text(cell).startswith("✓ "), plain_text(cell)

    # A catalog mistake: its visible check names it.
    nb = run_in_kernel(make_submission(ASSIGNMENT, Submission(fill="all", replace={SLIP.exercise: SLIP.code})), folder)
    check_common(nb, venv)
    cell = by_grade_id(nb)[f"test_{SLIP.exercise}_visible"]
    assert [e.ename for e in errors(cell)] == ["CheckFailed"]
    assert re.search(SLIP.expect, plain_text(cell)), plain_text(cell)
    failed = [nbgrader_meta(c)["grade_id"] for c in nb.cells if c.cell_type == "code" and errors(c)]
    assert failed == [f"test_{SLIP.exercise}_visible"], failed


# -- what the student side contains ----------------------------------------------------------------------------

def _json_strings(value):
    """Every string in a parsed JSON document (keys too), unescaped."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


def texts_of(where: str, data: bytes):
    """(where, text) for a file and, for a zip (a wheel, an .npz), for every file inside it. A JSON file
    (.json, .ipynb) also gives its strings unescaped, so that code with quotes in a notebook cell is found."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in archive.namelist():
                yield from texts_of(f"{where}!{name}", archive.read(name))
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # binary (.npy): any byte decodes, so strings stored in it still match
    yield where, text
    if where.endswith((".json", ".ipynb")):
        yield where, "\n".join(_json_strings(json.loads(text)))


def solution_lines(assignment: str) -> set[str]:
    """What of the source notebook's solution code the release notebook does not show (nbgrader keeps the
    docstrings), as search strings: every two consecutive code lines between the solution markers (stripped,
    joined by a newline), and every single line of 45+ characters. A pair, not a line, since a line such as
    `for _ in range(steps):` is common to any code; two in a row are the solution's own."""
    release = "\n".join(line.strip() for c in read_notebook(notebook_path(assignment, "release")).cells
                        for line in c.source.split("\n"))
    found = set()
    for cell in read_notebook(notebook_path(assignment, "source")).cells:
        inside, block = False, []
        for line in cell.source.split("\n") + ["### END SOLUTION"]:
            if "### BEGIN SOLUTION" in line or "### END SOLUTION" in line:
                code = [x for x in block if x and not x.startswith("#")]
                found |= {f"{a}\n{b}" for a, b in zip(code, code[1:])}
                found |= {x for x in code if len(x) >= 45}
                inside, block = "BEGIN" in line, []
            elif inside:
                block.append(line.strip())
    return {item for item in found if item not in release}


def stripped(text: str) -> str:
    """`text` with every line stripped of its indentation, so that code is found at any nesting."""
    return "\n".join(line.strip() for line in text.split("\n"))


def release_code() -> str:
    """Every line of every release notebook, stripped: what the course shows students on purpose."""
    return "\n".join(stripped(c.source) for a in ASSIGNMENTS for c in read_notebook(notebook_path(a, "release")).cells)


def student_side_python() -> str:
    package = COURSE / "graders"
    return "\n".join(p.read_text() for part in ("visible", "checks") for p in sorted((package / part).glob("*.py")))


def hidden_lines() -> set[str]:
    """Stripped lines of 30+ characters of graders/hidden/*.py that neither the student side's code nor the
    release notebooks (code the course gives, such as a stable softmax in 05's setup) have too."""
    public = student_side_python() + "\n" + release_code()
    return {line.strip() for path in (COURSE / "graders" / "hidden").glob("*.py")
            for line in path.read_text().split("\n") if len(line.strip()) >= 30 and line.strip() not in public}


def _decorator_name(node: ast.expr) -> str:
    node = node.func if isinstance(node, ast.Call) else node
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def hidden_names() -> set[str]:
    """The names of the hidden checks and generators: functions decorated with @hidden(...) or @generates(...) in
    graders/hidden/*.py, and the names generators are registered under. Less the names the student side uses on
    purpose: a function of its own of the same name (whose code the hidden-line search covers), and a generator
    a visible check asks for by name (a string in its code, as in t.data("name", ...)), whose answers the check
    data records."""
    names = set()
    for path in (COURSE / "graders" / "hidden").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for decorator in node.decorator_list:
                if _decorator_name(decorator) in ("hidden", "generates"):
                    names.add(node.name)
                if (_decorator_name(decorator) == "generates" and isinstance(decorator, ast.Call) and decorator.args
                        and isinstance(decorator.args[0], ast.Constant)):
                    names.add(decorator.args[0].value)
    used = set()
    for part in ("visible", "checks"):
        for path in (COURSE / "graders" / part).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    used.add(node.name)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    used.add(node.value)  # a generator asked for by name, directly or through a helper
    return names - used


@pytest.mark.unit
def test_nothing_a_student_receives_carries_solutions_or_hidden_checks(tmp_path):
    wheel = build_student_wheel(tmp_path / "wheel")
    bundles = write_bundles(list(ASSIGNMENTS), tmp_path / "bundles")
    # scope: the course position of the bundle a file came in; None for the wheel, which every bundle carries
    texts = list(texts_of(wheel.name, wheel.read_bytes()))
    scoped = [(None, where, text) for where, text in texts]
    for position, (assignment, bundle) in enumerate(zip(ASSIGNMENTS, bundles)):
        assert bundle.name == bundle_name(assignment)
        with zipfile.ZipFile(bundle) as archive:
            assert archive.read(wheel.name) == wheel.read_bytes(), f"{bundle.name} carries another wheel"
            for name in archive.namelist():
                if name != wheel.name:
                    scoped += [(position, where, text) for where, text in
                               texts_of(f"{bundle.name}!{name}", archive.read(name))]

    leaks, given_later, searched = [], 0, {}
    # (i) solution code (pairs of lines, long lines): none in the wheel, nor in the bundle of its own or an earlier assignment. Later notebooks
    # give earlier assignments' functions as setup code ("Given: functions from assignments 01 to 03"), by design.
    for position, assignment in enumerate(ASSIGNMENTS):
        lines = solution_lines(assignment)
        searched[f"solution lines of {assignment}"] = len(lines)
        for scope, where, text in scoped:
            text = stripped(text)
            for line in lines:
                if line in text:
                    if scope is None or scope <= position:
                        leaks.append(f"solution line of {assignment} {line!r} in {where}")
                    else:
                        given_later += 1
    # (ii) hidden check code, (iii) names of hidden checks and generators: nowhere
    lines, names = hidden_lines(), hidden_names()
    searched["hidden lines"], searched["hidden names"] = len(lines), len(names)
    name_patterns = {name: re.compile(rf"\b{re.escape(name)}\b") for name in names}
    for _, where, text in scoped:
        leaks += [f"hidden line {line!r} in {where}" for line in lines if line in text]
        leaks += [f"hidden name {name!r} in {where}" for name, pattern in name_patterns.items() if pattern.search(text)]

    print(f"\nsearched {len(scoped)} texts ({sum(len(t) for _, _, t in scoped) / 2**20:.1f} MiB) for "
          + ", ".join(f"{count} {what}" for what, count in searched.items())
          + f"; {given_later} hits are earlier solutions given in later notebooks (allowed)")
    leaks = sorted(set(leaks))  # a notebook is searched twice: as JSON text and as its unescaped strings
    assert not leaks, f"{len(leaks)} leak(s):\n" + "\n".join(leaks)


# -- the wheel itself ------------------------------------------------------------------------------------------

@pytest.mark.unit
def test_the_wheel_holds_the_student_side_only_and_the_same_sources_give_the_same_bytes(tmp_path):
    first, second = build_student_wheel(tmp_path / "a"), build_student_wheel(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert [p.read_bytes() for p in write_bundles([ASSIGNMENT], tmp_path / "c")] == \
           [p.read_bytes() for p in write_bundles([ASSIGNMENT], tmp_path / "d")]
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        dist_info = next(n.split("/")[0] for n in names if ".dist-info/" in n)
        package = [n for n in names if not n.startswith(dist_info)]
        expected = ["graders/__init__.py"] + [f"graders/{part}/{p.name}" for part in ("checks", "visible")
                                               for p in (COURSE / "graders" / part).glob("*.py")]
        assert sorted(package) == sorted(expected)
        assert sorted(n for n in names if n.startswith(dist_info)) == [
            f"{dist_info}/{n}" for n in ("METADATA", "RECORD", "WHEEL", "licenses/LICENSE")]
        assert names[-1] == f"{dist_info}/RECORD"
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        project = project_table(COURSE)
        for field in ("Name: nnfs-checks", f"Requires-Python: {project['requires-python']}", "License-Expression: MIT",
                      *(f"Requires-Dist: {r}" for r in project["dependencies"])):
            assert field + "\n" in metadata, field
        rows = list(csv.reader(io.StringIO(archive.read(f"{dist_info}/RECORD").decode())))
        assert sorted(row[0] for row in rows) == sorted(names)
        for name, digest, size in rows:
            if name.endswith("/RECORD"):
                assert digest == size == ""
                continue
            data = archive.read(name)
            assert digest == "sha256=" + urlsafe_sha256(data) and int(size) == len(data), name


def urlsafe_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@pytest.mark.unit
@pytest.mark.parametrize("module, code, imported", [
    ("graders/visible/x.py", "from ..hidden import GENERATORS", "graders.hidden"),
    ("graders/checks/x.py", "def f():\n    from .. import engine\n", "graders.engine"),
    ("graders/__init__.py", "from .tooling.course import course_root", "graders.tooling.course"),
    ("graders/checks/x.py", "import graders.tooling", "graders.tooling"),
    ("graders/checks/x.py", "import importlib\nimportlib.import_module('graders.hidden.neuron')",
     "graders.hidden.neuron"),
])
def test_an_import_of_instructor_code_stops_the_build(module, code, imported):
    [problem] = instructor_imports(module, code.encode())
    assert problem.endswith(f"imports {imported}")
    with pytest.raises(StudentPackageError, match=re.escape(imported)):
        check_student_files({module: code.encode()})
    assert instructor_imports(module, b"from ..checks.registry import checks_for\nimport numpy as np\n") == []
