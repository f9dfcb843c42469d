"""The channel between the checks and a student's kernel (graders/engine/channel.py, remote.py, in_kernel/stub.py)
through a real sandboxed kernel: whatever a student's function returns, and whatever a student's cell makes the
kernel answer instead, is a failed check with a message, never an error of the grader; the grader opens no path
in the sandbox; decoding is bounded in time and memory; and no request is left behind in the kernel.
"""
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from graders.checks.failures import Failure
from graders.checks.tester import Tester
from graders.engine.remote import (KERNEL_DIED, NO_ANSWER, OUTPUT_TOO_LARGE, PROTOCOL_ERROR, TIMEOUT, RemoteError,
                                   RemoteNamespace)
from graders.engine.sandbox import GradingLimits, KernelSession

pytestmark = [pytest.mark.e2e]

#: Student functions whose results cannot be converted or compared; each one is called with a float array.
HOSTILE_VALUES = '''
import numpy as np

class HostileFloat(float):
    def __eq__(self, other): raise RuntimeError("eq")
    def __ne__(self, other): raise RuntimeError("ne")
    def __float__(self): raise RuntimeError("float")
    def __repr__(self): raise RuntimeError("repr")
    __hash__ = float.__hash__

class HostileInt(int):
    def __index__(self): raise RuntimeError("index")
    def __float__(self): raise RuntimeError("float")
    def __eq__(self, other): raise RuntimeError("eq")
    __hash__ = int.__hash__

def _deep(n):
    root = current = []
    for _ in range(n):
        current.append([])
        current = current[0]
    return root

def _recursive():
    items = [1.0]
    items.append(items)
    return items

hostile = {
    "huge_int": lambda z: 10**400,
    "negative_huge_int": lambda z: -10**400,
    "enormous_int": lambda z: 10**5000,
    "huge_int_in_a_list": lambda z: [10**400, 1.0],
    "huge_int_in_a_tuple": lambda z: (z, 10**400),
    "hostile_float": lambda z: HostileFloat(0.25),
    "hostile_int": lambda z: HostileInt(1),
    "list_of_hostile_floats": lambda z: [HostileFloat(0.25)] * 3,
    "nan": lambda z: float("nan"),
    "nan_array": lambda z: np.full(3, np.nan),
    "nan_key": lambda z: {float("nan"): z},
    "nan_in_a_nested_list": lambda z: [[np.nan, 1.0], [2.0]],
    "inf": lambda z: -np.inf,
    "deeply_nested_list": lambda z: _deep(100_000),
    "recursive_list": lambda z: _recursive(),
    "dict_with_non_string_keys": lambda z: {1: z, (2, 3): 4.0},
    "bytes": lambda z: b"\\x00" * 24,
    "object_array": lambda z: np.array([1.0, "a", None], dtype=object),
    "object_array_of_floats": lambda z: np.array([0.25, 0.25, 0.25], dtype=object),
    "structured_array": lambda z: np.zeros(3, dtype=[("a", "f8")]),
    "complex_array": lambda z: z.astype(complex),
    "string": lambda z: "0.25",
    "none": lambda z: None,
    "matrix": lambda z: np.matrix([[0.25, 0.25, 0.25]]),
    "ragged": lambda z: [np.zeros(2), np.zeros(3)],
    "generator": lambda z: (x for x in z),
    "huge_uint": lambda z: np.uint64(2**64 - 1),
}
'''
#: In the kernel: publish an answer of the student's own making for the current request (a hostile cell does this).
FORGE = '''
def _forge(buffers, msg_type="nnfs_answer", content=None):
    kernel = get_ipython().kernel
    kernel.session.send(kernel.iopub_socket, msg_type, content or {}, parent=kernel.get_parent(), ident=b"x",
                        buffers=list(buffers))

def _npy(array):
    import io
    out = io.BytesIO()
    np.lib.format.write_array(out, array, allow_pickle=False)
    return out.getvalue()

def _raw_npy(header, data):
    text = repr(header).encode()
    text += b" " * (63 - (10 + len(text)) % 64) + b"\\n"
    return b"\\x93NUMPY\\x01\\x00" + len(text).to_bytes(2, "little") + text + data

def _answer(value, *arrays, **extra):
    return [json.dumps({"ok": True, "value": value, **extra}).encode(), *arrays]
'''

