"""The channel between the grader's checks and a student's kernel: the kernel's own Jupyter channels.

Grader -> kernel (trusted): an execute_request on the shell channel, silent and with store_history=False,
whose code is always the same call of the stub (`STUB_CALL`). The request itself, a pickle of
(name, args, kwargs, caps), travels as the message's one binary buffer, never as code: the stub reads it from
its parent message and empties that buffer list, so nothing of it is left in the kernel's history, In/_ih,
linecache or parent message once the call is over.

Kernel -> grader (untrusted): one IOPub message of type `ANSWER_TYPE` whose parent is that request. Its
content is empty; its buffers are the answer as JSON (UTF-8) followed by one `.npy` file per array (written
with allow_pickle=False). The grader reads the socket's raw frames and checks every size before it parses
anything: the frame count, the small frames that route the message, the answer's total encoded size
(`max_answer_bytes`) and, before json.loads, an upper bound on the JSON's node count. Arrays are read from
their `.npy` header (plain numeric dtypes only, the data length must match the header exactly) without
copying the frame. No path is opened on either side, and a wait never outlasts the call's deadline.
"""
from __future__ import annotations

import hmac
import io
import json
import math
import time
from dataclasses import dataclass

import numpy as np

from .remote import MAX_INT_DIGITS, MAX_NODES, NO_ANSWER, OUTPUT_TOO_LARGE, PROTOCOL_ERROR, RemoteError, int_too_large

#: The code of every request: the stub finds the request in its parent message (see in_kernel/stub.py, serve).
STUB_CALL = "__nnfs__['serve'](__nnfs__['ns'])"
#: The IOPub message type of an answer (no Jupyter frontend knows it, so none displays it).
ANSWER_TYPE = "nnfs_answer"
#: Most arrays in one answer.
MAX_ARRAYS = 4096
#: Largest frame that routes a message (header, parent header, metadata, content), and most routing identities.
ROUTING_BYTES = 64 * 2**10
MAX_IDENTITIES = 4
DELIMITER = b"<IDS|MSG>"


def send_request(client, payload: bytes) -> str:
    """Send one request to the kernel's stub.

    Inputs:
      client: a connected jupyter_client BlockingKernelClient.
      payload: bytes, the pickled request (made by the grader, so trusted by the kernel).
    Returns:
      msg_id: str, the id that the answer names as its parent.
    """
    msg = client.session.msg("execute_request", {
        "code": STUB_CALL, "silent": True, "store_history": False, "user_expressions": {},
        "allow_stdin": False, "stop_on_error": False})
    client.session.send(client.shell_channel.socket, msg, buffers=[payload])
    return msg["header"]["msg_id"]


def _int(text: str) -> int:
    """An integer literal of the answer, refused (before int() runs on a long one) when no float64 holds it."""
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise int_too_large(digits)
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise int_too_large(digits) from None
    return value


def parse_answer_json(data: bytes, max_nodes: int = MAX_NODES):
    """The answer's JSON, parsed only once it cannot be too large or too deep to build.

    Inputs:
      data: bytes, the answer's JSON text (already within max_answer_bytes).
      max_nodes: int, the node count the decoder accepts.
    Returns:
      the parsed JSON value.
    Raises:
      RemoteError(OutputTooLarge) when the text holds more structure than max_nodes nodes could need, or an
      integer no float64 holds;
      RemoteError(ProtocolError) when it is not JSON (or nests beyond the parser's recursion limit).
    """
    # every node of the answer costs at least one of these characters, so their count bounds what json builds
    structure = sum(data.count(c) for c in (b"{", b"[", b",", b":"))
    if structure > 4 * max_nodes:
        raise RemoteError(OUTPUT_TOO_LARGE, f"the function returned more than {max_nodes} values")
    try:
        return json.loads(data, parse_int=_int)
    except (ValueError, RecursionError) as exc:
        raise RemoteError(PROTOCOL_ERROR, f"the kernel's answer is not JSON ({type(exc).__name__})") from None


