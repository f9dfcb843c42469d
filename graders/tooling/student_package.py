"""The student's package `nnfs-checks`: a wheel of the three student-side parts of graders/, nothing else.

It holds graders/__init__.py, graders/checks/*.py and graders/visible/*.py with a .dist-info (PEP 427, RECORD as
in PEP 376, METADATA 2.4 with a license expression as in PEP 639). It is written with zipfile rather than a
build backend so that it can never pick up more of graders/ than these files, and so that the same sources give
the same bytes: entries in a fixed order, with one fixed timestamp and mode.
"""
from __future__ import annotations

import ast
import base64
import csv
import hashlib
import io
import zipfile
from pathlib import Path

from packaging.version import Version

from .course import course_root
from .project import project_table


DISTRIBUTION = "nnfs-checks"
SUMMARY = "The visible checks of nn-from-scratch: run check(\"sigmoid\") in your assignment notebook."
LICENSE_EXPRESSION = "MIT"
TAG = "py3-none-any"
#: The student side of graders/ (see the layout in graders/__init__.py), as globs relative to graders/.
STUDENT_PARTS = ("__init__.py", "checks/*.py", "visible/*.py")
#: Instructor-only packages: nothing in the wheel may import them.
INSTRUCTOR_PACKAGES = ("graders.hidden", "graders.engine", "graders.tooling")
#: The earliest time a zip entry can carry; any fixed value makes archives reproducible.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class StudentPackageError(RuntimeError):
    """The student package cannot be built: a student-side file imports an instructor-only package."""


def project_version(root: Path) -> str:
    """The normalized [project].version of root/pyproject.toml, e.g. "0.1.0"."""
    return str(Version(project_table(root)["version"]))


def wheel_name(version: str) -> str:
    """The wheel's file name, e.g. "nnfs_checks-0.1.0-py3-none-any.whl"."""
    return f"{_escaped(DISTRIBUTION)}-{version}-{TAG}.whl"


def _escaped(name: str) -> str:
    # file and folder names of a distribution spell it with underscores (the wheel file name spec)
    return name.replace("-", "_")


def student_files(root: Path) -> dict[str, bytes]:
    """The student side of root/graders/.

    Inputs:
      root: the course folder.
    Returns:
      {path inside the wheel, e.g. "graders/checks/runner.py": the file's bytes}.
    """
    package = root / "graders"
    paths = {path for pattern in STUDENT_PARTS for path in package.glob(pattern)}
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(paths)}


def instructor_imports(name: str, source: bytes) -> list[str]:
    """Where a module of graders/ imports an instructor-only package.

    Inputs:
      name: the module's path inside the wheel, e.g. "graders/checks/registry.py" (relative imports resolve
        against it).
      source: its code.
    Returns:
      one "path:line imports module" per import of graders.hidden, graders.engine or graders.tooling, counting
      import statements anywhere (also inside functions) and importlib.import_module / __import__ of a literal.
    """
    package = name.removesuffix(".py").split("/")[:-1]
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        forbidden = [module for module in _imported_modules(node, package)
                     if any(module == p or module.startswith(p + ".") for p in INSTRUCTOR_PACKAGES)]
        if forbidden:
            found.append(f"{name}:{node.lineno} imports {forbidden[0]}")
    return found


