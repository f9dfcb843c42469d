"""Hidden checks of assignment 02_mlp, and the generators its visible checks ask through `t.data`.

Hidden checks: random inputs with distinct non-square dimensions, extreme logits (+-1000, +-1e4), N = 1, several
numbers of layers, unchanged inputs, and, for the random initializers, distribution statistics of large samples
(never particular random numbers). Each `candidates` entry names a classic mistake by the output it would produce.

Generators (`@generates`, names prefixed "mlp_"): the outputs of named mistakes and the standard deviations of
the initialization schemes. Several are a correct solution with one option changed, so they stay here; the
visible checks get their outputs from the check data, and the hidden checks ask them live through `t.data`.
"""

import numpy as np

from ..checks import diagnose
from ..checks.failures import Failure
from ..checks.registry import checks_for
from ..visible.mlp import (
    _LAST_AXIS,
    _MLP_HINT,
    OUT,
    _check_ce,
    _check_init_dense,
    _check_mlp_params,
    _check_predict,
    _check_weight_distribution,
    _explained,
)
from . import generates

_, hidden = checks_for("02_mlp")


def _mlp_params(rng, sizes):
    return {key: value for i, (a, c) in enumerate(zip(sizes[:-1], sizes[1:]), start=1)
            for key, value in ((f"W{i}", rng.normal(size=(a, c)) * np.sqrt(2 / a)), (f"b{i}", rng.normal(size=c) * 0.5))}


EXTREME_LOGITS = np.array([[1000.0, 0.0, -1000.0, 1.0],
                           [1e4, 1e4, -1e4, 0.0],
                           [-1e4, -1e4 + 1.0, -1e4 + 2.0, -1e4],
                           [-1000.0, -999.0, -998.0, -1000.0],
                           [0.5, -0.5, 2.0, 1.0]])


_SOFTMAX_OVERFLOW = ("np.exp of large logits overflows (exp(710) is inf; inf / inf is nan): subtract each row's max "
                     "first, z - np.max(z, axis=-1, keepdims=True); a softmax does not change when a constant is "
                     "subtracted from a row. If you already subtract a max: it must be each row's own max, not the "
                     "max of the whole array, or a row far below it underflows to all zeros and gives 0 / 0.")


def _log_softmax_cause():
    return ("np.log(softmax(z)), or a log of a sum of unshifted exponentials: softmax underflows to exactly 0 for a "
            "logit ~745 below its row's max and log(0) = -inf (and exp(710) overflows). Use the log-sum-exp trick: "
            "(z - m) - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True)) with m the row max.")


# -- Part 1: initialization --------------------------------------------------------------------------------

@generates("mlp_init_std_formulas")
def init_std_formulas(source, fan_in, fan_out):
    """Standard deviations students compute for init_dense, by the scheme (or the mistake) that gives them.

    Inputs:
      fan_in, fan_out: the layer's numbers of inputs and outputs (ints)
    Returns:
      {key: (std, description)}: std a float; "he" and "xavier" are the contract's schemes, every other key a
      mistaken formula whose description names it.
    """
    total = fan_in + fan_out
    return {
        "he": (np.sqrt(2 / fan_in), "He: sqrt(2 / fan_in)"),
        "xavier": (np.sqrt(2 / total), "Xavier: sqrt(2 / (fan_in + fan_out))"),
        "he_fan_out": (np.sqrt(2 / fan_out), "He computed with fan_out, sqrt(2 / fan_out): He scales by the "
                                             "layer's inputs, sqrt(2 / fan_in)"),
        "lecun": (np.sqrt(1 / fan_in), "sqrt(1 / fan_in) (LeCun): He has a 2 on top, for the half a ReLU "
                                       "zeroes"),
        "xavier_no_2": (np.sqrt(1 / total), "Xavier without the 2, sqrt(1 / (fan_in + fan_out))"),
        "xavier_uniform": (np.sqrt(6 / total), "the Xavier *uniform* bound sqrt(6 / (fan_in + fan_out)) used as "
                                               "the std of a normal: the normal Xavier std is sqrt(2 / (fan_in + "
                                               "fan_out))"),
        "xavier_fan_in": (np.sqrt(1 / (2 * fan_in)), "Xavier as sqrt(1 / (2 fan_in))"),
        "var_he": (2 / fan_in, "the variance 2 / fan_in used as the std: take its square root"),
        "var_xavier": (2 / total, "the variance 2 / (fan_in + fan_out) used as the std: take its square root"),
        "unscaled": (1.0, "standard normal draws never multiplied by the std"),
    }


