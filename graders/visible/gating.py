"""Visible checks of gating (shipped to students): expected values only through t.ref and t.data.

Shapes and small hand-computable values, and gradient checks on tiny inputs. The inputs come from literals
and seeded generators; the outputs of named mistakes come from the generators in graders.hidden.gating
(`t.data("gating_...")`), because most of them are the reference with one step changed.
"""
import time
from functools import partial
from operator import itemgetter

import numpy as np

from ..checks.registry import checks_for

visible, _ = checks_for("05_gating")

# The dimensions of the hidden checks' inputs; the input builders below default to them.
N, D, H, E, F, T = 3, 4, 5, 4, 6, 4

# `pick` for a forward that returns (out, cache), or (h, c, cache): the first or second thing it returns.
FIRST, SECOND = itemgetter(0), itemgetter(1)


def _named(name, func, doc=None):
    """Give a check made by a factory its own name (its description and rng seed come from the name or the
    first docstring line), so that twin checks read as before.

    Inputs:
      name: the function name, e.g. "glu_worked_example_and_shape"; func: the check; doc: its docstring.
    Returns:
      func, renamed.
    """
    func.__name__ = func.__qualname__ = name
    if doc is not None:
        func.__doc__ = doc
    return func


def _gradients(wrt):
    """`unpack` for t.backward_check: a backward's result -> {gradient name: gradient}.

    A backward returns its gradients in the order of its forward's inputs, so `wrt` (gradient name -> an
    index, or (index, key) for an entry of a dict) says both where each gradient's input is and where the
    gradient itself is in the result, e.g. {"dX": 0, "dWx": (2, "Wx")}.
    """
    def unpack(result):
        return {name: result[where[0]][where[1]] if isinstance(where, tuple) else result[where]
                for name, where in wrt.items()}
    return unpack


# -- Part 1: gates --------------------------------------------------------------------------------------------

@visible("sigmoid_gate")
def scalar_and_vector_gates(t):
    value = np.array([2.0, -1.0, 4.0])
    t.agrees("sigmoid_gate", value, 0.0)
    t.agrees("sigmoid_gate", value, np.array([3.0, 0.0, -3.0]))


@visible("interpolate_gate")
def halfway_and_keep_old(t):
    new, old = np.array([1.0, 1.0]), np.array([0.0, 10.0])
    t.agrees("interpolate_gate", new, old, 0.0)
    t.agrees("interpolate_gate", new, old, -4.0)


# -- Part 2: GLU and SwiGLU -----------------------------------------------------------------------------------

def _glu_inputs(rng, n=N, d=D, f=F):
    """Random inputs of glu_forward and swiglu_forward.

    Inputs:
      rng: np.random.Generator; n, d, f: the sizes N, D, F.
    Returns:
      [X (n, d), W (d, f), b (f,), V (d, f), c (f,)]
    """
    return [rng.normal(size=(n, d)), rng.normal(size=(d, f)), rng.normal(size=f), rng.normal(size=(d, f)),
            rng.normal(size=f)]


# X feeds both projections: X, W, b, V, c -> dX, dW, db, dV, dc
GLU_WRT = {"dX": 0, "dW": 1, "db": 2, "dV": 3, "dc": 4}


