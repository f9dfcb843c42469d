"""The student bundle of an assignment: one zip with everything a student needs, and nothing of the instructor's.

`bundles/nnfs-<assignment>.zip` holds the release folder (`<assignment>/`: the notebook, its check data and any
other file there), the student wheel (graders.tooling.student_package) and a README.md made from
STUDENT_README.md beside this module. Like the wheel, its bytes depend only on what it holds.
"""
from __future__ import annotations

from pathlib import Path
from string import Template

from ..checks.expected import data_file_names
from .course import available_assignments, course_root
from .student_package import student_wheel, zip_bytes

README_TEMPLATE = Path(__file__).with_name("STUDENT_README.md")


class BundleError(RuntimeError):
    """An assignment cannot be bundled: its release folder lacks the notebook or the check data."""


def bundle_name(assignment: str) -> str:
    """The bundle's file name, e.g. "nnfs-01_neuron.zip"."""
    return f"nnfs-{assignment}.zip"


def release_files(folder: Path) -> dict[str, bytes]:
    """Every file under a release folder, by its path relative to the folder, e.g. {"neuron.ipynb": b"..."};
    hidden files and folders (.ipynb_checkpoints, ...) and __pycache__ are left out."""
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            files[relative.as_posix()] = path.read_bytes()
    return files


def readme(assignment: str, notebook: str, wheel: str) -> bytes:
    """The bundle's README.md: STUDENT_README.md with the assignment's names filled in.

    Inputs:
      assignment: e.g. "01_neuron". notebook: the notebook's file name. wheel: the wheel's file name.
    """
    check_json, check_npz = data_file_names(assignment)
    text = Template(README_TEMPLATE.read_text(encoding="utf-8")).substitute(
        assignment=assignment, notebook=notebook, wheel=wheel, check_json=check_json, check_npz=check_npz)
    return text.encode("utf-8")


def bundle_members(assignment: str, wheel: tuple[str, bytes], root: Path) -> dict[str, bytes]:
    """What the bundle of `assignment` holds.

    Inputs:
      assignment: e.g. "01_neuron". wheel: (file name, bytes) of the student wheel. root: the course folder.
    Returns:
      {path inside the zip: bytes}: "<assignment>/<file>" for each release file, the wheel, "README.md".
    Raises:
      BundleError if the release folder lacks the notebook or either check data file (run `./course build`).
    """
    folder = root / "release" / assignment
    files = release_files(folder) if folder.is_dir() else {}
    notebooks = [name for name in files if name.endswith(".ipynb") and "/" not in name]
    missing = [name for name in data_file_names(assignment) if name not in files]
    if len(notebooks) != 1 or missing:
        raise BundleError(f"release/{assignment}/ needs one notebook and {', '.join(data_file_names(assignment))}; "
                          f"found notebooks {notebooks}, missing {missing}: run `./course build {assignment}`")
    wheel_file_name, wheel_bytes = wheel
    members = {f"{assignment}/{name}": data for name, data in files.items()}
    members[wheel_file_name] = wheel_bytes
    members["README.md"] = readme(assignment, notebooks[0], wheel_file_name)
    return members


def write_bundles(assignments: list[str] | None = None, out: Path | None = None) -> list[Path]:
    """Write bundles/nnfs-<assignment>.zip for each assignment.

    Inputs:
      assignments: assignment ids; default every one with a release notebook.
      out: the folder to write into (created if missing); default <course>/bundles/.
    Returns:
      the paths of the bundles, in the order of `assignments`.
    Raises:
      BundleError if an assignment has no complete release folder; StudentPackageError if the student side
      imports instructor-only code.
    """
    root = course_root()
    if assignments is None:
        assignments = available_assignments("release")
    out = Path(out or root / "bundles")
    wheel = student_wheel(root)
    members = {assignment: bundle_members(assignment, wheel, root) for assignment in assignments}
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for assignment in assignments:
        path = out / bundle_name(assignment)
        path.write_bytes(zip_bytes(members[assignment]))
        paths.append(path)
    return paths