@hidden("init_dense")
def he_spread_on_a_large_non_square_layer(t):
    """He: std sqrt(2/fan_in) on a 600 x 900 layer, mean 0, normal, b zeros"""
    _check_init_dense(t, 600, 900, "he", 11)


@hidden("init_dense")
def xavier_spread_on_a_large_non_square_layer(t):
    """Xavier: std sqrt(2/(fan_in+fan_out)) on a 900 x 300 layer, mean 0, normal, b zeros"""
    _check_init_dense(t, 900, 300, "xavier", 12)


@hidden("init_dense")
def he_is_the_default(t):
    """without a scheme argument the scheme is 'he' (a 700 x 250 layer)"""
    _check_init_dense(t, 700, 250, None, 13)


@hidden("init_dense")
def other_schemes_raise_value_error(t):
    """ValueError for 'glorot', 'normal' and ''"""
    for scheme in ("glorot", "normal", ""):
        t.raises(ValueError, "init_dense", 5, 4, np.random.default_rng(0), scheme,
                 hint="only 'he' and 'xavier' are valid: else: raise ValueError(...).")


@hidden("init_dense")
def draws_only_from_the_rng_given(t):
    """same seed same W, other seed other W, the global np.random state untouched"""
    global_state = np.random.get_state()
    try:
        first = t.array(t.part(t.call("init_dense", 40, 30, np.random.default_rng(2024)), lambda r: r[0],
                               "init_dense"), "W")
        again = t.array(t.part(t.call("init_dense", 40, 30, np.random.default_rng(2024)), lambda r: r[0],
                               "init_dense"), "W")
        other = t.array(t.part(t.call("init_dense", 40, 30, np.random.default_rng(2025)), lambda r: r[0],
                               "init_dense"), "W")
        after = np.random.get_state()
    finally:
        np.random.set_state(global_state)
    t.require(first.shape == again.shape and np.array_equal(first, again),
              "two generators seeded alike (np.random.default_rng(2024)) gave different W.",
              cause="init_dense draws from somewhere other than rng: np.random.randn / np.random.normal (the global "
                    "state), or a new np.random.default_rng() made inside the function.",
              hint="draw every number from the rng argument: rng.normal(0.0, std, size=(fan_in, fan_out)).")
    t.require(not np.array_equal(first, other),
              "generators seeded differently (2024 and 2025) gave the same W.",
              cause="init_dense ignores rng: a fixed seed inside the function (np.random.seed / default_rng(0)).",
              hint="draw every number from the rng argument.")
    t.require(after[0] == global_state[0] and np.array_equal(after[1], global_state[1]) and after[2] == global_state[2],
              "init_dense changed the global np.random state.",
              cause="it draws from (or seeds) np.random, the global generator, as well as or instead of rng.",
              hint="use only the rng argument: rng.normal(...).")


@hidden("init_mlp")
def keys_shapes_and_zero_biases(t):
    """3 layers [6, 9, 7, 3] and 1 layer [5, 2]: exact keys, shapes, zero biases"""
    _check_mlp_params(t, [6, 9, 7, 3], np.random.default_rng(1))
    _check_mlp_params(t, [5, 2], np.random.default_rng(2))


