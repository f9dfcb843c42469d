"""Checks for assignment 05_gating: the hidden checks, and the generators of named mistakes.

Visible checks (graders.visible.gating): shapes and small hand-computable values, and gradient checks on tiny
inputs. Hidden checks: random inputs with distinct dimensions (N=3, D=4, H=5, E=4, F=6, T=4), extreme gate
logits, gradient checks against centered differences with random upstream gradients, N = 1, ties in the
router, idle experts, and the memory task re-trained from scratch for both cells. Each `candidates` entry names
a classic mistake by the output it would produce; the generators (`@generates("gating_...")`) make those
outputs for the visible checks too, which get them as data.
"""
from functools import partial

import numpy as np

from .gradients import numerical_gradient
from ..checks.registry import checks_for
from ..visible.gating import (
    GLU_WRT,
    GRU_CELL_WRT,
    GRU_PARAM_NAMES,
    GRU_SEQ_WRT,
    KEYS,
    LENGTH,
    LSTM_WRT,
    MOE_WRT,
    D,
    E,
    F,
    H,
    N,
    T,
    _glu_inputs,
    _gradients,
    _gru_params,
    _lstm_params,
    _memory_task,
    _moe_params,
    _named,
    _train_and_score,
)
from . import generates

_, hidden = checks_for("05_gating")

# How long the memory task may train, per cell, in the hidden check.
TIME_LIMIT = 12.0