def _gated_unit_checks(unit, worked_c, worked_what):
    """Register the visible checks of a gated unit: GLU and SwiGLU take the same inputs and are checked alike.

    Inputs:
      unit: "glu" or "swiglu" (the exercises are f"{unit}_forward" and f"{unit}_backward").
      worked_c: the gate bias c of the worked example (X = [[1, 2]], W = [[1], [0]], V = [[0], [1]], b = 0).
      worked_what: what the message calls the worked example's output.
    """
    forward, backward = f"{unit}_forward", f"{unit}_backward"

    def worked_example_and_shape(t):
        X = np.array([[1.0, 2.0]])
        t.agrees(forward, X, np.array([[1.0], [0.0]]), np.zeros(1), np.array([[0.0], [1.0]]), np.array([worked_c]),
                 pick=FIRST, what=worked_what)
        t.agrees(forward, *_glu_inputs(t.rng, 2, 3, 5), pick=FIRST, what=f"the out of {forward}")

    def backward_small_gradient_check(t):
        args = _glu_inputs(t.rng, 2, 3, 2)
        t.backward_check(forward, backward, args, GLU_WRT, unpack=_gradients(GLU_WRT), out_names=("out",),
                         candidates=partial(t.data, f"gating_{unit}_backward_suspects", *args))

    visible(forward)(_named(f"{unit}_worked_example_and_shape", worked_example_and_shape))
    visible(backward)(_named(f"{unit}_backward_small_gradient_check", backward_small_gradient_check))


_gated_unit_checks("glu", -2.0, "the out of glu_forward (the worked example, 0.5)")
_gated_unit_checks("swiglu", -1.0, "the out of swiglu_forward (swish(1) * 1 = 0.7311)")


# -- Part 3: GRU and LSTM cells -------------------------------------------------------------------------------

def _gru_params(rng, d=D, h=H, scale=1.0):
    """Random GRU parameters, gate blocks in the contract's order r, z, n.

    Inputs:
      rng: np.random.Generator; d, h: the sizes D, H; scale: multiplies the weights (large -> saturated gates).
    Returns:
      {"Wx": (d, 3h), "Wh": (h, 3h), "bx": (3h,), "bh": (3h,)}
    """
    return {"Wx": rng.normal(size=(d, 3 * h)) * scale, "Wh": rng.normal(size=(h, 3 * h)) * scale,
            "bx": rng.normal(size=3 * h), "bh": rng.normal(size=3 * h)}


GRU_PARAM_NAMES = ("Wx", "Wh", "bx", "bh")
# x, h_prev, params -> dx, dh_prev, grads
GRU_CELL_WRT = {"dx": 0, "dh_prev": 1, **{f"d{k}": (2, k) for k in GRU_PARAM_NAMES}}


@visible("gru_cell_forward")
def gru_cell_worked_example_and_shape(t):
    p = {"Wx": np.ones((1, 3)), "Wh": np.array([[1.0, 1.0, 0.0]]), "bx": np.zeros(3), "bh": np.zeros(3)}
    t.agrees("gru_cell_forward", np.array([[1.0]]), np.array([[0.5]]), p, pick=FIRST,
             what="h from gru_cell_forward (the worked example, 0.5477)")
    rng = t.rng
    x, h_prev, p = rng.normal(size=(2, 3)), rng.normal(size=(2, 4)), _gru_params(rng, 3, 4)
    t.agrees("gru_cell_forward", x, h_prev, p, pick=FIRST, what="h from gru_cell_forward",
             candidates=t.data("gating_gru_cell_suspects", x, h_prev, p))


@visible("gru_cell_backward")
def gru_cell_backward_small_gradient_check(t):
    x, h_prev, p = t.rng.normal(size=(2, 3)), t.rng.normal(size=(2, 2)), _gru_params(t.rng, 3, 2)
    t.backward_check("gru_cell_forward", "gru_cell_backward", [x, h_prev, p], GRU_CELL_WRT,
                     unpack=_gradients(GRU_CELL_WRT), out_names=("out",),
                     candidates=partial(t.data, "gating_gru_cell_backward_suspects", x, h_prev, p))


def _lstm_params(rng, d=D, h=H, scale=1.0):
    """Random LSTM parameters, gate blocks in the contract's order i, f, g, o.

    Inputs:
      rng: np.random.Generator; d, h: the sizes D, H; scale: multiplies the weights (large -> saturated gates).
    Returns:
      {"Wx": (d, 4h), "Wh": (h, 4h), "b": (4h,)}
    """
    return {"Wx": rng.normal(size=(d, 4 * h)) * scale, "Wh": rng.normal(size=(h, 4 * h)) * scale,
            "b": rng.normal(size=4 * h)}