def read_npy(buffer) -> np.ndarray:
    """A read-only array over one `.npy` buffer of an answer, validated before any data is touched.

    Inputs:
      buffer: a bytes-like object (a zmq.Frame) holding a `.npy` file of format 1.0 or 2.0.
    Returns:
      array: a view of the buffer, of a plain numeric or bool dtype (kind b, i, u, f or c).
    Raises:
      RemoteError(ProtocolError) for anything else: another dtype, a header that does not parse, or data
      whose length is not exactly what the header's shape and dtype need.
    """
    view = memoryview(buffer).cast("B")
    head = io.BytesIO(view[:ROUTING_BYTES].tobytes())
    try:
        version = np.lib.format.read_magic(head)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}[version]
        shape, fortran_order, dtype = read_header(head, max_header_size=ROUTING_BYTES // 2)
    except Exception as exc:  # noqa: BLE001 - whatever numpy makes of a hostile header, it is not an array of ours
        raise RemoteError(PROTOCOL_ERROR, f"an array in the kernel's answer is unreadable ({type(exc).__name__})") from None
    if (dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None or dtype.hasobject
            or len(shape) > 32 or any(type(n) is not int or n < 0 for n in shape)):
        raise RemoteError(PROTOCOL_ERROR, f"an array in the kernel's answer has dtype {dtype} and shape {shape}")
    count = math.prod(shape)
    if count * dtype.itemsize != view.nbytes - head.tell():
        raise RemoteError(PROTOCOL_ERROR, "an array in the kernel's answer does not hold the data its header announces")
    flat = np.frombuffer(view, dtype=dtype, count=count, offset=head.tell())
    return flat.reshape(shape[::-1]).T if fortran_order else flat.reshape(shape)


@dataclass
class Answer:
    """What the stub answered: `tree` is the answer's parsed JSON, `buffers` the `.npy` buffers it refers to
    by index (read with `array`). `size` is the encoded size in bytes."""
    tree: object
    buffers: list
    size: int

    def array(self, index: int) -> np.ndarray:
        if type(index) is not int or not 0 <= index < len(self.buffers):
            raise RemoteError(PROTOCOL_ERROR, "the kernel's answer refers to an array it does not hold")
        return read_npy(self.buffers[index])


def _small_json(frame):
    """A routing frame's JSON (header, parent header), or None if it is not a small JSON object."""
    if len(frame) > ROUTING_BYTES:
        return None
    try:
        value = json.loads(frame.bytes)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _route(frames) -> tuple | None:
    """(signature, header, parent header, routing frames, buffers) of a raw IOPub message, or None for
    anything that is not a well-formed Jupyter message whose routing frames are small."""
    for index, frame in enumerate(frames[:MAX_IDENTITIES + 1]):
        if len(frame) == len(DELIMITER) and frame.bytes == DELIMITER:
            break
    else:
        return None
    signature, *routing = frames[index + 1:index + 6]
    if len(routing) != 4 or len(signature) > 1024 or any(len(f) > ROUTING_BYTES for f in routing):
        return None
    header, parent = _small_json(routing[0]), _small_json(routing[1])
    if header is None or parent is None:
        return None
    return signature.bytes, header, parent, routing, frames[index + 6:]


def _signed(session, signature: bytes, routing) -> bool:
    if session.auth is None:
        return True
    return hmac.compare_digest(signature, session.sign([f.bytes for f in routing]))


def _next_message(client, msg_id: str, deadline: float, alive) -> tuple:
    """The next IOPub message whose parent is request msg_id, as (msg_type, routing frames, buffers), or
    ("timeout", None, None) at the deadline, ("died", None, None) once the kernel is gone. Every other message
    (the student's prints and displays, leftovers of earlier requests, anything malformed) is dropped unparsed."""
    socket = client.iopub_channel.socket
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout", None, None
        if not socket.poll(int(min(remaining, 0.5) * 1000) + 1):
            if not alive():
                return "died", None, None
            continue
        routed = _route(socket.recv_multipart(copy=False))
        if routed is None:
            continue
        signature, header, parent, routing, buffers = routed
        if parent.get("msg_id") == msg_id and _signed(client.session, signature, routing):
            return str(header.get("msg_type")), routing, buffers


def _is_idle(routing) -> bool:
    return (_small_json(routing[3]) or {}).get("execution_state") == "idle"


def receive_answer(client, msg_id: str, *, deadline: float, alive, max_answer_bytes: int) -> tuple[str, Answer | None]:
    """Wait for the stub's answer to request msg_id on the kernel's IOPub channel.

    Inputs:
      client: the BlockingKernelClient the request went through.
      msg_id: str, the request's id.
      deadline: float, time.monotonic() after which the call has timed out (math.inf: no limit).
      alive: callable () -> bool, whether the kernel process still runs.
      max_answer_bytes: int, the largest encoded answer read.
    Returns:
      (status, answer): ("answer", Answer), ("timeout", None) or ("died", None).
    Raises:
      RemoteError(OutputTooLarge) for an answer over a cap, RemoteError(NoAnswer) when the request finished
      without an answer, RemoteError(ProtocolError) for an answer that is not one.
    """
    while True:
        kind, routing, buffers = _next_message(client, msg_id, deadline, alive)
        if kind in ("timeout", "died"):
            return kind, None
        if kind == "status" and _is_idle(routing):
            raise RemoteError(NO_ANSWER, "the kernel finished the call without answering (was the grading "
                                         "stub changed or removed by a cell?)")
        if kind == ANSWER_TYPE:
            return "answer", _read_answer(buffers, max_answer_bytes)


def wait_until_done(client, msg_id: str, *, seconds: float, alive) -> bool:
    """After an interrupt: whether request msg_id finishes (its idle status arrives) within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        kind, routing, _ = _next_message(client, msg_id, deadline, alive)
        if kind in ("timeout", "died"):
            return False
        if kind == "status" and _is_idle(routing):
            return True


def _read_answer(buffers, max_answer_bytes: int) -> Answer:
    size = sum(len(b) for b in buffers)
    if size > max_answer_bytes:
        raise RemoteError(OUTPUT_TOO_LARGE, f"the function returned {size / 2**20:.1f} MiB, more than the "
                                            f"{max_answer_bytes / 2**20:g} MiB the grader reads")
    if not buffers:
        raise RemoteError(PROTOCOL_ERROR, "the kernel's answer is empty")
    if len(buffers) - 1 > MAX_ARRAYS:
        raise RemoteError(OUTPUT_TOO_LARGE, f"the function returned more than {MAX_ARRAYS} arrays")
    tree = parse_answer_json(memoryview(buffers[0]).tobytes())
    return Answer(tree, list(buffers[1:]), size)