@hidden("init_mlp")
def the_scheme_is_passed_on(t):
    """scheme='xavier' and the default 'he' reach every layer ([500, 700, 300])"""
    sizes = [500, 700, 300]
    for scheme in ("xavier", None):
        arrays = _check_mlp_params(t, sizes, np.random.default_rng(3), scheme)
        for i in (1, 2):
            _check_weight_distribution(
                t, arrays[f"W{i}"], sizes[i - 1], sizes[i], scheme or "he",
                f"W{i} of init_mlp({sizes}, rng" + (f", {scheme!r})" if scheme else ")"),
                scheme_hint="pass scheme on: init_dense(fan_in, fan_out, rng, scheme).")


@hidden("init_mlp")
def one_rng_for_every_layer(t):
    """the same seed gives the same params; layers of equal shape differ"""
    first = _check_mlp_params(t, [30, 30, 30, 30], np.random.default_rng(7))
    again = _check_mlp_params(t, [30, 30, 30, 30], np.random.default_rng(7))
    t.require(all(np.array_equal(first[k], again[k]) for k in first),
              "init_mlp with two generators seeded alike gave different weights.",
              cause="a draw from np.random (the global state) or a new generator instead of rng.",
              hint="pass the rng argument on to every init_dense call.")
    t.require(not (np.array_equal(first["W1"], first["W2"]) or np.array_equal(first["W2"], first["W3"])),
              "two layers of init_mlp([30, 30, 30, 30], rng) have identical weights.",
              cause="each layer restarts a generator from the same seed (or copies one layer's weights).",
              hint="pass the same rng object to every init_dense call: it moves on after each draw.")


# -- Part 2: layers ----------------------------------------------------------------------------------------

@generates("mlp_dense_suspects")
def dense_suspects(source, X, W, b):
    """Outputs of dense_forward's classic mistakes.

    Inputs:
      X: inputs, shape (N, D); W: weights, shape (D, H); b: biases, shape (H,)
    Returns:
      {mistake: out it gives, shape (N, H)}
    """
    return {"the bias was added to W before the product, X @ (W + b): add it after, X @ W + b.": X @ (W + b),
            "the bias is missing: out = X @ W + b.": X @ W}


@generates("mlp_relu_suspects")
def relu_suspects(source, X):
    """Outputs of relu_forward's classic mistakes shared by the visible and hidden checks.

    Inputs:
      X: inputs, any shape
    Returns:
      {mistake: out it gives, shaped like X}
    """
    return {"you returned the on/off mask (X > 0), not the values max(0, X).": (X > 0).astype(float)}


@hidden("dense_forward")
def random_non_square_and_single_example(t):
    """random X (4, 3), W (3, 5), b (5,), and N = 1"""
    for n in (4, 1):
        X, W, b = t.rng.normal(size=(n, 3)), t.rng.normal(size=(3, 5)), t.rng.normal(size=5)
        t.agrees("dense_forward", X, W, b, pick=OUT, what="out of dense_forward",
                 candidates=t.data("mlp_dense_suspects", X, W, b))


@hidden("dense_forward")
def the_bias_lines_up_with_the_columns(t):
    """N = H = 5: each b[j] is added to column j of every row, not to row j"""
    X, W, b = t.rng.normal(size=(5, 3)), t.rng.normal(size=(3, 5)), t.rng.normal(size=5) * 3
    suspects = t.data("mlp_dense_suspects", X, W, b)
    suspects["the bias is broadcast along the wrong axis (b[:, None] / b.reshape(-1, 1) adds b[i] to row i): add "
             "b of shape (H,) so that b[j] goes to column j."] = X @ W + b[:, None]
    t.agrees("dense_forward", X, W, b, pick=OUT, what="out of dense_forward", candidates=suspects)