#: The default cap on an answer, in MiB.
CAP_MIB = GradingLimits().max_answer_bytes // 2**20

#: name -> (code of a replacement for the stub's `serve(namespace)`, the fault the grader must report)
FORGED = {
    "4 MiB array referenced 200 times": (
        "_forge(_answer({'l': [{'a': 0}] * 200}, _npy(np.zeros(2**19))))", OUTPUT_TOO_LARGE),
    "1 MiB array referenced once more than the cap holds": (
        f"_forge(_answer({{'l': [{{'a': 0}}] * {CAP_MIB + 1}}}, _npy(np.zeros(2**17))))", OUTPUT_TOO_LARGE),
    "45 MB of empty lists": ("_forge([b'[' + b'[],' * 15_000_000 + b'[]]'])", OUTPUT_TOO_LARGE),
    "45 MB of empty lists as the message content": (
        "_forge([], content={'x': [[]] * 15_000_000})", NO_ANSWER),
    "45 MB display for the request, then no answer": (
        "get_ipython().display_pub.publish({'text/plain': 'x' * 45_000_000})", NO_ANSWER),
    "300 000 nodes in 3 MB": ("_forge(_answer({'l': [{'v': 1}] * 300_000}))", OUTPUT_TOO_LARGE),
    "nesting 100 000 deep": ("_forge([b'{\"ok\": true, \"value\": ' + b'[' * 100_000 + b']' * 100_000 + b'}'])",
                             PROTOCOL_ERROR),
    "nesting 40 levels of nodes": ("_forge(_answer(eval('{\"l\": [' * 40 + '{\"v\": 1}' + ']}' * 40)))", PROTOCOL_ERROR),
    "integer literal of 400 digits": ("_forge([b'{\"ok\": true, \"value\": {\"v\": 1' + b'0' * 400 + b'}}'])",
                                      OUTPUT_TOO_LARGE),
    "integer literal of 100 000 digits": ("_forge([b'{\"ok\": true, \"value\": {\"v\": 1' + b'0' * 100_000 + b'}}'])",
                                          OUTPUT_TOO_LARGE),
    "a 'big' integer node": ("_forge(_answer({'big': 401}))", OUTPUT_TOO_LARGE),
    "not JSON": ("_forge([b'\\xff\\xfe garbage'])", PROTOCOL_ERROR),
    "JSON that is not an answer": ("_forge([b'[1, 2, 3]'])", PROTOCOL_ERROR),
    "unknown node": ("_forge(_answer({'pickle': 'gASVAAAA'}))", PROTOCOL_ERROR),
    "node with extra keys": ("_forge(_answer({'v': 1, 'w': 2}))", PROTOCOL_ERROR),
    "array index out of range": ("_forge(_answer({'a': 3}, _npy(np.zeros(2))))", PROTOCOL_ERROR),
    "array index that is not an integer": ("_forge(_answer({'a': '0'}, _npy(np.zeros(2))))", PROTOCOL_ERROR),
    "object array (a pickle) in an .npy": (
        "_forge(_answer({'a': 0}, _raw_npy({'descr': '|O', 'fortran_order': False, 'shape': (1,)}, b'\\\\x80\\\\x04N.')))",
        PROTOCOL_ERROR),
    "structured dtype in an .npy": (
        "_forge(_answer({'a': 0}, _npy(np.zeros(2, dtype=[('a', 'f8')]))))", PROTOCOL_ERROR),
    ".npy header announcing 10**12 floats": (
        "_forge(_answer({'a': 0}, _raw_npy({'descr': '<f8', 'fortran_order': False, 'shape': (10**12,)}, b'')))",
        PROTOCOL_ERROR),
    ".npy with more data than its header": (
        "_forge(_answer({'a': 0}, _npy(np.zeros(2)) + b'\\\\x00' * 8))", PROTOCOL_ERROR),
    ".npy with a header that is code": (
        "_forge(_answer({'a': 0}, _raw_npy(\"__import__('os').system('id')\", b'')))", PROTOCOL_ERROR),
    "10 000 buffers": ("_forge(_answer({'v': 1}, *[b''] * 10_000))", OUTPUT_TOO_LARGE),
    "changed argument that does not exist": ("_forge(_answer({'v': 1}, args_after={'7': {'v': 1}}))", PROTOCOL_ERROR),
    "changed keyword that does not exist": ("_forge(_answer({'v': 1}, kwargs_after={'w': {'v': 1}}))", PROTOCOL_ERROR),
    "handle without a type": ("_forge(_answer({'h': 1, 'callable': True, 'x': 1}))", PROTOCOL_ERROR),
    "answer for another request": (
        "k = get_ipython().kernel\n"
        "k.session.send(k.iopub_socket, 'nnfs_answer', {}, parent={'msg_id': 'other'}, buffers=_answer({'v': 1}))",
        NO_ANSWER),
    "no answer at all": ("pass", NO_ANSWER),
    "no answer, and no end": ("while True:\n    pass", TIMEOUT),
}


