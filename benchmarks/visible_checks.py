"""Seconds a student's kernel spends in the visible checks of each notebook (every exercise, answered by the
reference), in a fresh interpreter per assignment, as a student runs them: from the release's check data, with
the instructor's side not importable. Prints one line per assignment and the total.

    .venv/bin/python benchmarks/visible_checks.py [--repeat 3]
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

COURSE = Path(__file__).resolve().parent.parent
ASSIGNMENTS = ("01_neuron", "02_mlp", "03_backprop", "04_attention", "05_gating")

CHILD = """
import importlib.abc, json, sys, time
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("graders.hidden", "graders.engine", "graders.tooling")):
            raise ModuleNotFoundError(name=name)
assignment, namespace_json = sys.argv[1], sys.argv[2]
namespace = json.loads(namespace_json)  # the reference, as source code (computed by the parent)
ns = {}
exec(namespace, ns)
sys.meta_path.insert(0, Block())
start = time.perf_counter()
from graders.checks.registry import exercises
from graders.checks.runner import run_exercise
failed = [e for e in exercises(assignment) if not run_exercise(e, ns, "visible").passed]
print(json.dumps({"seconds": time.perf_counter() - start, "failed": failed}))
"""


def reference_source(assignment: str) -> str:
    sys.path.insert(0, str(COURSE))
    from graders.tooling.course import notebook_path, read_notebook
    from graders.tooling.reference import reference_cells
    return "\n\n".join(reference_cells(read_notebook(notebook_path(assignment, "source"))))


def main() -> None:
    sys.path.insert(0, str(COURSE))
    from graders.engine.sandbox import ONE_BLAS_THREAD
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per assignment; the minimum is reported")
    options = parser.parse_args()
    env = dict(os.environ, **ONE_BLAS_THREAD)
    total = 0.0
    for assignment in ASSIGNMENTS:
        code = reference_source(assignment)
        runs = []
        for _ in range(options.repeat):
            env["NNFS_CHECK_DATA"] = str(COURSE / "release" / assignment)
            out = subprocess.run([sys.executable, "-c", CHILD, assignment, json.dumps(code)], env=env, cwd="/",
                                 capture_output=True, text=True, check=True).stdout
            runs.append(json.loads(out))
        best = min(r["seconds"] for r in runs)
        total += best
        print(f"{assignment:14s} {best:6.2f} s   failed: {runs[0]['failed'] or 'none'}")
    print(f"{'all five':14s} {total:6.2f} s")


if __name__ == "__main__":
    main()