@hidden("relu_forward")
def random_2d_and_3d_inputs_unchanged(t):
    """random (4, 6) and (2, 3, 4) inputs, exact zeros, X unchanged"""
    for shape in ((4, 6), (2, 3, 4)):
        X = t.rng.normal(size=shape)
        X.flat[0] = 0.0
        t.agrees("relu_forward", X, pick=OUT, what="out of relu_forward",
                 candidates={**t.data("mlp_relu_suspects", X),
                             "a leaky ReLU: negative inputs must give exactly 0.": np.where(X > 0, X, 0.01 * X)})


def _forward(X, params, order=None, relu_last=False, relu_between=True, relu_input=False):
    """The MLP forward pass, optionally with a classic mistake.

    Inputs:
      X: inputs, shape (N, D); params: {"W1": (D, H1), "b1": (H1,), ..., "WL": (H_{L-1}, C), "bL": (C,)}
      order: the layer numbers in the order they run (1..L by default)
      relu_last, relu_between, relu_input: a ReLU after the last layer, between layers, on X first
    Returns:
      logits, shape (N, C)
    """
    order = order or list(range(1, len(params) // 2 + 1))
    h = np.maximum(X, 0.0) if relu_input else X
    for position, i in enumerate(order):
        h = h @ params[f"W{i}"] + params[f"b{i}"]
        if (position < len(order) - 1 and relu_between) or (position == len(order) - 1 and relu_last):
            h = np.maximum(h, 0.0)
    return h


@generates("mlp_forward_suspects")
def forward_suspects(source, X, params):
    """Logits of mlp_forward's classic mistakes (those that give a different result for these params).

    Inputs:
      X: inputs, shape (N, D); params: {"W1": ..., "b1": ..., ..., "WL": ..., "bL": ...} as in mlp_forward
    Returns:
      {mistake: logits it gives, shape (N, C)}
    """
    n_layers = len(params) // 2
    suspects = {"a ReLU after the last layer: the logits must be the last dense layer's raw output.":
                _forward(X, params, relu_last=True),
                "a ReLU applied to the input X before the first layer.": _forward(X, params, relu_input=True)}
    if n_layers > 1:
        suspects["no ReLU between the layers: apply relu_forward after every dense layer except the last."] = \
            _forward(X, params, relu_between=False)
    string_order = [int(k[1:]) for k in sorted(k for k in params if k.startswith("W"))]
    if string_order != sorted(string_order):
        suspects["the layers run in string order (W1, W10, W11, W2, ...): sorted() on the keys puts '10' before "
                 "'2'; loop i = 1..L and build the key f'W{i}'."] = _forward(X, params, order=string_order)
    return suspects


@hidden("mlp_forward")
def three_layers_random(t):
    """3 layers [4, 6, 5, 3] on 7 examples, and on N = 1"""
    params = _mlp_params(t.rng, [4, 6, 5, 3])
    for n in (7, 1):
        X = t.rng.normal(size=(n, 4)) * 2
        t.agrees("mlp_forward", X, params, pick=OUT, what="logits of mlp_forward",
                 candidates=t.data("mlp_forward_suspects", X, params), hint=_MLP_HINT)


@hidden("mlp_forward")
def a_single_layer_is_linear(t):
    """1 layer [3, 4]: X @ W1 + b1, no ReLU at all"""
    params = _mlp_params(t.rng, [3, 4])
    X = t.rng.normal(size=(6, 3)) * 2
    t.agrees("mlp_forward", X, params, pick=OUT, what="logits of mlp_forward",
             candidates=t.data("mlp_forward_suspects", X, params), hint=_MLP_HINT)


@hidden("mlp_forward")
def eleven_layers_in_numeric_order(t):
    """11 layers of width 4: W1, W2, ..., W10, W11 in that order"""
    params = _mlp_params(t.rng, [4] * 12)
    X = t.rng.normal(size=(5, 4)) * 2
    t.agrees("mlp_forward", X, params, pick=OUT, what="logits of mlp_forward",
             candidates=t.data("mlp_forward_suspects", X, params), hint=_MLP_HINT)


# -- Part 3: softmax, log-softmax and the losses -----------------------------------------------------------

def _softmax_axis(z, axis):
    """The softmax of logits z (any shape) over `axis`; shaped like z."""
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


@generates("mlp_softmax_suspects")
def softmax_suspects(source, z):
    """Outputs of softmax's classic mistakes shared by the visible and hidden checks.

    Inputs:
      z: logits, shape (N, C)
    Returns:
      {mistake: probabilities it gives, shape (N, C)}
    """
    return {"softmax over axis 0 (each column sums to 1): normalize over the last axis, axis=-1.": _softmax_axis(z, 0)}


@generates("mlp_log_softmax_suspects")
def log_softmax_suspects(source, z):
    """Outputs of log_softmax's classic mistakes shared by the visible and hidden checks.

    Inputs:
      z: logits, shape (..., C)
    Returns:
      {mistake: what it gives, shaped like z}
    """
    return {"log_softmax over axis 0: use the last axis, axis=-1.": np.log(_softmax_axis(z, 0)),
            "you returned the softmax itself, not its log.": _softmax_axis(z, -1)}


def clipped_cross_entropies(p_true, expected: float) -> dict:
    """Cross-entropies of the probabilities clipped (or shifted) by a small eps before the log, the way
    Keras-style code guards log(0); only those that differ from the expected loss and from each other.

    Inputs:
      p_true: the softmax probability of each example's own class, shape (N,)
      expected: the right loss, -mean(log_softmax(z)[arange(N), y])
    Returns:
      {mistake: the loss it gives, a float}: a clip matters only where a true class is (nearly) impossible or
      certain, e.g. a logit 1e4 below the row's max, whose loss is about 1e4 rather than -log(eps).
    """
    suspects = {}
    for eps in (1e-7, 1e-8, 1e-12, 1e-15):
        mistake = (f"the probabilities are clipped at eps = {eps:g} before the log (np.clip(p, {eps:g}, ...) or "
                   f"log(p + {eps:g})): that caps the loss of an example at -log({eps:g}) = {-np.log(eps):.3g}, "
                   "while a true class whose logit is 1e4 below the best costs about 1e4. Take the "
                   "log-probabilities from log_softmax(z): they are exact and need no clipping.")
        losses = []
        for form in (np.clip(p_true, eps, 1 - eps), np.maximum(p_true, eps), p_true + eps):
            loss = float(-np.mean(np.log(form)))
            # the forms differ only where a true class is nearly certain: name the clip once per distinct loss
            if not any(np.isclose(loss, seen, rtol=1e-6, atol=1e-8) for seen in [expected] + losses):
                suspects[mistake + ("" if not losses else f" ({len(losses) + 1})")] = loss
                losses.append(loss)
    return suspects


@generates("mlp_cross_entropy_suspects")
def cross_entropy_suspects(source, z, y):
    """Losses of cross_entropy's classic mistakes; the index mix-ups only where N = C makes them run.

    Inputs:
      z: logits, shape (N, C); y: class indices, int array of shape (N,)
    Returns:
      {mistake: the loss it gives, a float}
    """
    n = len(y)
    logp = source.function("log_softmax")(z)  # exact for logits of +-1e4, where log(softmax) would be log(0)
    picked = logp[np.arange(n), y]
    suspects = {f"the sum over the batch: the loss is the mean, divide by N = {n}.": float(-np.sum(picked)),
                "the probabilities are averaged, not their logs: use -mean(log p).":
                    float(-np.mean(np.exp(picked))),
                "the sign is flipped: cross-entropy is minus the mean log-probability (a positive number).":
                    float(np.mean(picked)),
                "the logits are used as log-probabilities (no log_softmax): -mean(logits[arange(N), y]).":
                    float(-np.mean(z[np.arange(n), y]))}
    suspects.update(clipped_cross_entropies(np.exp(picked), -float(np.mean(picked))))
    if n == z.shape[1]:
        suspects["the indices are swapped, log_probs[y, np.arange(N)]: rows are examples, so "
                 "log_probs[np.arange(N), y]."] = float(-np.mean(logp[y, np.arange(n)]))
        suspects["log_probs[:, y] builds an (N, N) table (every example against every label): pair each row with "
                 "its own label, log_probs[np.arange(N), y]."] = float(-np.mean(logp[:, y]))
        suspects["y used as one-hot rows (y * log_probs): y holds class indices; pick log_probs[np.arange(N), y]."] = \
            float(-np.mean(np.sum(y * logp, axis=1)))
        suspects["y used as one-hot (y * log_probs averaged over all entries): y holds class indices; pick "
                 "log_probs[np.arange(N), y]."] = float(-np.mean(y * logp))
    return suspects


@generates("mlp_mse_suspects")
def mse_suspects(source, pred, target):
    """Losses of mse_loss's classic mistakes shared by the visible and hidden checks.

    Inputs:
      pred, target: arrays of the same shape
    Returns:
      {mistake: the loss it gives, a float}
    """
    sq = (pred - target) ** 2
    return {"the sum of the squared errors: MSE is their mean over every element.": float(np.sum(sq)),
            "0.5 * mean: our MSE has no 1/2 in front.": float(0.5 * np.mean(sq))}


@hidden("softmax")
def extreme_logits_without_warnings(t):
    """logits of +-1000 and +-1e4, rows far apart: exact, no overflow, no 0/0"""
    z = EXTREME_LOGITS.copy()
    _explained(lambda: t.agrees("softmax", z, hint="shift each row by its own max."), _SOFTMAX_OVERFLOW)


@hidden("softmax")
def the_last_axis_of_2d_input(t):
    """random (4, 6) logits: each row sums to 1, not each column"""
    z = t.rng.normal(size=(4, 6)) * 3
    _explained(lambda: t.agrees("softmax", z, candidates={
        **t.data("mlp_softmax_suspects", z),
        "the exponentials are never divided by their sum.": np.exp(z - z.max(axis=-1, keepdims=True))}),
        _LAST_AXIS)


@hidden("softmax")
def any_number_of_leading_axes(t):
    """1-D (6,), 3-D (2, 3, 5) and square (4, 4) logits, over the last axis"""
    for z in (t.rng.normal(size=6) * 3, t.rng.normal(size=(2, 3, 5)) * 3, t.rng.normal(size=(4, 4)) * 3):
        candidates = {"softmax over axis 0: normalize over the last axis, axis=-1.": _softmax_axis(z, 0)}
        if z.ndim == 3:
            candidates["softmax over axis 1: with 3-D logits (N, T, C) the classes are on the last axis; use "
                       "axis=-1."] = _softmax_axis(z, 1)
        if z.ndim == 2:
            with np.errstate(all="ignore"):
                e = np.exp(z - np.max(z, axis=-1))
            candidates["the max is subtracted without keepdims=True: an (N,) max broadcasts along the rows "
                       "instead of the columns; use keepdims=True."] = e / np.sum(e, axis=-1, keepdims=True)
        _explained(lambda: t.agrees("softmax", z, candidates=candidates), _LAST_AXIS)


@hidden("log_softmax")
def log_softmax_extreme_logits(t):
    """logits of +-1000 and +-1e4: finite, exact, no warning"""
    z = EXTREME_LOGITS.copy()
    name = "log_softmax"

    def compare():
        expected = t.ref(name)(z)
        inputs = t.describe_args(t.student(name), (z,), {})
        got = t.array(t.call(name, z), "log_softmax(...)")
        if np.shape(got) == expected.shape and not np.all(np.isfinite(got)):
            raise Failure("log_softmax(...) returned -inf or nan for finite logits.", inputs=inputs,
                          expected=diagnose.fmt(expected), got=diagnose.fmt(got), cause=_log_softmax_cause())
        t.close(got, expected, "log_softmax(...)", inputs=inputs)
    _explained(compare, _log_softmax_cause())


@hidden("log_softmax")
def random_values_over_the_last_axis(t):
    """random 2-D (5, 3), 3-D (2, 4, 6) and 1-D (7,) logits"""
    for z in (t.rng.normal(size=(5, 3)) * 4, t.rng.normal(size=(2, 4, 6)) * 4, t.rng.normal(size=7) * 4):
        candidates = {**t.data("mlp_log_softmax_suspects", z),
                      "the log-sum-exp term is missing: log_softmax is z - m - log(sum(exp(z - m))).":
                          z - z.max(axis=-1, keepdims=True)}
        if z.ndim == 3:
            candidates["log_softmax over axis 1: use the last axis, axis=-1."] = np.log(_softmax_axis(z, 1))
        _explained(lambda: t.agrees("log_softmax", z, candidates=candidates), _LAST_AXIS)


@hidden("cross_entropy")
def mean_over_the_batch(t):
    """random logits N = 7, C = 4: the mean, with each row's own label"""
    z, y = t.rng.normal(size=(7, 4)) * 2, t.rng.integers(0, 4, size=7)
    y[:4] = [0, 1, 2, 3]
    _check_ce(t, z, y, batch=7)


@hidden("cross_entropy")
def rows_are_examples_columns_are_classes(t):
    """N = C = 5, so swapped indices or one-hot use give numbers, which must be the right ones"""
    z, y = t.rng.normal(size=(5, 5)) * 2, np.array([3, 0, 4, 1, 3])
    _check_ce(t, z, y, batch=5)


@hidden("cross_entropy")
def extreme_logits_and_a_single_example(t):
    """logits of +-1e4 (right and wrong), and N = 1"""
    z = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1000.0, 1000.0, 999.0], [0.0, 0.0, 0.0]])
    y = np.array([0, 1, 2, 1])
    _explained(lambda: t.agrees("cross_entropy", z, y, scalar=True, batch=4,
                                candidates=t.data("mlp_cross_entropy_suspects", z, y)),
               _log_softmax_cause() + " In cross_entropy, call your log_softmax.", when=("NumPy warning",))
    _explained(lambda: _check_ce(t, t.rng.normal(size=(1, 6)), np.array([4])), _log_softmax_cause(),
               when=("NumPy warning",))