def define(session, code: str) -> None:
    status, outputs = session.run(textwrap.dedent(code), timeout=60)
    assert status == "ok", outputs


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    kernel = KernelSession(tmp_path_factory.mktemp("channel-work"), limits=GradingLimits(cell_seconds=8))
    define(kernel, HOSTILE_VALUES + FORGE + "\nimport json\n__nnfs__['honest'] = __nnfs__['serve']\n")
    yield kernel
    kernel.close()


@pytest.fixture
def forged(session):
    """Replace the kernel's stub with a student's serve(namespace) for the test, then put the honest one back."""
    def install(body: str):
        define(session, "def _serve(namespace):\n" + textwrap.indent(body, "    ") + "\n__nnfs__['serve'] = _serve\n")
    yield install
    define(session, "__nnfs__['serve'] = __nnfs__['honest']")


@contextlib.contextmanager
def fresh_session(path, seconds: float, **limits):
    """A kernel of its own, for a test that may kill or stop it."""
    kernel = KernelSession(path, limits=GradingLimits(cell_seconds=seconds, **limits))
    try:
        yield kernel
    finally:
        kernel.close()


def make_tester(namespace) -> Tester:
    return Tester("01_neuron", "sigmoid", namespace, np.random.default_rng(0))


def read_back(t: Tester, name: str, how: str):
    """Call `name` through the Tester and read the result the way checks do."""
    z = np.array([-1.0, 0.0, 1.0])
    if how == "array":
        return t.array(t.call(name, z), f"{name}(z)")
    if how == "number":
        return t.number(t.call(name, z), f"{name}(z)")
    if how == "close":
        return t.close(t.call(name, z), np.full(3, 0.5), f"{name}(z)")
    return t.close(t.call(name, z), 0.5, f"{name}(z)")


HOSTILE_NAMES = ["huge_int", "negative_huge_int", "enormous_int", "huge_int_in_a_list", "huge_int_in_a_tuple",
                 "hostile_float", "hostile_int", "list_of_hostile_floats", "nan", "nan_array", "nan_key",
                 "nan_in_a_nested_list", "inf", "deeply_nested_list", "recursive_list", "dict_with_non_string_keys",
                 "bytes", "object_array", "object_array_of_floats", "structured_array", "complex_array", "string",
                 "none", "matrix", "ragged", "generator", "huge_uint"]
#: The ways checks read a result. A plain number (nan, 1.8e19) may be read as an array or a number; no hostile
#: result equals what the close checks expect.
READINGS = ("array", "number", "close", "close_scalar")


def read_all_ways(t: Tester, name: str) -> None:
    """Each reading of `name`'s result either gives a value or raises a Failure with a message (any other
    exception fails the test); the comparisons always fail."""
    for how in READINGS:
        try:
            read_back(t, name, how)
        except Failure as failure:
            assert failure.summary.strip() and failure.text(), (name, how)
        else:
            assert how in ("array", "number"), f"{name}: the {how} check passed"


