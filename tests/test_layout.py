"""The layout is the architecture: the student package imports nothing of the instructor's side, and the files
that run inside the sandbox import nothing of the package."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import COURSE

pytestmark = pytest.mark.unit
PACKAGE = COURSE / "graders"
INSTRUCTOR = ("graders.hidden", "graders.engine", "graders.tooling")


def test_the_student_side_runs_a_visible_check_without_loading_the_instructors_side(tmp_path):
    """In a fresh interpreter that cannot import graders.hidden (as in a student's environment), a visible
    check runs from the release's data, and nothing of the instructor's side is ever imported."""
    code = (
        "import sys, json, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.startswith({INSTRUCTOR!r}):\n"
        "            raise ModuleNotFoundError(name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np\n"
        "from graders.checks.runner import run_exercise\n"
        "def sigmoid(z):\n"
        "    e = np.exp(-np.abs(z))\n"
        "    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))\n"
        "def sigmoid_grad(z):\n"
        "    return sigmoid(z) * (1 - z)\n"
        "ok = run_exercise('sigmoid', globals()).passed\n"
        "wrong = run_exercise('sigmoid_grad', globals())\n"
        "print(json.dumps({'ok': ok, 'wrong': wrong.text(), 'loaded': sorted(m for m in sys.modules\n"
        "                  if m.startswith(('graders.', 'nbgrader', 'nbformat', 'jupyter_client', 'sklearn')))}))\n")
    env = dict(os.environ, NNFS_CHECK_DATA=str(COURSE / "release" / "01_neuron"))
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and not run.stderr, run.stderr
    result = json.loads(run.stdout)
    assert result["ok"], result
    assert "sigmoid(z) * (1 - z)" in result["wrong"], result["wrong"]
    assert not [m for m in result["loaded"] if not m.startswith(("graders.checks", "graders.visible"))], result


def _imports(path: Path) -> list[str]:
    """Absolute module names a file imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(COURSE).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("part", ["__init__.py", "checks", "visible"])
def test_the_student_package_never_imports_the_instructors_side(part):
    paths = [PACKAGE / part] if part.endswith(".py") else sorted((PACKAGE / part).glob("*.py"))
    for path in paths:
        bad = [name for name in _imports(path) if name.startswith(INSTRUCTOR)]
        assert not bad, f"{path.relative_to(COURSE)} imports {bad}"


def test_the_files_that_run_inside_the_sandbox_import_nothing_of_the_package():
    for path in sorted((PACKAGE / "engine" / "in_kernel").glob("*.py")):
        bad = [name for name in _imports(path) if name.split(".")[0] == "graders"]
        assert not bad, f"{path.relative_to(COURSE)} imports {bad}"