@hidden("mse_loss")
def the_mean_over_every_element(t):
    """(6, 3), (8,) and (2, 3, 4) inputs: the mean over all elements, no 1/2"""
    for shape in ((6, 3), (8,), (2, 3, 4)):
        pred, target = t.rng.normal(size=shape), t.rng.normal(size=shape)
        sq = (pred - target) ** 2
        suspects = {**t.data("mlp_mse_suspects", pred, target),
                    "the absolute error (MAE): square the differences.": float(np.mean(np.abs(pred - target))),
                    "the root of the mean (RMSE): MSE is not square-rooted.": float(np.sqrt(np.mean(sq)))}
        if len(shape) >= 2:
            suspects["the mean over one axis only (then a sum over the others: the same as a sum over one axis and a mean over the rest): average over every element, "
                     "np.mean((pred - target) ** 2) with no axis."] = float(np.sum(np.mean(sq, axis=0)))
            suspects["the mean over the last axis only (then a sum over the others): average over every "
                     "element, np.mean((pred - target) ** 2) with no axis."] = float(np.sum(np.mean(sq, axis=-1)))
        t.agrees("mse_loss", pred, target, scalar=True, candidates=suspects,
                 hint="np.mean((pred - target) ** 2) over every element, returned as float(...).")


# -- Part 4: decisions -------------------------------------------------------------------------------------