def test_the_names_cover_every_hostile_value():
    namespace = {}
    exec(HOSTILE_VALUES, namespace)
    assert sorted(namespace["hostile"]) == sorted(HOSTILE_NAMES)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_result_through_the_kernel_is_a_failed_check(session, name):
    define(session, f"{name} = hostile[{name!r}]")
    read_all_ways(make_tester(RemoteNamespace(session)), name)
    assert session.alive()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_result_in_process_is_a_failed_check(name):
    namespace = {}
    exec(HOSTILE_VALUES, namespace)
    read_all_ways(make_tester({name: namespace["hostile"][name]}), name)


def test_the_failure_says_what_was_wrong(session):
    define(session, "huge_int = hostile['huge_int']\nhostile_float = hostile['hostile_float']")
    t = make_tester(RemoteNamespace(session))
    with pytest.raises(Failure) as failed:
        t.array(t.call("huge_int", np.zeros(3)), "huge_int(z)")
    assert "401 digits" in failed.value.text() and "float64" in failed.value.text()
    with pytest.raises(Failure) as failed:
        t.array(t.call("hostile_float", np.zeros(3)), "hostile_float(z)")
    assert "HostileFloat" in failed.value.summary


@pytest.mark.parametrize("attack", list(FORGED))
def test_a_forged_answer_is_a_failed_check(session, forged, attack):
    body, fault = FORGED[attack]
    forged(body)
    define(session, "def victim(z):\n    return z")
    started = time.monotonic()
    with pytest.raises(RemoteError) as raised:
        RemoteNamespace(session)["victim"].invoke((np.zeros(3),), {"scale": 1.0})
    seconds = time.monotonic() - started
    assert raised.value.type_name == fault, raised.value
    assert raised.value.message
    assert seconds < (12 if fault == TIMEOUT else 5), seconds
    # and a check reads it as a failure with the fault's explanation, never as an error of its own
    t = make_tester(RemoteNamespace(session))
    with pytest.raises(Failure) as failed:
        t.array(t.call("victim", np.zeros(3)), "victim(z)")
    assert "could not finish" in failed.value.summary


def test_every_reference_is_counted_but_an_answer_within_the_cap_is_read(session, forged):
    forged(f"_forge(_answer({{'l': [{{'a': 0}}] * {CAP_MIB - 1}}}, _npy(np.arange(2**17, dtype=float))))")
    define(session, "def victim(z):\n    return z")
    copies = RemoteNamespace(session)["victim"](np.zeros(3))
    assert len(copies) == CAP_MIB - 1 and copies[0] is not copies[1]
    np.testing.assert_array_equal(copies[-1], np.arange(2**17))


def test_after_a_forged_answer_the_honest_stub_answers_again(session, forged):
    forged(FORGED["45 MB of empty lists"][0])
    define(session, "def victim(z):\n    return z")
    with pytest.raises(RemoteError):
        RemoteNamespace(session)["victim"].invoke((np.zeros(3),), {})
    define(session, "__nnfs__['serve'] = __nnfs__['honest']")
    np.testing.assert_array_equal(RemoteNamespace(session)["victim"](np.arange(3.0)), np.arange(3.0))


# -- what the channel still does ----------------------------------------------------------------------------------