# x, h_prev, c_prev, params -> dx, dh_prev, dc_prev, grads
LSTM_WRT = {"dx": 0, "dh_prev": 1, "dc_prev": 2, "dWx": (3, "Wx"), "dWh": (3, "Wh"), "db": (3, "b")}


@visible("lstm_cell_forward")
def lstm_cell_shapes_and_values(t):
    rng = t.rng
    args = [rng.normal(size=(2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4)), _lstm_params(rng, 3, 4)]
    suspects = t.data("gating_lstm_cell_suspects", *args)
    t.agrees("lstm_cell_forward", *args, pick=SECOND, what="c from lstm_cell_forward", candidates=suspects["c"])
    t.agrees("lstm_cell_forward", *args, pick=FIRST, what="h from lstm_cell_forward", candidates=suspects["h"])


@visible("lstm_cell_backward")
def lstm_cell_backward_small_gradient_check(t):
    rng = t.rng
    args = [rng.normal(size=(2, 3)), rng.normal(size=(2, 2)), rng.normal(size=(2, 2)), _lstm_params(rng, 3, 2)]
    t.backward_check("lstm_cell_forward", "lstm_cell_backward", args, LSTM_WRT, unpack=_gradients(LSTM_WRT),
                     n_out=2, out_names=("h", "c"),
                     candidates=partial(t.data, "gating_lstm_cell_backward_suspects", *args))


# -- Part 4: the GRU over a sequence, and the memory task -----------------------------------------------------

# X, h0, params -> dX, dh0, grads
GRU_SEQ_WRT = {"dX": 0, "dh0": 1, **{f"d{k}": (2, k) for k in GRU_PARAM_NAMES}}


@visible("gru_forward")
def gru_forward_shape_and_values(t):
    rng = t.rng
    t.agrees("gru_forward", rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5)), _gru_params(rng, 4, 5),
             pick=FIRST, what="H from gru_forward")
    t.agrees("gru_forward", rng.normal(size=(1, 1, 2)), rng.normal(size=(1, 3)), _gru_params(rng, 2, 3),
             pick=FIRST, what="H from gru_forward with T = 1")


@visible("gru_backward")
def gru_backward_small_gradient_check(t):
    rng = t.rng
    X, h0, p = rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 2)), _gru_params(rng, 2, 2)
    t.backward_check("gru_forward", "gru_backward", [X, h0, p], GRU_SEQ_WRT, unpack=_gradients(GRU_SEQ_WRT),
                     out_names=("out",), candidates=partial(t.data, "gating_gru_backward_suspects", X, h0, p))


# The memory task of the hidden check: K = 4 keys, 6 filler symbols, 50 filler tokens.
KEYS, FILLERS, LENGTH = 4, 6, 50


def _memory_task(rng, n, keys=KEYS, fillers=FILLERS, length=LENGTH):
    """Sequences that start with a key the model must still know after `length` filler tokens.

    Inputs:
      rng: np.random.Generator; n: the number of sequences; keys, fillers: how many key and filler symbols;
      length: filler tokens after the key.
    Returns:
      X: (n, 1 + length) int token ids (the key, then fillers); y: (n,) the key, in [0, keys)
    """
    y = rng.integers(0, keys, size=n)
    X = np.concatenate([y[:, None], rng.integers(keys, keys + fillers, size=(n, length))], axis=1)
    return X, y