@generates("mlp_predict_suspects")
def predict_suspects(source, X, params):
    """Labels of predict's classic value mistakes (its shape and dtype mistakes are named by their shape).

    Inputs:
      X: inputs, shape (N, D); params: as in mlp_forward
    Returns:
      {mistake: labels it gives, int array of shape (N,)}
    """
    logits = source.function("mlp_forward")(X, params)[0]
    return {"argmin instead of argmax: the decision is the largest logit.": np.argmin(logits, axis=1)}


@generates("mlp_accuracy_suspects")
def accuracy_suspects(source, pred, y):
    """Results of accuracy's classic mistakes.

    Inputs:
      pred, y: predicted and true labels, int arrays of shape (N,)
    Returns:
      {mistake: what it returns, a float}
    """
    right = float(np.mean(pred == y))
    return {"you returned the count of correct predictions: divide by N for the fraction.": float(np.sum(pred == y)),
            "a percentage: the contract asks for a fraction in [0, 1].": 100 * right,
            "the error rate (fraction wrong): count the matches, pred == y.": 1 - right}


@hidden("predict")
def int_labels_of_a_random_three_layer_network(t):
    """a 3-layer [5, 8, 6, 4] network on 9 examples and on N = 1: int ndarray (N,)"""
    params = _mlp_params(t.rng, [5, 8, 6, 4])
    for n in (9, 1):
        _check_predict(t, t.rng.normal(size=(n, 5)) * 2, params)