def _imported_modules(node: ast.AST, package: list[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = _resolve(node.module or "", node.level, package)
        # `from graders import hidden` imports the module graders.hidden
        return [base] + [f"{base}.{alias.name}" for alias in node.names]
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str) and _is_import_call(node.func):
        target = node.args[0].value
        level = len(target) - len(target.lstrip("."))
        return [_resolve(target.lstrip("."), level, package)]
    return []


def _is_import_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def _resolve(module: str, level: int, package: list[str]) -> str:
    if level == 0:
        return module
    parts = package[: len(package) - (level - 1)]
    return ".".join(parts + ([module] if module else []))


def check_student_files(files: dict[str, bytes]) -> None:
    """Raise StudentPackageError if any of `files` ({wheel path: bytes}) imports an instructor-only package."""
    problems = [problem for name, source in files.items() for problem in instructor_imports(name, source)]
    if problems:
        raise StudentPackageError("the student package would import instructor-only code:\n  " + "\n  ".join(problems))


def metadata(version: str, requires_python: str, requires: list[str]) -> bytes:
    """The wheel's METADATA (core metadata 2.4) for `version`, with its Requires-Python and Requires-Dist."""
    lines = [
        "Metadata-Version: 2.4",
        f"Name: {DISTRIBUTION}",
        f"Version: {version}",
        f"Summary: {SUMMARY}",
        f"License-Expression: {LICENSE_EXPRESSION}",
        "License-File: LICENSE",
        f"Requires-Python: {requires_python}",
        *(f"Requires-Dist: {requirement}" for requirement in requires),
        "Description-Content-Type: text/markdown",
        "",
        "The student's side of the nn-from-scratch course: `from graders import check` and the visible checks",
        "of every assignment. The hidden checks are not in this package; they run when the instructor grades.",
        "",
    ]
    return "\n".join(lines).encode()


def wheel_file() -> bytes:
    """The wheel's WHEEL file."""
    return ("Wheel-Version: 1.0\nGenerator: nnfs-course (graders.tooling.student_package)\n"
            f"Root-Is-Purelib: true\nTag: {TAG}\n").encode()


def record(files: dict[str, bytes], record_path: str) -> bytes:
    """The RECORD of `files` ({wheel path: bytes}): one "path,sha256=<urlsafe base64>,size" row each, and a row
    with no hash for the RECORD itself (`record_path`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for name in sorted(files):
        digest = base64.urlsafe_b64encode(hashlib.sha256(files[name]).digest()).rstrip(b"=").decode()
        writer.writerow([name, f"sha256={digest}", len(files[name])])
    writer.writerow([record_path, "", ""])
    return out.getvalue().encode()


def wheel_members(root: Path) -> tuple[str, dict[str, bytes]]:
    """The wheel's name and contents, built from the course at `root`.

    Returns:
      (file name, {path inside the wheel: bytes}), RECORD included.
    Raises:
      StudentPackageError if a student-side file imports graders.hidden, graders.engine or graders.tooling.
    """
    project = project_table(root)
    version = str(Version(project["version"]))
    files = student_files(root)
    check_student_files(files)
    dist_info = f"{_escaped(DISTRIBUTION)}-{version}.dist-info"
    files[f"{dist_info}/METADATA"] = metadata(version, project["requires-python"], project["dependencies"])
    files[f"{dist_info}/WHEEL"] = wheel_file()
    files[f"{dist_info}/licenses/LICENSE"] = (root / "LICENSE").read_bytes()
    record_path = f"{dist_info}/RECORD"
    files[record_path] = record(files, record_path)
    return wheel_name(version), files


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive of `members` ({path inside: bytes}) whose bytes depend only on them.

    Entries are sorted, except that a .dist-info/RECORD goes last (PEP 427 asks for the .dist-info at the end, and
    installers read the RECORD after the files it lists); each has the same timestamp and mode.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(members, key=lambda n: (n.endswith(".dist-info/RECORD"), n)):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the mode below means the same wherever the archive is made
            info.external_attr = 0o644 << 16
            archive.writestr(info, members[name], compresslevel=9)
    return buffer.getvalue()


def student_wheel(root: Path | None = None) -> tuple[str, bytes]:
    """The student wheel of the course at `root` (default: this course) as (file name, bytes)."""
    name, members = wheel_members(Path(root or course_root()))
    return name, zip_bytes(members)


def build_student_wheel(out_dir: Path, root: Path | None = None) -> Path:
    """Write nnfs_checks-<version>-py3-none-any.whl into `out_dir` (created if missing).

    Inputs:
      out_dir: where to write the wheel. root: the course folder (default: this course).
    Returns:
      the wheel's path.
    Raises:
      StudentPackageError if a student-side file imports graders.hidden, graders.engine or graders.tooling.
    """
    name, data = student_wheel(root)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_bytes(data)
    return path