def test_values_handles_warnings_and_changed_arguments(session):
    define(session, """
        import numpy as np
        class Cache:
            def __init__(self, x):
                self.x = x
        def forward(x, w, scale=1.0):
            return x @ w * scale, Cache(x)
        def backward(dout, cache):
            return dout * cache.x.sum()
        def train(x):
            offset = float(x.sum())
            def predict(y):
                return y + offset
            return {"offset": offset, "predict": predict}
        def overflow(z):
            return np.exp(z)
        def scale_in_place(x, params):
            x *= 2
            params["w"] = params["w"] + 1
            return None
        def ints_and_friends(z):
            return [True, None, 3, 2.5, "s", (1, 2), {"k": np.int64(7)}, np.float32(0.25), 2**62, np.arange(3)]
        """)
    remote = RemoteNamespace(session)
    x, w = np.ones((2, 3)), np.ones((3, 1))
    out = remote["forward"].invoke((x, w), {"scale": 2.0})
    np.testing.assert_array_equal(out.value[0], np.full((2, 1), 6.0))
    cache = out.value[1]
    assert type(cache).__name__ == "Handle" and cache.typename == "Cache"  # the cache stayed in the kernel
    assert out.argnames == ["x", "w", "scale"]
    assert out.args_after[0] is x and out.args_after[1] is w and out.kwargs_after == {"scale": 2.0}
    np.testing.assert_array_equal(remote["backward"](np.ones(2), cache), np.full(2, 6.0))

    trained = remote["train"](np.ones(4))
    assert trained["offset"] == 4.0 and callable(trained["predict"])
    np.testing.assert_array_equal(trained["predict"](np.zeros(2)), np.full(2, 4.0))

    warned = remote["overflow"].invoke((np.array([1000.0]),), {})
    assert warned.warnings and "overflow" in warned.warnings[0]

    x, params = np.ones(3), {"w": np.zeros(2), "b": 1.0}
    changed = remote["scale_in_place"].invoke((x,), {"params": params})
    np.testing.assert_array_equal(changed.args_after[0], np.full(3, 2.0))
    np.testing.assert_array_equal(changed.kwargs_after["params"]["w"], np.ones(2))
    np.testing.assert_array_equal(x, np.ones(3))  # the grader's own arguments are not touched

    plain = remote["ints_and_friends"](np.zeros(1))
    assert plain[:6] == [True, None, 3, 2.5, "s", (1, 2)] and plain[6] == {"k": 7} and plain[7] == 0.25
    assert plain[8] == 2**62
    np.testing.assert_array_equal(plain[9], np.arange(3))


def test_handles_are_dropped_before_the_next_cell(session):
    define(session, "def keep(z):\n    return object()")
    handle = RemoteNamespace(session)["keep"](np.zeros(1))
    define(session, "assert not __nnfs__['_handles'], __nnfs__['_handles']")
    with pytest.raises(RemoteError):
        RemoteNamespace(session)["keep"](handle)  # a handle from an earlier cell names nothing


def test_the_student_s_exception_and_a_missing_name(session):
    define(session, "def broken(z):\n    raise ValueError('shapes do not match')")
    with pytest.raises(RemoteError) as raised:
        RemoteNamespace(session)["broken"](np.zeros(2))
    assert raised.value.type_name == "ValueError" and raised.value.message == "shapes do not match"
    assert "raise ValueError" in raised.value.where and "Exception" in raised.value.mro
    with pytest.raises(RemoteError) as raised:
        RemoteNamespace(session)["never_defined"](1)
    assert raised.value.type_name == "NameError"


def test_a_function_that_never_returns_times_out_and_the_kernel_goes_on(tmp_path):
    with fresh_session(tmp_path, 2) as kernel:
        define(kernel, "def loop(z):\n    while True:\n        pass\ndef ok(z):\n    return z")
        started = time.monotonic()
        with pytest.raises(RemoteError) as raised:
            RemoteNamespace(kernel)["loop"](np.zeros(1))
        assert raised.value.type_name == TIMEOUT and "2 s" in raised.value.message
        assert time.monotonic() - started < 8
        np.testing.assert_array_equal(RemoteNamespace(kernel)["ok"](np.ones(2)), np.ones(2))


def test_a_function_that_ignores_the_interrupt_gets_its_kernel_stopped(tmp_path):
    with fresh_session(tmp_path, 2) as kernel:
        define(kernel, """
            def stubborn(z):
                while True:
                    try:
                        while True:
                            pass
                    except KeyboardInterrupt:
                        continue
            """)
        started = time.monotonic()
        with pytest.raises(RemoteError) as raised:
            RemoteNamespace(kernel)["stubborn"](np.zeros(1))
        assert raised.value.type_name == TIMEOUT and "stopped" in raised.value.message
        assert time.monotonic() - started < 20
        assert not kernel.alive()


def test_a_kernel_that_dies_in_a_call_is_reported(tmp_path):
    with fresh_session(tmp_path, 8) as kernel:
        define(kernel, "def die(z):\n    import os\n    os._exit(1)")
        with pytest.raises(RemoteError) as raised:
            RemoteNamespace(kernel)["die"](np.zeros(1))
        assert raised.value.type_name == KERNEL_DIED