@hidden("accuracy")
def a_fraction_not_a_count(t):
    """random labels (N = 20), all right, all wrong, N = 1"""
    y = t.rng.integers(0, 5, size=20)
    pred = np.where(t.rng.random(20) < 0.6, y, (y + 1) % 5)
    t.agrees("accuracy", pred, y, scalar=True, batch=20, candidates=t.data("mlp_accuracy_suspects", pred, y))
    t.agrees("accuracy", y.copy(), y, scalar=True)
    t.agrees("accuracy", (y + 1) % 5, y, scalar=True)
    t.agrees("accuracy", np.array([3]), np.array([3]), scalar=True)
    t.agrees("accuracy", np.array([2]), np.array([3]), scalar=True)


# -- the recordings the notebook draws its region picture from before the student's layers run -----------------

FIGURES_FILE = "mlp_figures.npz"


def figure_recordings() -> dict:
    """The linear-region labels the 02 notebook draws before Exercise 2.3, computed with the reference layers and
    the notebook's own figure cell (its definitions, up to where it loads the recordings).

    Returns:
      {"regions_0", "regions_1", "regions_2": int16 arrays (500, 500)}: one per network of the cell's FOLD_STACKS.
    """
    from ..tooling.course import nbgrader_meta, notebook_path, read_notebook
    from ..tooling.reference import reference

    ns = reference("02_mlp")
    cells = [cell.source for cell in read_notebook(notebook_path("02_mlp", "source")).cells
             if cell.cell_type == "code" and not nbgrader_meta(cell).get("solution")
             and "def region_map(" in cell.source]
    assert len(cells) == 1, f"{len(cells)} cells of 02_mlp define region_map"
    exec(compile(cells[0].split("\nwith np.load(")[0], "<02 figure helpers>", "exec"), ns)

    def layer(X, W, b):
        return ns["relu_forward"](ns["dense_forward"](X, W, b)[0])[0]

    return {f"regions_{k}": ns["region_map"](layer, stack).astype(np.int16)
            for k, stack in enumerate(ns["FOLD_STACKS"].values())}


def write_figure_recordings() -> None:
    """Write figure_recordings() to source/02_mlp/mlp_figures.npz (run after changing the figure or the reference:
    `.venv/bin/python -c "from graders.hidden.mlp import write_figure_recordings as w; w()"`)."""
    from ..tooling.course import course_root

    np.savez_compressed(course_root() / "source" / "02_mlp" / FIGURES_FILE, **figure_recordings())
