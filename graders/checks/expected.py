"""Where a check's expected values come from: the reference itself, or data recorded from it.

A check never computes an expected value itself. It asks its `Tester`, which asks an *expected source*:

- `t.ref(name)(*args)`: what the reference's contract function `name` returns for these inputs;
- `t.data(name, *args)`: what a named generator gives (the outputs of named mistakes, a numerical gradient).

The instructor's side answers by running the reference (`LiveExpected`, in graders.hidden). A student has no
reference: `./course build` runs every visible check against the reference once, records each answer under a
digest of its question (kind, name and inputs), and writes them next to the release notebook as
`checks_<assignment>.json` (the structure) and `checks_<assignment>.npz` (the arrays). `RecordedExpected`
answers from those files. Visible checks draw their inputs from literals and seeded generators, so the
questions a student's run asks are exactly the ones the build recorded.

No pickles and no code travel: a recorded value is JSON (numbers, strings, lists, tuples, dicts) with arrays
by name in the `.npz`, read with allow_pickle=False.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

FORMAT = "nnfs-check-data/1"
#: Where else a student's kernel looks for check data (besides the working folder): folders, os.pathsep-separated.
DATA_PATH_VARIABLE = "NNFS_CHECK_DATA"


class Unrecordable(TypeError):
    """A question or an answer that the check data cannot hold (a function, an object of a class of ours)."""


def data_file_names(assignment: str) -> tuple[str, str]:
    """(json name, npz name) of an assignment's check data, e.g. ("checks_01_neuron.json", "checks_01_neuron.npz")."""
    return f"checks_{assignment}.json", f"checks_{assignment}.npz"


# -- the question: a digest of what was asked ----------------------------------------------------------------

def _feed(h, value) -> None:
    """Feed a canonical byte form of `value` to the hash `h`. Integer arrays and scalars hash as int64 and
    floats as little-endian, so the same question asked on another platform has the same digest."""
    if value is None:
        h.update(b"N")
    elif type(value) is bool or isinstance(value, np.bool_):
        h.update(b"T" if value else b"F")
    elif isinstance(value, (int, np.integer)):
        h.update(b"i" + str(int(value)).encode())
    elif isinstance(value, (float, np.floating)) and np.ndim(value) == 0:
        h.update(b"f" + struct.pack("<d", float(value)))
    elif isinstance(value, str):
        data = value.encode()
        h.update(b"s" + str(len(data)).encode() + b":" + data)
    elif isinstance(value, np.ndarray):
        if value.dtype.kind in "iu":
            value = value.astype("<i8")
        elif value.dtype.kind in "fc":
            value = value.astype(value.dtype.newbyteorder("<"))
        elif value.dtype.kind != "b":
            raise Unrecordable(f"an array of dtype {value.dtype}")
        h.update(b"a" + value.dtype.str.encode() + repr(value.shape).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple)):
        h.update((b"l" if isinstance(value, list) else b"t") + str(len(value)).encode() + b"[")
        for item in value:
            _feed(h, item)
        h.update(b"]")
    elif isinstance(value, dict):
        h.update(b"d" + str(len(value)).encode() + b"{")
        for key in sorted(value, key=repr):
            _feed(h, key)
            _feed(h, value[key])
        h.update(b"}")
    elif isinstance(value, np.random.Generator):
        h.update(b"G" + repr(value.bit_generator.state).encode())
    else:
        raise Unrecordable(f"a {type(value).__name__}")


def question_digest(kind: str, name: str, args, kwargs) -> str:
    """The key of a recorded answer: sha256 of (kind, name, args, kwargs) in canonical form, hex."""
    h = hashlib.sha256()
    _feed(h, (kind, name, tuple(args), dict(kwargs)))
    return h.hexdigest()


# -- the answer: a value as JSON plus named arrays --------------------------------------------------------------

def encode_value(value, arrays: list) -> object:
    """A JSON node for `value`; arrays are appended to `arrays` and referenced by index."""
    if value is None or type(value) in (bool, str, int):
        return value
    if type(value) is float:
        return value if np.isfinite(value) else {"float": repr(value)}
    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        return {"scalar": [value.dtype.str, encode_value(value.item(), arrays)]}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise Unrecordable(f"an array of dtype {value.dtype}")
        arrays.append(value)
        return {"array": len(arrays) - 1}
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [encode_value(v, arrays) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[encode_value(k, arrays), encode_value(v, arrays)] for k, v in value.items()]}
    raise Unrecordable(f"a {type(value).__name__}")


def decode_value(node, arrays: Callable[[int], np.ndarray]):
    """The value a JSON node from `encode_value` stands for, with fresh copies of its arrays."""
    if node is None or type(node) in (bool, str, int, float):
        return node
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError("malformed check data")
    (tag, body), = node.items()
    if tag == "float":
        return float(body)
    if tag == "scalar":
        return np.dtype(body[0]).type(decode_value(body[1], arrays))
    if tag == "array":
        return arrays(body).copy()
    if tag in ("list", "tuple"):
        items = [decode_value(v, arrays) for v in body]
        return items if tag == "list" else tuple(items)
    if tag == "dict":
        return {_hashable(decode_value(k, arrays)): decode_value(v, arrays) for k, v in body}
    raise ValueError(f"malformed check data (tag {tag!r})")


