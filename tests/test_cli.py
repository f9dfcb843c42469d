"""The `./course` command line: help everywhere, never a side effect from --help, argparse's errors.

Every test runs `python -m graders ...` (what `./course ...` runs) in a subprocess, with NNFS_COURSE_ROOT at a
scratch course, so that a command that did run could only write there.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from graders.tooling.cli import course_version

pytestmark = pytest.mark.unit

CHECKOUT = Path(__file__).resolve().parents[1]
COMMANDS = ("build", "demo", "test", "grade", "release-bundle", "lab", "validate", "selfcheck", "totext",
            "fromtext", "measure-time", "watch", "report", "help")


def course_cli(course: Path, *args: str) -> subprocess.CompletedProcess:
    """`./course ARGS` in `course`: the finished process, with its stdout and stderr as text."""
    env = dict(os.environ, NNFS_COURSE_ROOT=str(course),
               PYTHONPATH=os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "graders", *args], cwd=course, env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # the tests look at the exit status


def snapshot(folder: Path) -> dict[str, int]:
    """Every path under `folder` (itself included) with its modification time in nanoseconds."""
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in [folder, *folder.rglob("*")]}


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A scratch course where a command could write: its config, source/ and release/."""
    root = tmp_path_factory.mktemp("cli-course")
    shutil.copy(CHECKOUT / "nbgrader_config.py", root)
    for name in ("source", "release"):
        shutil.copytree(CHECKOUT / name, root / name)
    return root


def test_no_command_and_help_print_the_command_list(course):
    bare, helped = course_cli(course), course_cli(course, "help")
    assert bare.returncode == helped.returncode == 0, bare.stderr + helped.stderr
    assert bare.stdout == helped.stdout
    assert bare.stdout.startswith("usage: ./course")
    for name in COMMANDS:
        assert f"\n    {name} " in helped.stdout or f"\n    {name}\n" in helped.stdout, name


@pytest.mark.parametrize("name", COMMANDS)
def test_help_of_each_command_and_nothing_else(course, name):
    """`help NAME` and `NAME --help` print the command's help. They do nothing else: `demo --help` once ran
    the demo, deleting the gradebook, so the scratch course must not change at all."""
    before = snapshot(course)
    via_help, via_option = course_cli(course, "help", name), course_cli(course, name, "--help")
    assert snapshot(course) == before
    for run in (via_help, via_option):
        assert run.returncode == 0, run.stderr
        assert run.stderr == ""
    assert via_help.stdout == via_option.stdout
    assert via_help.stdout.startswith(f"usage: ./course {name} ")


def test_help_test_says_the_arguments_go_to_pytest(course):
    run = course_cli(course, "help", "test")
    assert "usage: ./course test [-h] [PYTEST ARGS...]" in run.stdout
    assert "pytest" in run.stdout and '-m "not slow"' in run.stdout


def test_demo_with_help_or_a_wrong_argument_does_not_run(course):
    before = snapshot(course)
    assert course_cli(course, "demo", "-h").returncode == 0
    assert course_cli(course, "demo", "--no-such-option").returncode == 2
    assert not (course / "gradebook.db").exists() and not (course / "submitted").exists()
    assert (course / "release").stat().st_mtime_ns == before["release"]
    assert snapshot(course) == before


def test_version(course):
    run = course_cli(course, "--version")
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"nnfs-course {course_version()}\n"


def test_version_without_the_distribution_is_the_clones(monkeypatch):
    """An environment that installed the course under its former name: the version in pyproject.toml."""
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(metadata, "version", not_installed)
    pyproject = (CHECKOUT / "pyproject.toml").read_text(encoding="utf-8")
    assert course_version() == re.search(r'^version = "(.+)"$', pyproject, re.MULTILINE)[1]


def test_unknown_command_is_an_error_listing_the_commands(course):
    run = course_cli(course, "frobnicate")
    assert run.returncode == 2
    assert "invalid choice: 'frobnicate'" in run.stderr
    assert all(f"'{name}'" in run.stderr for name in COMMANDS)


def test_unknown_assignment_is_an_error_listing_the_assignments(course):
    run = course_cli(course, "build", "99_nothing")
    assert run.returncode == 2
    assert "invalid choice: '99_nothing'" in run.stderr and "01_neuron" in run.stderr


def test_help_works_outside_a_course(tmp_path):
    """Help never looks at source/; only an ASSIGNMENT argument does."""
    assert course_cli(tmp_path, "help").returncode == 0
    assert course_cli(tmp_path, "build", "--help").returncode == 0
    run = course_cli(tmp_path, "build", "01_neuron")
    assert run.returncode == 2 and "source/ holds no assignment notebook" in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_forwarded_arguments_reach_the_program(course):
    """`lab` and `test` hand every argument, options included, to jupyter lab and pytest."""
    run = course_cli(course, "test", "--version")
    assert run.returncode == 0, run.stderr
    assert "pytest" in run.stdout + run.stderr


def test_totext_fromtext_round_trip(course, tmp_path):
    source = next((course / "source" / "01_neuron").glob("*.ipynb"))
    text = course_cli(course, "totext", str(source))
    assert text.returncode == 0, text.stderr
    (tmp_path / "notebook.txt").write_text(text.stdout, encoding="utf-8")
    written = course_cli(course, "fromtext", str(tmp_path / "notebook.txt"), str(tmp_path / "notebook.ipynb"))
    assert written.returncode == 0, written.stderr
    original, rebuilt = (json.loads(path.read_text(encoding="utf-8"))["cells"]
                         for path in (source, tmp_path / "notebook.ipynb"))
    assert [(c["cell_type"], c["source"], c["metadata"]) for c in rebuilt] == \
        [(c["cell_type"], c["source"], c["metadata"]) for c in original]