def _sig(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


# -- Part 1: gates --------------------------------------------------------------------------------------------

@hidden("sigmoid_gate")
def broadcast_gates_on_random_values(t):
    """scalar, vector (D,) and per-example (N, 1) and (N, D) gates on random (N, D) values"""
    value = t.rng.normal(size=(N, D)) * 3
    for logit in (0.7, t.rng.normal(size=D) * 2, t.rng.normal(size=(N, 1)) * 2, t.rng.normal(size=(N, D)) * 2):
        t.agrees("sigmoid_gate", value, logit,
                 candidates={"the logit is used as the gate: squash it with sigmoid(gate_logit) first.":
                                 lambda v, l: l * v,
                             "tanh is used as the gate: a gate lives in (0, 1), use sigmoid.":
                                 lambda v, l: np.tanh(l) * v})


@hidden("sigmoid_gate")
def sigmoid_gate_extreme_logits(t):
    """logits of +-1e4 and +-800: a fully open or shut gate, without an overflow warning"""
    value = t.rng.normal(size=(2, 5))
    t.agrees("sigmoid_gate", value, np.array([-1e4, -800.0, 0.0, 800.0, 1e4]),
             hint="use the given stable sigmoid instead of 1 / (1 + np.exp(-logit)).")


@hidden("interpolate_gate")
def which_side_the_gate_weighs(t):
    """random new and old values, scalar and vector gates: g weighs the new value"""
    new, old = t.rng.normal(size=(N, D)), t.rng.normal(size=(N, D)) * 2
    for logit in (1.5, t.rng.normal(size=D) * 2, t.rng.normal(size=(N, D)) * 2):
        t.agrees("interpolate_gate", new, old, logit,
                 candidates={"the gate weighs the old value: the contract is g*new + (1-g)*old with g = sigmoid(logit).":
                                 lambda n, o, l: _sig(l) * o + (1 - _sig(l)) * n,
                             "the logit is used as the gate: squash it with sigmoid first.":
                                 lambda n, o, l: l * n + (1 - l) * o})


@hidden("interpolate_gate")
def interpolate_gate_extreme_logits(t):
    """logits of +-1e4: exactly new or exactly old, without warnings"""
    new, old = t.rng.normal(size=(2, 4)), t.rng.normal(size=(2, 4))
    t.agrees("interpolate_gate", new, old, np.array([-1e4, -700.0, 700.0, 1e4]))


# -- Part 2: GLU and SwiGLU -----------------------------------------------------------------------------------

def _glu_wrong_half(X, W, b, V, c):
    return _sig(X @ W + b) * (X @ V + c)


def _swiglu_wrong_half(X, W, b, V, c):
    u = X @ V + c
    return (X @ W + b) * u * _sig(u)


# unit -> {mistake: its out as a function of the forward's inputs X, W, b, V, c}
GATED_UNIT_FORWARD_MISTAKES = {
    "glu": {"the sigmoid is on the wrong half: GLU is (X@W + b) * sigmoid(X@V + c).": _glu_wrong_half,
            "the gate is X@V + c without the sigmoid.": lambda X, W, b, V, c: (X @ W + b) * (X @ V + c),
            "a bias is missing (b or c).": lambda X, W, b, V, c: (X @ W) * _sig(X @ V + c)},
    "swiglu": {"swish is on the wrong half: SwiGLU is swish(X@W + b) * (X@V + c).": _swiglu_wrong_half,
               "sigmoid instead of swish: swish(a) = a * sigmoid(a).":
                   lambda X, W, b, V, c: _sig(X @ W + b) * (X @ V + c),
               "this is the GLU: SwiGLU is swish(X@W + b) * (X@V + c).":
                   lambda X, W, b, V, c: (X @ W + b) * _sig(X @ V + c)},
}


@generates("gating_glu_backward_suspects")
def glu_backward_suspects(source, X, W, b, V, c, douts):
    """What glu_backward's named mistakes return.

    Inputs:
      X: (N, D); W: (D, F), b: (F,), V: (D, F), c: (F,): glu_forward's inputs; douts: [dout (N, F)].
    Returns:
      {gradient name ("dX", "dV", "dc"): {mistake: that gradient, shaped like its input}}
    """
    a, g = X @ W + b, _sig(X @ V + c)
    dout = douts[0]
    da, du = dout * g, dout * a * g * (1 - g)
    du_flat = dout * a * g
    slope = "the sigmoid's slope g(1-g) is missing from the gate branch: du = dout * a * g * (1 - g)."
    return {"dV": {slope: X.T @ du_flat},
            "dc": {slope: du_flat.sum(axis=0)},
            "dX": {slope: da @ W.T + du_flat @ V.T,
                   "dX has only the signal branch: X feeds both projections, dX = da @ W.T + du @ V.T.": da @ W.T,
                   "dX has only the gate branch: X feeds both projections, dX = da @ W.T + du @ V.T.": du @ V.T}}


@generates("gating_swiglu_backward_suspects")
def swiglu_backward_suspects(source, X, W, b, V, c, douts):
    """What swiglu_backward's named mistakes return.

    Inputs:
      X: (N, D); W: (D, F), b: (F,), V: (D, F), c: (F,): swiglu_forward's inputs; douts: [dout (N, F)].
    Returns:
      {gradient name ("dW", "db", "dX"): {mistake: that gradient, shaped like its input}}
    """
    a, u = X @ W + b, X @ V + c
    s = _sig(a)
    dout = douts[0]
    da_short = dout * u * s
    du = dout * a * s
    da = dout * u * (s + a * s * (1 - s))
    text = "swish'(a) taken as sigmoid(a) only: by the product rule it is s + a*s*(1 - s)."
    return {"dW": {text: X.T @ da_short}, "db": {text: da_short.sum(axis=0)},
            "dX": {text: da_short @ W.T + du @ V.T,
                   "dX has only one branch: X feeds both projections, dX = da @ W.T + du @ V.T.": da @ W.T}}


def _gated_unit_checks(unit, right_half_doc, large_doc, large_hint):
    """Register the hidden checks of a gated unit: GLU and SwiGLU take the same inputs and are checked alike.

    Inputs:
      unit: "glu" or "swiglu" (the exercises are f"{unit}_forward" and f"{unit}_backward").
      right_half_doc, large_doc: the descriptions of the two forward checks; large_hint: the hint of the
      large-input check.
    """
    forward, backward = f"{unit}_forward", f"{unit}_backward"
    first = lambda r: r[0]  # the out of (out, cache)

    def random_inputs_the_right_half(t):
        for n in (N, 1):
            args = _glu_inputs(t.rng, n)
            t.agrees(forward, *args, pick=first, what=f"the out of {forward}",
                     candidates={text: mistake(*args) for text, mistake in GATED_UNIT_FORWARD_MISTAKES[unit].items()})

    def large_inputs_without_warnings(t):
        args = _glu_inputs(t.rng)
        args[0] = args[0] * 1e3
        t.agrees(forward, *args, pick=first, what=f"the out of {forward}", hint=large_hint)

    def backward_gradient_checks(t):
        args = _glu_inputs(t.rng)
        t.backward_check(forward, backward, args, GLU_WRT, unpack=_gradients(GLU_WRT), out_names=("out",),
                         candidates=partial(t.data, f"gating_{unit}_backward_suspects", *args))

    def backward_single_example(t):
        args = _glu_inputs(t.rng, 1, 5, 3)
        t.backward_check(forward, backward, args, GLU_WRT, unpack=_gradients(GLU_WRT), out_names=("out",),
                         candidates=partial(t.data, f"gating_{unit}_backward_suspects", *args))

    hidden(forward)(_named(f"{unit}_random_inputs_the_right_half", random_inputs_the_right_half, right_half_doc))
    hidden(forward)(_named(f"{unit}_large_inputs_without_warnings", large_inputs_without_warnings, large_doc))
    hidden(backward)(_named(f"{unit}_backward_gradient_checks", backward_gradient_checks,
                            "every gradient against centered differences, random dout (N=3, D=4, F=6)"))
    hidden(backward)(_named(f"{unit}_backward_single_example", backward_single_example, "N = 1"))


_gated_unit_checks("glu", "random inputs (N=3, D=4, F=6) and N = 1: the sigmoid gates the V half",
                   "inputs of size 1e3: the gate saturates without an overflow warning",
                   "use the given stable sigmoid, not 1 / (1 + np.exp(-u)).")
_gated_unit_checks("swiglu", "random inputs (N=3, D=4, F=6) and N = 1: swish on the W half",
                   "inputs of size 1e3: swish saturates without an overflow warning",
                   "use the given stable sigmoid for swish(a) = a * sigmoid(a).")


# -- Part 3: GRU and LSTM cells -------------------------------------------------------------------------------

def _gru_variant(x, h_prev, p, order="rzn", swap_update=False, reset="pytorch"):
    """The GRU step, or one of the classic mistakes."""
    hh = h_prev.shape[1]
    gx, gh = x @ p["Wx"] + p["bx"], h_prev @ p["Wh"] + p["bh"]
    block = {name: slice(i * hh, (i + 1) * hh) for i, name in enumerate(order)}
    r = _sig(gx[:, block["r"]] + gh[:, block["r"]])
    z = _sig(gx[:, block["z"]] + gh[:, block["z"]])
    if reset == "pytorch":
        rec = r * gh[:, block["n"]]
    elif reset == "bias outside":
        rec = r * (h_prev @ p["Wh"][:, block["n"]]) + p["bh"][block["n"]]
    elif reset == "before matmul":
        rec = (r * h_prev) @ p["Wh"][:, block["n"]] + p["bh"][block["n"]]
    else:  # no reset gate
        rec = gh[:, block["n"]]
    n = np.tanh(gx[:, block["n"]] + rec)
    return z * n + (1 - z) * h_prev if swap_update else (1 - z) * n + z * h_prev


GRU_MISTAKES = {
    "gate order: the columns are read as z, r, n; the contract's order is r, z, n ([:, :H] is r, [:, H:2H] is z).":
        dict(order="zrn"),
    "gate order: n is not the last block; the contract's order is r, z, n.": dict(order="nrz"),
    "(1 - z) is on the wrong term: h = (1 - z) * n + z * h_prev (z keeps the old state).": dict(swap_update=True),
    "r is applied outside the recurrent term: it must multiply (h_prev @ Wh_n + bh_n), bias included.":
        dict(reset="bias outside"),
    "r is applied to h_prev before the product (the 2014 paper's form); PyTorch's GRUCell, our contract, uses "
    "r * (h_prev @ Wh_n + bh_n).": dict(reset="before matmul"),
    "the reset gate r is never used in n.": dict(reset="none"),
}


@generates("gating_gru_cell_suspects")
def gru_cell_suspects(source, x, h_prev, p):
    """What gru_cell_forward's named mistakes return.

    Inputs:
      x: (N, D); h_prev: (N, H); p: {"Wx": (D, 3H), "Wh": (H, 3H), "bx": (3H,), "bh": (3H,)}.
    Returns:
      {mistake: h (N, H)}
    """
    return {text: _gru_variant(x, h_prev, p, **kw) for text, kw in GRU_MISTAKES.items()}


@hidden("gru_cell_forward")
def gru_cell_gate_order_update_and_reset(t):
    """random weights and nonzero biases (N=3, D=4, H=5): gate order r, z, n, the (1 - z), where r goes"""
    for _ in range(2):
        x, h_prev, p = t.rng.normal(size=(N, D)), t.rng.normal(size=(N, H)), _gru_params(t.rng)
        t.agrees("gru_cell_forward", x, h_prev, p, pick=lambda r: r[0], what="h from gru_cell_forward",
                 candidates=t.data("gating_gru_cell_suspects", x, h_prev, p))


@hidden("gru_cell_forward")
def gru_cell_single_example_and_saturated_gates(t):
    """N = 1, and large weights that saturate the gates, without warnings"""
    x, h_prev, p = t.rng.normal(size=(1, 2)), t.rng.normal(size=(1, 3)), _gru_params(t.rng, 2, 3)
    t.agrees("gru_cell_forward", x, h_prev, p, pick=lambda r: r[0], what="h from gru_cell_forward",
             candidates=t.data("gating_gru_cell_suspects", x, h_prev, p))
    x, h_prev, p = t.rng.normal(size=(N, D)), t.rng.normal(size=(N, H)), _gru_params(t.rng, scale=300.0)
    t.agrees("gru_cell_forward", x, h_prev, p, pick=lambda r: r[0], what="h from gru_cell_forward (saturated gates)",
             hint="use the given stable sigmoid.")


@generates("gating_gru_cell_backward_suspects")
def gru_cell_backward_suspects(source, x, h_prev, p, douts):
    """What gru_cell_backward's named mistakes return.

    Inputs:
      x: (N, D); h_prev: (N, H); p: {"Wx": (D, 3H), "Wh": (H, 3H), "bx": (3H,), "bh": (3H,)}; douts: [dh (N, H)].
    Returns:
      {gradient name ("dh_prev", "dWh", "dbh"): {mistake: that gradient, shaped like its input}}
    """
    hh = h_prev.shape[1]
    gx, gh = x @ p["Wx"] + p["bx"], h_prev @ p["Wh"] + p["bh"]
    r, z = _sig(gx[:, :hh] + gh[:, :hh]), _sig(gx[:, hh:2 * hh] + gh[:, hh:2 * hh])
    n = np.tanh(gx[:, 2 * hh:] + r * gh[:, 2 * hh:])
    dh = douts[0]
    dan = dh * (1 - z) * (1 - n * n)
    dar = dan * gh[:, 2 * hh:] * r * (1 - r)
    daz = dh * (h_prev - n) * z * (1 - z)
    d_rec = np.concatenate([dar, daz, dan * r], axis=1)
    d_rec_no_r = np.concatenate([dar, daz, dan], axis=1)
    return {"dh_prev": {"dh_prev misses the direct path dh * z (the copy of h_prev into h).": d_rec @ p["Wh"].T,
                        "dh_prev misses the n block's factor r: the recurrent n columns receive dan * r.":
                            dh * z + d_rec_no_r @ p["Wh"].T},
            "dWh": {"the recurrent n columns miss the factor r: they receive dan * r, not dan.":
                    h_prev.T @ d_rec_no_r},
            "dbh": {"the recurrent n columns miss the factor r: they receive dan * r, not dan.":
                    d_rec_no_r.sum(axis=0)}}


def _gru_cell_backward_check(t, x, h_prev, p):
    t.backward_check("gru_cell_forward", "gru_cell_backward", [x, h_prev, p], GRU_CELL_WRT,
                     unpack=_gradients(GRU_CELL_WRT), out_names=("out",),
                     candidates=partial(t.data, "gating_gru_cell_backward_suspects", x, h_prev, p))


@hidden("gru_cell_backward")
def gru_cell_backward_gradient_checks(t):
    """dx, dh_prev, dWx, dWh, dbx, dbh against centered differences, random dh (N=3, D=4, H=5)"""
    _gru_cell_backward_check(t, t.rng.normal(size=(N, D)), t.rng.normal(size=(N, H)), _gru_params(t.rng))


@hidden("gru_cell_backward")
def gru_cell_backward_single_example(t):
    """N = 1, D = 2, H = 3"""
    _gru_cell_backward_check(t, t.rng.normal(size=(1, 2)), t.rng.normal(size=(1, 3)), _gru_params(t.rng, 2, 3))


def _lstm_variant(x, h_prev, c_prev, p, order="ifgo", h_tanh=True):
    hh = h_prev.shape[1]
    a = x @ p["Wx"] + h_prev @ p["Wh"] + p["b"]
    block = {name: a[:, i * hh:(i + 1) * hh] for i, name in enumerate(order)}
    i, f, g, o = _sig(block["i"]), _sig(block["f"]), np.tanh(block["g"]), _sig(block["o"])
    c = f * c_prev + i * g
    return (o * np.tanh(c) if h_tanh else o * c), c


LSTM_MISTAKES = {
    "gate order: the columns are read as i, f, o, g; the contract's order is i, f, g, o.": dict(order="ifog"),
    "gate order: i and f are swapped; the contract's order is i, f, g, o.": dict(order="figo"),
    "gate order: the columns are read as g, i, f, o; the contract's order is i, f, g, o.": dict(order="gifo"),
    "h = o * c: the cell is squashed before it is shown, h = o * tanh(c).": dict(h_tanh=False),
}


@generates("gating_lstm_cell_suspects")
def lstm_cell_suspects(source, x, h_prev, c_prev, p):
    """What lstm_cell_forward's named mistakes return.

    Inputs:
      x: (N, D); h_prev: (N, H); c_prev: (N, H); p: {"Wx": (D, 4H), "Wh": (H, 4H), "b": (4H,)}.
    Returns:
      {"h": {mistake: h (N, H)}, "c": {mistake: c (N, H)}}
    """
    found = {"h": {}, "c": {}}
    for text, kw in LSTM_MISTAKES.items():
        found["h"][text], found["c"][text] = _lstm_variant(x, h_prev, c_prev, p, **kw)
    return found


@hidden("lstm_cell_forward")
def lstm_cell_gate_order_h_and_c(t):
    """random inputs (N=3, D=4, H=5) and N = 1: gate order i, f, g, o; h and c"""
    for n, d, hh in ((N, D, H), (1, 2, 3)):
        args = [t.rng.normal(size=(n, d)), t.rng.normal(size=(n, hh)), t.rng.normal(size=(n, hh)) * 2,
                _lstm_params(t.rng, d, hh)]
        suspects = t.data("gating_lstm_cell_suspects", *args)
        t.agrees("lstm_cell_forward", *args, pick=lambda r: r[1], what="c from lstm_cell_forward",
                 candidates=suspects["c"])
        t.agrees("lstm_cell_forward", *args, pick=lambda r: r[0], what="h from lstm_cell_forward",
                 candidates=suspects["h"])


@hidden("lstm_cell_forward")
def lstm_cell_saturated_gates(t):
    """large weights that saturate every gate, without warnings"""
    args = [t.rng.normal(size=(N, D)), t.rng.normal(size=(N, H)), t.rng.normal(size=(N, H)),
            _lstm_params(t.rng, scale=400.0)]
    t.agrees("lstm_cell_forward", *args, pick=lambda r: r[0], what="h from lstm_cell_forward",
             hint="use the given stable sigmoid.")


def _lstm_wrong_backward(x, h_prev, c_prev, p, dh, dc, mode):
    hh = h_prev.shape[1]
    a = x @ p["Wx"] + h_prev @ p["Wh"] + p["b"]
    i, f, g, o = (_sig(a[:, :hh]), _sig(a[:, hh:2 * hh]), np.tanh(a[:, 2 * hh:3 * hh]), _sig(a[:, 3 * hh:]))
    c = f * c_prev + i * g
    tc = np.tanh(c)
    through_h = dh * o * (1 - tc * tc)
    dc_total = {"ignore dc": through_h, "no tanh'": dc + dh * o, "no o": dc + dh * (1 - tc * tc),
                "times": dc * through_h}.get(mode, dc + through_h)
    dc_prev = dc * f if mode == "dc_prev without h" else dc_total * f
    da = np.concatenate([dc_total * g * i * (1 - i), dc_total * c_prev * f * (1 - f), dc_total * i * (1 - g * g),
                         dh * tc * o * (1 - o)], axis=1)
    return {"dx": da @ p["Wx"].T, "dh_prev": da @ p["Wh"].T, "dc_prev": dc_prev, "dWx": x.T @ da,
            "dWh": h_prev.T @ da, "db": da.sum(axis=0)}


LSTM_BACKWARD_MISTAKES = {
    "ignore dc": "dc (the gradient arriving along the cell state) is ignored: dc_total = dc + dh * o * (1 - tanh(c)**2).",
    "no tanh'": "the path through h is added without tanh's slope: dc_total = dc + dh * o * (1 - tanh(c)**2).",
    "no o": "the path through h is added without the output gate: dc_total = dc + dh * o * (1 - tanh(c)**2).",
    "times": "dc and the path through h are multiplied; they are two paths to c, so they add.",
    "dc_prev without h": "dc_prev = dc * f leaves out the path through h: use dc_total * f.",
}


@generates("gating_lstm_cell_backward_suspects")
def lstm_cell_backward_suspects(source, x, h_prev, c_prev, p, douts):
    """What lstm_cell_backward's named mistakes return.

    Inputs:
      x: (N, D); h_prev: (N, H); c_prev: (N, H); p: {"Wx": (D, 4H), "Wh": (H, 4H), "b": (4H,)};
      douts: [dh (N, H), dc (N, H)].
    Returns:
      {gradient name (dx, dh_prev, dc_prev, dWx, dWh, db): {mistake: that gradient, shaped like its input}}
    """
    dh, dc = douts
    found = {}
    for mode, text in LSTM_BACKWARD_MISTAKES.items():
        for name, value in _lstm_wrong_backward(x, h_prev, c_prev, p, dh, dc, mode).items():
            found.setdefault(name, {})[text] = value
    return found


def _lstm_cell_backward_check(t, args):
    t.backward_check("lstm_cell_forward", "lstm_cell_backward", args, LSTM_WRT, unpack=_gradients(LSTM_WRT),
                     n_out=2, out_names=("h", "c"),
                     candidates=partial(t.data, "gating_lstm_cell_backward_suspects", *args))


@hidden("lstm_cell_backward")
def lstm_cell_backward_gradient_checks(t):
    """all gradients against centered differences of sum(h*dh) + sum(c*dc), random dh and dc (N=3, D=4, H=5)"""
    _lstm_cell_backward_check(t, [t.rng.normal(size=(N, D)), t.rng.normal(size=(N, H)), t.rng.normal(size=(N, H)),
                                  _lstm_params(t.rng)])


@hidden("lstm_cell_backward")
def lstm_cell_backward_single_example(t):
    """N = 1, D = 2, H = 3"""
    _lstm_cell_backward_check(t, [t.rng.normal(size=(1, 2)), t.rng.normal(size=(1, 3)), t.rng.normal(size=(1, 3)),
                                  _lstm_params(t.rng, 2, 3)])


# -- Part 4: the GRU over a sequence, and the memory task -----------------------------------------------------

def _gru_sequence(X, h0, p, start_from_zero=False, shifted=False, **variant):
    """The states of a GRU over X, or of one of the classic mistakes: `start_from_zero` ignores h0, `shifted`
    keeps the state before each step, `variant` is a GRU_MISTAKES entry for every step. Returns (N, T, H)."""
    h = np.zeros_like(h0) if start_from_zero else h0
    states = []
    for t in range(X.shape[1]):
        if shifted:
            states.append(h)
        h = _gru_variant(X[:, t], h, p, **variant)
        if not shifted:
            states.append(h)
    return np.stack(states, axis=1)


@hidden("gru_forward")
def gru_forward_random_sequences(t):
    """random sequences (N=3, T=4, D=4, H=5), h0 used, H[:, t] is the state after x_t, N = 1"""
    for n, steps, d, hh in ((N, T, D, H), (1, 6, 2, 3)):
        X, h0, p = t.rng.normal(size=(n, steps, d)), t.rng.normal(size=(n, hh)), _gru_params(t.rng, d, hh)
        t.agrees("gru_forward", X, h0, p, pick=lambda r: r[0], what="H from gru_forward",
                 candidates={"h0 is ignored: the first step must start from the given h0.":
                                 _gru_sequence(X, h0, p, start_from_zero=True),
                             "H[:, t] is the state before reading x_t: append the new state after each step.":
                                 _gru_sequence(X, h0, p, shifted=True),
                             **{text: _gru_sequence(X, h0, p, **kw) for text, kw in GRU_MISTAKES.items()}})


@hidden("gru_forward")
def gru_forward_one_step_is_one_cell(t):
    """T = 1 gives exactly one gru_cell_forward step"""
    X, h0, p = t.rng.normal(size=(N, 1, D)), t.rng.normal(size=(N, H)), _gru_params(t.rng)
    t.agrees("gru_forward", X, h0, p, pick=lambda r: r[0], what="H from gru_forward with T = 1")


@generates("gating_gru_backward_suspects")
def gru_backward_suspects(source, X, h0, p, douts):
    """What gru_backward's named mistakes return, from the reference's GRU cell.

    Inputs:
      X: (N, T, D); h0: (N, H); p: {"Wx": (D, 3H), "Wh": (H, 3H), "bx": (3H,), "bh": (3H,)}; douts: [dH (N, T, H)].
    Returns:
      {gradient name (dX, dh0, dWx, dWh, dbx, dbh): {mistake: that gradient, shaped like its input}}
    """
    cell_forward, cell_backward = source.function("gru_cell_forward"), source.function("gru_cell_backward")
    dH = douts[0]
    h, caches = h0, []
    for step in range(X.shape[1]):
        h, cache = cell_forward(X[:, step], h, p)
        caches.append(cache)
    dropped = [cell_backward(dH[:, step], caches[step]) for step in range(X.shape[1])]
    text = ("BPTT drops the gradient flowing through h between steps: step t must backpropagate "
            "dH[:, t] + the dh_prev handed back by step t+1.")
    found = {"dX": {text: np.stack([r[0] for r in dropped], axis=1)}, "dh0": {text: dropped[0][1]}}
    for k in GRU_PARAM_NAMES:
        found[f"d{k}"] = {text: sum(r[2][k] for r in dropped)}
    dh_next, per_step = np.zeros_like(h0), []
    for step in reversed(range(X.shape[1])):
        dx, dh_next, g = cell_backward(dH[:, step] + dh_next, caches[step])
        per_step.append(g)
    for k in GRU_PARAM_NAMES:
        found[f"d{k}"]["the parameter gradients are overwritten at each step, not summed over time (only step 0 "
                       "is left)."] = per_step[-1][k]
        found[f"d{k}"]["the parameter gradients come from the last step only: sum them over all T steps."] = \
            per_step[0][k]
    return found


@hidden("gru_backward")
def gru_backward_through_time(t):
    """dX, dh0 and every parameter gradient against centered differences, random dH (N=3, T=4, D=4, H=5)"""
    X, h0, p = t.rng.normal(size=(N, T, D)), t.rng.normal(size=(N, H)), _gru_params(t.rng)
    t.backward_check("gru_forward", "gru_backward", [X, h0, p], GRU_SEQ_WRT, unpack=_gradients(GRU_SEQ_WRT),
                     out_names=("out",), candidates=partial(t.data, "gating_gru_backward_suspects", X, h0, p))


@hidden("gru_backward")
def gru_backward_loss_on_the_last_step_only(t):
    """a loss on the last state only (dH zero before T-1) still reaches x_0 and h0 (N=1, T=3)"""
    X, h0, p = t.rng.normal(size=(1, 3, 2)), t.rng.normal(size=(1, 3)), _gru_params(t.rng, 2, 3)
    result = t.call("gru_forward", X, h0, p)
    t.close(t.part(result, lambda r: r[0], "gru_forward"), t.ref("gru_forward")(X, h0, p)[0], "H from gru_forward")
    dH = np.zeros((1, 3, 3))
    dH[:, -1] = t.rng.normal(size=3)
    back = t.call("gru_backward", dH, t.part(result, lambda r: r[1], "gru_forward"))
    ref = t.ref("gru_forward")
    loss = lambda value: float(np.sum(ref(value, h0, p)[0] * dH))  # noqa: E731
    text = ("BPTT drops the gradient flowing through h between steps: only the last step receives a gradient "
            "here, and it must be handed back to every earlier step.")
    dX = t.part(back, lambda r: r[0], "gru_backward")
    t.gradient(dX, numerical_gradient(loss, X), "dX from gru_backward (loss on the last state only)",
               candidates={text: np.concatenate([np.zeros((1, 2, 2)), t.array(dX, "dX")[:, 2:]], axis=1)})
    t.gradient(t.part(back, lambda r: r[1], "gru_backward"),
               numerical_gradient(lambda value: float(np.sum(ref(X, value, p)[0] * dH)), h0),
               "dh0 from gru_backward (loss on the last state only)", candidates={text: np.zeros((1, 3))})


@hidden("train_gated_memory")
def the_gru_remembers_and_the_rnn_does_not(t):
    """50 filler tokens: GRU >= 0.95 and plain RNN <= 1/K + 0.1 validation accuracy, each within 12 s"""
    X_tr, y_tr = _memory_task(t.rng, 2000)
    X_va, y_va = _memory_task(t.rng, 500)
    data = (X_tr, y_tr, X_va, y_va)
    accuracy, seconds = _train_and_score(t, "gru", data, int(t.rng.integers(1 << 30)))
    t.require(accuracy >= 0.95, f"with cell=\"gru\" the validation accuracy is {accuracy:.3f}, below 0.95 "
              f"(K = {KEYS} keys, {LENGTH} filler tokens, {len(y_tr)} training sequences).",
              cause="the key does not survive 50 steps: check gru_backward first, then the update-gate bias "
                    "(bx[H:2H] = 3), Adam with lr = 1e-2, clipping, and the read-out of H[:, -1].",
              hint="print the loss every 20 steps: it should fall from log(V) to near 0 within ~100 steps.")
    t.require(seconds <= TIME_LIMIT, f"training the GRU took {seconds:.1f} s, more than {TIME_LIMIT:.0f} s.",
              hint="train fewer steps or a smaller hidden size; a minibatch of 64 and 120 steps is enough.")
    accuracy, seconds = _train_and_score(t, "rnn", data, int(t.rng.integers(1 << 30)))
    t.require(accuracy <= 1.0 / KEYS + 0.1,
              f"with cell=\"rnn\" the validation accuracy is {accuracy:.3f}, above 1/K + 0.1 = {1 / KEYS + 0.1:.2f}: "
              "the plain RNN was expected to stay near chance.",
              cause="cell=\"rnn\" does not train the given plain tanh RNN with the same budget as the GRU "
                    "(cell ignored, or more steps, or a gated cell used for both).",
              hint="with cell=\"rnn\" use rnn_forward/rnn_backward and exactly the same config as for the GRU.")
    t.require(seconds <= TIME_LIMIT, f"training the RNN took {seconds:.1f} s, more than {TIME_LIMIT:.0f} s.")


# -- Part 5: mixture of experts -------------------------------------------------------------------------------

def _moe_variant(X, p, top_k, gates="renormalized", ties="lower"):
    logits = X @ p["Wr"]
    probs = _softmax(logits)
    order = np.argsort(-probs, axis=1, kind="stable") if ties == "lower" else np.argsort(probs, axis=1, kind="stable")[:, ::-1]
    chosen = order[:, :top_k]
    if gates == "renormalized":
        w = np.take_along_axis(probs, chosen, axis=1)
        w = w / w.sum(axis=1, keepdims=True)
    elif gates == "raw probabilities":
        w = np.take_along_axis(probs, chosen, axis=1)
    elif gates == "raw logits":
        w = np.take_along_axis(logits, chosen, axis=1)
    elif gates == "renormalized logits":
        w = np.take_along_axis(logits, chosen, axis=1)
        w = w / w.sum(axis=1, keepdims=True)
    out = np.zeros(X.shape)
    for slot in range(top_k):
        for n in range(X.shape[0]):
            e = chosen[n, slot]
            y = np.maximum(X[n] @ p["W1"][e] + p["b1"][e], 0) @ p["W2"][e] + p["b2"][e]
            out[n] += w[n, slot] * y
    return out


def _dense_mixture(X, p, top_k):
    probs = _softmax(X @ p["Wr"])
    out = np.zeros(X.shape)
    for e in range(p["Wr"].shape[1]):
        out += probs[:, e:e + 1] * (np.maximum(X @ p["W1"][e] + p["b1"][e], 0) @ p["W2"][e] + p["b2"][e])
    return out


MOE_FORWARD_MISTAKES = {
    "the chosen probabilities are not renormalized: divide them by their sum over the chosen k.":
        dict(gates="raw probabilities"),
    "the outputs are weighted by the router logits: take the softmax first and weight by probabilities.":
        dict(gates="raw logits"),
    "the gates are the router logits renormalized: renormalize the softmax probabilities, not the logits.":
        dict(gates="renormalized logits"),
}


@generates("gating_moe_forward_suspects")
def moe_forward_suspects(source, X, p, top_k):
    """What moe_forward's named mistakes return.

    Inputs:
      X: (N, D); p: {"Wr": (D, E), "W1": (E, D, F), "b1": (E, F), "W2": (E, F, D), "b2": (E, D)}; top_k: int.
    Returns:
      {mistake: out (N, D)}
    """
    found = {text: _moe_variant(X, p, top_k, **kw) for text, kw in MOE_FORWARD_MISTAKES.items()}
    found["every expert is used, weighted by its probability: keep only each token's top_k experts."] = \
        _dense_mixture(X, p, top_k)
    return found


@generates("gating_moe_separated_inputs")
def moe_separated_inputs(source, rng, n, top_k, d=D, e=E, f=F, tries=200):
    """Inputs whose top-k choice and ReLU pattern do not change under a 1e-6 nudge (for gradient checks).

    Inputs:
      rng: np.random.Generator (advanced); n: tokens; top_k: experts per token; d, e, f: the sizes D, E, F.
    Returns:
      (X (n, d), p as from graders.visible.gating._moe_params)
    """
    for _ in range(tries):
        X, p = rng.normal(size=(n, d)), _moe_params(rng, d, e, f)
        probs = np.sort(_softmax(X @ p["Wr"]), axis=1)[:, ::-1]
        gap = probs[:, top_k - 1] - probs[:, top_k] if top_k < e else np.ones(n)
        pre = np.einsum("nd,edf->enf", X, p["W1"]) + p["b1"][:, None, :]
        if gap.min() > 1e-3 and np.abs(pre).min() > 1e-4:
            return X, p
    raise RuntimeError("no well-separated MoE inputs found")


@hidden("moe_forward")
def moe_forward_top_k_renormalized_probabilities(t):
    """random inputs (N=5, D=4, E=4, F=6) for top_k = 1, 2, 3: renormalized probabilities, not logits"""
    for top_k in (2, 3, 1):
        X, p = t.data("gating_moe_separated_inputs", t.rng, 5, top_k)
        t.agrees("moe_forward", X, p, top_k, pick=lambda r: r[0], what=f"out from moe_forward (top_k = {top_k})",
                 candidates=t.data("gating_moe_forward_suspects", X, p, top_k))


@hidden("moe_forward")
def moe_forward_all_experts_and_one_token(t):
    """top_k = E is the dense softmax mixture; N = 1"""
    X, p = t.data("gating_moe_separated_inputs", t.rng, 4, E)
    t.agrees("moe_forward", X, p, E, pick=lambda r: r[0], what="out from moe_forward (top_k = E)",
             candidates=t.data("gating_moe_forward_suspects", X, p, E))
    X, p = t.data("gating_moe_separated_inputs", t.rng, 1, 2, d=3, e=5, f=2)
    t.agrees("moe_forward", X, p, 2, pick=lambda r: r[0], what="out from moe_forward (N = 1, E = 5)",
             candidates=t.data("gating_moe_forward_suspects", X, p, 2))


@hidden("moe_forward")
def moe_forward_ties_go_to_the_lower_index(t):
    """equal router probabilities: the expert with the lower index wins"""
    text = "ties go to the higher index (e.g. np.argsort(p)[:, ::-1]); use np.argsort(-p, kind=\"stable\")."
    X, p = t.rng.normal(size=(N, D)), _moe_params(t.rng)
    p["Wr"] = np.zeros((D, E))  # every expert equally likely
    for top_k in (1, 2, 3):
        t.agrees("moe_forward", X, p, top_k, pick=lambda r: r[0], what=f"out from moe_forward (all tied, top_k = {top_k})",
                 candidates={text: _moe_variant(X, p, top_k, ties="higher")})
    X = np.abs(t.rng.normal(size=(N, D))) + 0.5
    p = _moe_params(t.rng)
    p["Wr"] = np.zeros((D, E))
    p["Wr"][:, 1] = p["Wr"][:, 2] = 1.0  # experts 1 and 2 tie for first place
    t.agrees("moe_forward", X, p, 1, pick=lambda r: r[0], what="out from moe_forward (experts 1 and 2 tied, top_k = 1)",
             candidates={text: _moe_variant(X, p, 1, ties="higher")})


def _router_part(X, p, top_k, dout):
    """The contribution of the router path to dX, from the reference formulas."""
    probs = _softmax(X @ p["Wr"])
    chosen = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    w = np.take_along_axis(probs, chosen, axis=1)
    s = w.sum(axis=1, keepdims=True)
    w = w / s
    dgates = np.zeros((X.shape[0], top_k))
    for n in range(X.shape[0]):
        for slot in range(top_k):
            e = chosen[n, slot]
            y = np.maximum(X[n] @ p["W1"][e] + p["b1"][e], 0) @ p["W2"][e] + p["b2"][e]
            dgates[n, slot] = dout[n] @ y
    dchosen = (dgates - np.sum(dgates * w, axis=1, keepdims=True)) / s
    dprobs = np.zeros(probs.shape)
    np.put_along_axis(dprobs, chosen, dchosen, axis=1)
    dlogits = probs * (dprobs - np.sum(dprobs * probs, axis=1, keepdims=True))
    return dlogits @ p["Wr"].T


@generates("gating_moe_backward_suspects")
def moe_backward_suspects(source, X, p, top_k, douts):
    """What moe_backward's named mistakes return, around the reference's dX.

    Inputs:
      X: (N, D); p: {"Wr": (D, E), "W1": (E, D, F), "b1": (E, F), "W2": (E, F, D), "b2": (E, D)}; top_k: int;
      douts: [dout (N, D)].
    Returns:
      {gradient name ("dWr", "dX"): {mistake: that gradient, shaped like its input}}
    """
    dout = douts[0]
    dX = source.function("moe_backward")(dout, source.function("moe_forward")(X, p, top_k)[1])[0]
    probs = _softmax(X @ p["Wr"])
    chosen = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    # the gradient of the gates, as if they were the raw probabilities (renormalization Jacobian missing)
    dgates = np.zeros((X.shape[0], top_k))
    for n in range(X.shape[0]):
        for slot in range(top_k):
            e = chosen[n, slot]
            y = np.maximum(X[n] @ p["W1"][e] + p["b1"][e], 0) @ p["W2"][e] + p["b2"][e]
            dgates[n, slot] = dout[n] @ y
    dprobs = np.zeros(probs.shape)
    np.put_along_axis(dprobs, chosen, dgates, axis=1)
    dlogits = probs * (dprobs - np.sum(dprobs * probs, axis=1, keepdims=True))
    no_router = "no gradient reaches the router: dout·y_e → renormalization → softmax backward → dWr = X.T @ dlogits."
    raw = "the router gradient ignores the renormalization: dp_e = (dw_e - sum_j dw_j w_j) / sum of the chosen p."
    router_part = _router_part(X, p, top_k, dout)
    return {"dWr": {no_router: np.zeros_like(p["Wr"]), raw: X.T @ dlogits},
            "dX": {"dX leaves out the router's share dlogits @ Wr.T (X feeds the router too).": dX - router_part,
                   raw: dX - router_part + dlogits @ p["Wr"].T}}


def _moe_backward_check(t, X, p, top_k, named=True):
    """t.backward_check of moe_backward; `named`: with the named mistakes (off where the inputs are too
    special for them, e.g. an idle expert)."""
    t.backward_check("moe_forward", "moe_backward", [X, p, top_k], MOE_WRT, unpack=_gradients(MOE_WRT),
                     out_names=("out",),
                     candidates=partial(t.data, "gating_moe_backward_suspects", X, p, top_k) if named else None)


@hidden("moe_backward")
def moe_backward_gradient_checks_with_the_router(t):
    """every gradient, the router's included, against centered differences, top_k = 2 and 3 (N=5, D=4, E=4, F=6)"""
    for top_k in (2, 3):
        X, p = t.data("gating_moe_separated_inputs", t.rng, 5, top_k)
        _moe_backward_check(t, X, p, top_k)


@hidden("moe_backward")
def moe_backward_top1_router_gets_no_gradient(t):
    """top_k = 1: the gate is exactly 1, so dWr is exactly zero; the experts' gradients are still right"""
    X, p = t.data("gating_moe_separated_inputs", t.rng, 6, 1)
    _moe_backward_check(t, X, p, 1)
    result = t.call("moe_forward", X, p, 1)
    back = t.call("moe_backward", t.rng.normal(size=X.shape), t.part(result, lambda r: r[1], "moe_forward"))
    dWr = t.part(back, lambda r: r[1]["Wr"], "moe_backward")
    t.close(dWr, np.zeros_like(p["Wr"]), "dWr with top_k = 1", atol=1e-12, rtol=0,
            cause="with top_k = 1 the gate p_e / p_e is exactly 1 whatever the router says, so no gradient reaches it.",
            hint="dp_e = (dw_e - sum_j dw_j w_j) / s is exactly 0 when k = 1.")


@hidden("moe_backward")
def moe_backward_idle_expert_and_one_token(t):
    """an expert that gets no token has zero gradients (no crash); N = 1"""
    X, p = t.data("gating_moe_separated_inputs", t.rng, 5, 2)
    X = X.copy()
    X[:, 0] = np.abs(X[:, 0]) + 1.0
    p["Wr"][0, 3] = -30.0  # expert 3 is never among the top 2
    _moe_backward_check(t, X, p, 2, named=False)
    X, p = t.data("gating_moe_separated_inputs", t.rng, 1, 2, d=3, e=5, f=2)
    _moe_backward_check(t, X, p, 2, named=False)


def _balance_candidates(n):
    return {"the factor E is missing: the loss is E * sum_e f_e * P_e (1 for perfect balance).":
                lambda p, i, e: float(np.sum(np.bincount(i, minlength=e) / len(i) * p.mean(axis=0))),
            "f is computed from the probabilities: f_e is the fraction of tokens whose top-1 expert is e "
            "(np.bincount of expert_index).": lambda p, i, e: float(e * np.sum(p.mean(axis=0) ** 2)),
            f"f counts tokens instead of taking the fraction: divide the counts by N = {n}.":
                lambda p, i, e: float(e * np.sum(np.bincount(i, minlength=e) * p.mean(axis=0)))}


@hidden("load_balancing_loss")
def random_routers_factor_e_and_counts(t):
    """random routers (N=10, E=4 and E=6): the factor E, f from the expert indices"""
    for n, e in ((10, 4), (7, 6)):
        probs = _softmax(t.rng.normal(size=(n, e)) * 2)
        index = np.argsort(-probs, axis=1, kind="stable")[:, 0]
        t.agrees("load_balancing_loss", probs, index, e, scalar=True, candidates=_balance_candidates(n))


@hidden("load_balancing_loss")
def idle_experts_and_one_token(t):
    """experts that get no token (the last one included), and N = 1"""
    probs = _softmax(t.rng.normal(size=(6, 5)))
    index = np.array([0, 0, 1, 0, 1, 1])
    t.agrees("load_balancing_loss", probs, index, 5, scalar=True, candidates=_balance_candidates(6),
             hint="np.bincount(expert_index, minlength=n_experts): experts with no token count 0.")
    probs = _softmax(t.rng.normal(size=(1, 3)))
    t.agrees("load_balancing_loss", probs, np.array([2]), 3, scalar=True)