def test_an_answer_over_the_cap_is_refused_by_the_stub_already(tmp_path):
    with fresh_session(tmp_path, 8, max_answer_bytes=2**20) as kernel:
        define(kernel, "import numpy as np\ndef big(z):\n    return np.zeros(2**18)\ndef fits(z):\n    return np.zeros(2**16)")
        with pytest.raises(RemoteError) as raised:
            RemoteNamespace(kernel)["big"](np.zeros(1))
        assert raised.value.type_name == OUTPUT_TOO_LARGE and "1 MiB" in raised.value.message
        assert RemoteNamespace(kernel)["fits"](np.zeros(1)).shape == (2**16,)


def test_the_output_cap_still_stops_a_cell(tmp_path):
    with fresh_session(tmp_path, 8, output_bytes=2**20) as kernel:
        status, outputs = kernel.run("print('x' * 3 * 2**20)", timeout=30)
        assert status != "ok" or any("OutputLimit" in json.dumps(o) for o in outputs)


# -- no path in the sandbox -----------------------------------------------------------------------------------

_OPENED: list = []
_WATCHING: list = []


def _audit(event, args):
    if _WATCHING and event in ("open", "os.chmod", "os.chown", "os.rename", "os.remove", "os.mkdir", "os.symlink",
                               "os.link", "os.truncate", "os.utime", "shutil.copyfile", "os.listdir", "os.scandir"):
        for arg in args:
            if isinstance(arg, (str, bytes, os.PathLike)) and os.fsdecode(arg).startswith(_WATCHING[0]):
                _OPENED.append((event, os.fsdecode(arg)))


sys.addaudithook(_audit)


def test_planted_links_and_fifos_are_never_opened(session, tmp_path):
    assert not (session.root / "rpc").exists() and not hasattr(session, "rpc_dir")
    canary = tmp_path / "canary.txt"
    canary.write_text("the grader's own file\n")
    os.chmod(canary, 0o644)
    before = canary.stat()
    define(session, f"""
        import os, itertools
        root = {str(session.root)!r}
        os.makedirs(root + "/rpc", exist_ok=True)
        for folder, n in itertools.product([root, root + "/rpc", root + "/home", root + "/work"], range(1, 40)):
            for name in (f"req-{{n}}.pkl", f"resp-{{n}}.json", f"resp-{{n}}-0.npy", f"resp-{{n}}.json.tmp"):
                path = os.path.join(folder, name)
                if not os.path.lexists(path):
                    (os.mkfifo(path) if n % 2 else os.symlink({str(canary)!r}, path))
        def echo(z):
            return z * 2
        """)
    remote = RemoteNamespace(session)
    _OPENED.clear()
    _WATCHING[:] = [str(session.root)]
    try:
        started = time.monotonic()
        for n in range(40):
            np.testing.assert_array_equal(remote["echo"](np.full(3, float(n))), np.full(3, 2.0 * n))
        seconds = time.monotonic() - started
    finally:
        _WATCHING.clear()
    assert _OPENED == [], _OPENED
    assert seconds < 5
    after = canary.stat()
    assert canary.read_text() == "the grader's own file\n"
    assert (after.st_mtime_ns, after.st_mode, after.st_uid) == (before.st_mtime_ns, before.st_mode, before.st_uid)


def test_the_audit_hook_sees_the_grader_s_own_opens(tmp_path):
    """The audit above would notice an open: shown by opening a file under the watched folder."""
    _OPENED.clear()
    _WATCHING[:] = [str(tmp_path)]
    try:
        (tmp_path / "x").write_text("x")
    finally:
        _WATCHING.clear()
    assert _OPENED


# -- nothing of a request stays in the kernel -----------------------------------------------------------------

MARK = "hidden-input-7f3a9c"
MAGIC = 271828.182845