def _hashable(key):
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def write_npz(arrays: list[np.ndarray]) -> bytes:
    """An .npz holding arrays `a0`, `a1`, ... with fixed timestamps, so that the same arrays give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index, array in enumerate(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"a{index}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def dump_check_data(assignment: str, entries: dict[str, object], advanced: dict | None = None) -> tuple[bytes, bytes]:
    """(json bytes, npz bytes) of recorded answers {digest: value}, in digest order, with the states that the
    random generators among each question's inputs were left in ({digest: [bit_generator.state, ...]})."""
    arrays: list = []
    nodes = {digest: encode_value(entries[digest], arrays) for digest in sorted(entries)}
    document = {"format": FORMAT, "assignment": assignment, "answers": nodes,
                "generators_after": {d: states for d, states in sorted((advanced or {}).items()) if states}}
    text = json.dumps(document, sort_keys=True, allow_nan=False, separators=(",", ":"))
    return text.encode() + b"\n", write_npz(arrays)


# -- the sources -------------------------------------------------------------------------------------------

class RecordedExpected:
    """Answers a check's questions from an assignment's check data (the student's side)."""

    def __init__(self, json_path: Path, npz_path: Path):
        document = json.loads(Path(json_path).read_text(encoding="utf-8"))
        if document.get("format") != FORMAT:
            raise ValueError(f"{json_path} is not check data of format {FORMAT}")
        self.assignment, self.path = document["assignment"], Path(json_path)
        self._answers = document["answers"]
        self._advanced = document.get("generators_after", {})
        with np.load(npz_path, allow_pickle=False) as archive:
            self._arrays = {name: archive[name] for name in archive.files}

    def _array(self, index: int) -> np.ndarray:
        return self._arrays[f"a{index}"]

    def call(self, kind: str, name: str, args, kwargs):
        digest = question_digest(kind, name, args, kwargs)
        if digest not in self._answers:
            raise MissingAnswer(kind, name, self.path)
        for generator, state in zip(_generators(args, kwargs), self._advanced.get(digest, [])):
            generator.bit_generator.state = state
        return decode_value(self._answers[digest], self._array)

    def function(self, name: str) -> Callable:
        return lambda *args, **kwargs: self.call("ref", name, args, kwargs)


class MissingAnswer(LookupError):
    """The check data has no answer for a question: it is out of date, or a check asks what it cannot know."""

    def __init__(self, kind: str, name: str, path: Path):
        super().__init__(f"{path.name} has no recorded {'reference value' if kind == 'ref' else kind} of "
                         f"`{name}` for these inputs")
        self.kind, self.name, self.path = kind, name, path


class Recorder:
    """Asks another source and keeps every answer under its question's digest (`./course build`).

    It hands the check the answer as the student's side will read it back (encoded and decoded), so that a
    check run while recording behaves exactly as it will from the data.
    """

    def __init__(self, source):
        self.source, self.entries, self.advanced = source, {}, {}

    def call(self, kind: str, name: str, args, kwargs):
        digest = question_digest(kind, name, args, kwargs)
        value = self.source.call(kind, name, args, kwargs)
        arrays: list = []
        node = encode_value(value, arrays)
        self.entries[digest] = decode_value(node, lambda i: arrays[i])  # a copy the check cannot change
        # A generator the answer drew from must be left where the reference left it on the student's side too,
        # or the check's later draws would differ between the two sides.
        self.advanced[digest] = [g.bit_generator.state for g in _generators(args, kwargs)]
        return decode_value(node, lambda i: arrays[i])

    def function(self, name: str) -> Callable:
        return lambda *args, **kwargs: self.call("ref", name, args, kwargs)


def _generators(args, kwargs) -> list:
    """The numpy random Generators among a question's inputs, in a fixed order."""
    return [g for g in _walk([list(args), [kwargs[k] for k in sorted(kwargs)]]) if isinstance(g, np.random.Generator)]


def _walk(value):
    """`value` and everything inside its lists, tuples and dicts."""
    yield value
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)


_loaded: dict = {}


def find_check_data(assignment: str) -> RecordedExpected | None:
    """The check data of an assignment from the working folder or a folder in $NNFS_CHECK_DATA, or None."""
    json_name, npz_name = data_file_names(assignment)
    folders = [Path.cwd()] + [Path(p) for p in os.environ.get(DATA_PATH_VARIABLE, "").split(os.pathsep) if p]
    for folder in folders:
        json_path, npz_path = folder / json_name, folder / npz_name
        if json_path.is_file() and npz_path.is_file():
            key = (str(json_path.resolve()), json_path.stat().st_mtime_ns, npz_path.stat().st_mtime_ns)
            if key not in _loaded:
                _loaded[key] = RecordedExpected(json_path, npz_path)
            return _loaded[key]
    return None


#: The instructor's side installs a factory assignment -> source that runs the reference (graders.hidden).
_live_factory: Callable | None = None


def install_live(factory: Callable) -> None:
    """Let checks ask the reference itself (called by graders.hidden, which only the instructor's side has)."""
    global _live_factory
    _live_factory = factory


def live(assignment: str):
    """The source that runs the reference of `assignment`, or None on the student's side."""
    return _live_factory(assignment) if _live_factory else None