def _train_and_score(t, cell, data, seed, **config):
    """Train with the student's train_gated_memory and score its predict on the validation set.

    Inputs:
      t: the Tester; cell: "gru" or "rnn"; data: (X_train, y_train, X_val, y_val) from _memory_task;
      seed: the seed of the rng handed to the training; config: passed on (e.g. steps=5).
    Returns:
      (validation accuracy in [0, 1], seconds the training took)
    """
    X_tr, y_tr, X_va, y_va = data
    start = time.perf_counter()
    result = t.call("train_gated_memory", X_tr, y_tr, X_va, y_va, np.random.default_rng(seed), cell=cell, **config)
    seconds = time.perf_counter() - start
    predict = t.part(result, FIRST, "train_gated_memory")
    history = t.part(result, SECOND, "train_gated_memory")
    t.require(isinstance(history, dict) and "loss" in history and len(history["loss"]) > 0,
              "history must be a dict with a non-empty list under \"loss\".",
              hint="append the loss of every step to history[\"loss\"].")
    t.require(callable(predict), "the first thing train_gated_memory returns must be a function predict(X).")
    pred = t.array(t.call_returned(predict, X_va, name="predict"), "predict(X_val)")
    t.require(pred.shape == (len(y_va),), f"predict(X_val) has shape {pred.shape}, expected ({len(y_va)},).",
              cause="predict must return one int label per sequence, not logits or probabilities.",
              hint="return logits.argmax(axis=1).")
    return float(np.mean(pred == y_va)), seconds


@visible("train_gated_memory")
def a_few_steps_return_predict_and_history(t):
    rng = t.rng
    X_tr, y_tr = _memory_task(rng, 200, length=5)
    X_va, y_va = _memory_task(rng, 20, length=5)
    for cell in ("gru", "rnn"):
        _train_and_score(t, cell, (X_tr, y_tr, X_va, y_va), 0, steps=5)


# -- Part 5: mixture of experts -------------------------------------------------------------------------------

MOE_KEYS = ("Wr", "W1", "b1", "W2", "b2")
# X, params, top_k -> dX, grads. The router first: a missing router gradient is named as such, not as a dX
# mismatch.
MOE_WRT = {"dWr": (1, "Wr"), "dX": 0, **{f"d{k}": (1, k) for k in MOE_KEYS if k != "Wr"}}


def _moe_params(rng, d=D, e=E, f=F, router_scale=1.0):
    """Random mixture-of-experts parameters: a linear router and E two-layer ReLU experts.

    Inputs:
      rng: np.random.Generator; d, e, f: the sizes D, E (experts), F (hidden units of an expert);
      router_scale: multiplies the router weights.
    Returns:
      {"Wr": (d, e), "W1": (e, d, f), "b1": (e, f), "W2": (e, f, d), "b2": (e, d)}
    """
    return {"Wr": rng.normal(size=(d, e)) * router_scale, "W1": rng.normal(size=(e, d, f)), "b1": rng.normal(size=(e, f)),
            "W2": rng.normal(size=(e, f, d)), "b2": rng.normal(size=(e, d))}


# The inputs of a MoE check must keep their top-k choice and ReLU pattern under a finite-difference nudge;
# finding them means routing them, so a generator does it (on a fresh rng: it advances the rng it is given,
# which on the student's side, where the answer is read back, would not happen).
@visible("moe_forward")
def moe_forward_shape_and_values(t):
    X, p = t.data("gating_moe_separated_inputs", np.random.default_rng(5), 3, 2)
    t.agrees("moe_forward", X, p, 2, pick=FIRST, what="out from moe_forward (top_k = 2)",
             candidates=t.data("gating_moe_forward_suspects", X, p, 2))


@visible("moe_backward")
def moe_backward_small_gradient_check(t):
    X, p = t.data("gating_moe_separated_inputs", np.random.default_rng(6), 3, 2, d=2, e=3, f=2)
    t.backward_check("moe_forward", "moe_backward", [X, p, 2], MOE_WRT, unpack=_gradients(MOE_WRT),
                     out_names=("out",), candidates=partial(t.data, "gating_moe_backward_suspects", X, p, 2))


@visible("load_balancing_loss")
def the_worked_example_and_perfect_balance(t):
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    t.agrees("load_balancing_loss", probs, np.array([0, 0, 1]), 2, scalar=True)
    t.agrees("load_balancing_loss", np.full((4, 4), 0.25), np.array([0, 1, 2, 3]), 4, scalar=True)