#: In the kernel: where anything of the request is still reachable (the search builds its marker at run time, so
#: that the search's own source holds none of it).
SEARCH = '''
def _traces(mark, magic):
    import gc, struct, sys, linecache
    mark_bytes, magic_bytes = mark.encode(), struct.pack("<d", magic)
    ip = get_ipython()
    found = []
    seen = set()
    def check(obj, where):
        if obj is mark or obj is mark_bytes or id(obj) in seen:
            return
        seen.add(id(obj))
        try:
            if isinstance(obj, str):
                hit = mark in obj
            elif isinstance(obj, (bytes, bytearray)):
                hit = mark_bytes in obj or magic_bytes in obj
            elif isinstance(obj, memoryview):
                hit = mark_bytes in obj.tobytes() or magic_bytes in obj.tobytes()
            elif type(obj).__name__ == "ndarray" and obj.dtype.kind == "f" and obj.size < 10**7:
                hit = bool((obj == magic).any())
            elif type(obj).__name__ == "Frame":
                hit = mark_bytes in obj.bytes or magic_bytes in obj.bytes
            else:
                hit = False
        except Exception:
            hit = False
        if hit:
            found.append(where)
    places = {"In": ip.user_ns.get("In"), "_ih": ip.user_ns.get("_ih"), "Out": ip.user_ns.get("Out"),
              "linecache": dict(linecache.cache), "last_execution_result": ip.last_execution_result,
              "parent": ip.kernel.get_parent()}
    for name, place in places.items():
        check(repr(place), name)
    for obj in gc.get_objects():
        for ref in gc.get_referents(obj):
            check(ref, type(obj).__name__)
    return sorted(set(found))
'''


def _search(session, expect: str) -> None:
    define(session, SEARCH + f"_found = _traces('hidden-input-' + '7f3a9c', {MAGIC!r})\n"
                             f"assert {expect}, _found\n")


def test_nothing_of_a_request_stays_in_the_kernel(session):
    define(session, "def quiet(x, tag=None):\n    return float(x.sum() > 0)\n")
    remote = RemoteNamespace(session)
    for _ in range(3):
        assert remote["quiet"](np.full(5, MAGIC), tag=MARK) == 1.0
    _search(session, "_found == []")


def test_the_search_finds_what_a_student_s_function_keeps(session):
    """The search above is not blind: a function that keeps its inputs is found out."""
    define(session, "def keeper(x, tag=None):\n    global KEPT\n    KEPT = (x, tag)\n    return 1.0\n")
    RemoteNamespace(session)["keeper"](np.full(5, MAGIC), tag=MARK)
    _search(session, "_found")
    define(session, "del KEPT")


# -- the grader's memory and time on the biggest forged answers ---------------------------------------------------

MEASURE = '''
import json, resource, sys, tempfile, time
import numpy as np
from graders.engine.remote import RemoteError, RemoteNamespace
from graders.engine.sandbox import GradingLimits, KernelSession

forge, body, max_answer_bytes = json.loads(sys.argv[1])
kernel = KernelSession(tempfile.mkdtemp(), limits=GradingLimits(cell_seconds=20, max_answer_bytes=max_answer_bytes))
try:
    status, _ = kernel.run(forge + "\\ndef _serve(namespace):\\n    " + body + "\\n__nnfs__['serve'] = _serve\\n"
                           "def victim(z):\\n    return z\\n", timeout=60)
    assert status == "ok", status
    try:  # start the peak from the current resident size, so that the call's own peak is what is measured
        with open("/proc/self/clear_refs", "w") as peak:
            peak.write("5")
    except OSError:
        pass
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    try:
        RemoteNamespace(kernel)["victim"](np.zeros(3))
        fault = None
    except RemoteError as exc:
        fault = exc.type_name
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
finally:
    kernel.close()
print(json.dumps({"fault": fault, "seconds": seconds, "grew_kib": after - before, "before_kib": before}))
'''


@pytest.mark.parametrize("attack, max_answer_bytes", [
    ("4 MiB array referenced 200 times", 4 * 2**20),  # over the encoded cap already
    ("4 MiB array referenced 200 times", 16 * 2**20),  # within it: the count of its references stops it
    ("45 MB of empty lists", 16 * 2**20),
])
def test_the_biggest_forged_answers_cost_the_grader_little(attack, max_answer_bytes, record_property):
    body, fault = FORGED[attack]
    forge = "import json\nimport numpy as np\n" + FORGE
    done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps([forge, body, max_answer_bytes])],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    record_property("figures", figures)
    print(attack, max_answer_bytes, figures)
    assert figures["fault"] == fault
    assert figures["seconds"] < 3
    # the whole 45 MB message is in memory once (libzmq receives it whole), never parsed
    assert figures["grew_kib"] < 64 * 1024, figures
