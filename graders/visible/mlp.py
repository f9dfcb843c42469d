"""Visible checks of mlp (shipped to students): expected values only through t.ref and t.data.

Shapes and small hand-computable values. Every named mistake's output (`candidates`) and the standard
deviations of the initialization schemes come from generators in graders.hidden.mlp through `t.data`, so
this module holds no code that computes an exercise's output, right or wrong.
"""

import numpy as np

from ..checks.failures import Failure, NotWritten
from ..checks.registry import checks_for

visible, _ = checks_for("02_mlp")


OUT = lambda result: result[0]  # noqa: E731  the `out` of `(out, cache)`: the cache is the student's business


def _explained(action, cause, hint=None, when=("NumPy warning", "raised")):
    """Run `action()`; when it fails with an exception or a warning from student code, name the likely cause."""
    try:
        return action()
    except NotWritten:
        raise
    except Failure as failure:
        if not any(word in failure.summary for word in when):
            raise
        raise Failure(failure.summary, inputs=failure.inputs, raised_at=failure.raised_at, expected=failure.expected,
                      got=failure.got, cause=cause, hint=hint or failure.hint) from None


# -- Part 1: initialization --------------------------------------------------------------------------------

def _init_pair(t, result, what):
    """(W, b) from a student's init_dense result, as float arrays."""
    W = t.array(t.part(result, lambda r: r[0], "init_dense"), f"W from {what}")
    b = t.array(t.part(result, lambda r: r[1], "init_dense"), f"b from {what}")
    return W, b


def _check_weight_distribution(t, W, fan_in, fan_out, scheme, what, scheme_hint=None):
    """W has the scheme's std (within 3 %), mean ~0 and a normal shape; name the formula it matches instead.

    Inputs:
      W: the student's weights as floats, shape (fan_in, fan_out)
      fan_in, fan_out: ints; scheme: "he" or "xavier"; what: the call, for messages
      scheme_hint: where to look when the std is off (default: the formula of the scheme)
    The standard deviations (the scheme's and the mistaken ones, each with its description) come from the
    generator "mlp_init_std_formulas", {key: (std, description)}: the formulas are the exercise.
    """
    formulas = t.data("mlp_init_std_formulas", fan_in, fan_out)
    target, target_text = formulas[scheme]
    n = W.size
    mean, std = float(W.mean()), float(W.std())
    t.require(abs(mean) < 6 * target / np.sqrt(n) + 1e-12,
              f"the weights of {what} have mean {mean:.4g}; a zero-mean distribution of {n} draws with std "
              f"{target:.4g} has |mean| below {6 * target / np.sqrt(n):.2g}.",
              cause="the weights are not centred at 0 (rng.random / rng.uniform(0, ...) draws only positive numbers, "
                    "or a constant was added).",
              hint="draw from the normal distribution with mean 0.0 and the scheme's std, shaped (fan_in, fan_out).")
    if abs(std / target - 1) > 0.03:
        matches = [text for key, (value, text) in formulas.items()
                   if key != scheme and abs(std / value - 1) <= 0.03]
        if std == 0:
            matches = ["all weights equal (zeros or a constant): every unit would compute the same thing"]
        raise Failure(f"the weights of {what} have std {std:.4g}; scheme {scheme!r} needs {target:.4g} "
                      f"({target_text}, with fan_in = {fan_in}, fan_out = {fan_out}).",
                      cause=("your std matches " + matches[0] + ".") if matches else None,
                      hint=scheme_hint or "compute std from the formula of the scheme, then "
                                          "draw W from the normal distribution with that std.")
    within_one = float(np.mean(np.abs(W - mean) < std))
    t.require(abs(within_one - 0.6827) < 0.01,
              f"the weights of {what} do not look normal: {within_one:.1%} of them lie within one std of the mean "
              "(a normal distribution has 68.3%, a uniform one 57.7%).",
              cause="uniform (or other non-normal) draws: the contract asks for a zero-mean normal distribution.",
              hint="rng.normal(0.0, std, size=...) or rng.standard_normal(size) * std.")


def _check_zero_bias(t, b, fan_out, what):
    t.close(b, np.zeros(fan_out), f"b from {what}",
            hint="biases start at exactly zero: np.zeros(fan_out), shape (fan_out,).")


def _check_init_dense(t, fan_in, fan_out, scheme, seed):
    args = (fan_in, fan_out, np.random.default_rng(seed)) + ((scheme,) if scheme else ())
    what = f"init_dense({fan_in}, {fan_out}, rng" + (f", {scheme!r})" if scheme else ")")
    W, b = _init_pair(t, t.call("init_dense", *args), what)
    t.require(W.shape == (fan_in, fan_out), f"W from {what} has shape {W.shape}, expected {(fan_in, fan_out)}.",
              hint="W is (fan_in, fan_out): one column per output unit.")
    _check_zero_bias(t, b, fan_out, what)
    _check_weight_distribution(t, W, fan_in, fan_out, scheme or "he", what)


@visible("init_dense")
def shapes_zero_bias_spread_and_unknown_scheme(t):
    what = "init_dense(3, 5, rng, 'he')"
    W, b = _init_pair(t, t.call("init_dense", 3, 5, np.random.default_rng(0), "he"), what)
    t.require(W.shape == (3, 5), f"W from {what} has shape {W.shape}, expected (3, 5).",
              hint="W is (fan_in, fan_out).")
    _check_zero_bias(t, b, 5, what)
    _check_init_dense(t, 400, 300, "he", 1)
    t.raises(ValueError, "init_dense", 4, 3, np.random.default_rng(0), "uniform",
             hint="after the 'he' and 'xavier' branches: else: raise ValueError(f'unknown scheme {scheme!r}').")


def _check_mlp_params(t, sizes, rng, scheme=None):
    args = (sizes, rng) + ((scheme,) if scheme else ())
    what = f"init_mlp({sizes}" + (f", rng, {scheme!r})" if scheme else ", rng)")
    params = t.call("init_mlp", *args)
    t.require(type(params) is dict, f"{what} returned a {type(params).__name__}, expected a dict.",
              hint='return a dict {"W1": ..., "b1": ..., ...}.')
    n_layers = len(sizes) - 1
    expected_keys = {f"{kind}{i}" for i in range(1, n_layers + 1) for kind in "Wb"}
    keys = set(params.keys())
    t.require(keys == expected_keys,
              f"{what} returned the keys {sorted(map(str, keys))}, expected {sorted(expected_keys)}.",
              cause=(f"{len(sizes)} sizes make {n_layers} layers: zip(layer_sizes[:-1], layer_sizes[1:]) pairs each "
                     "layer's fan_in with its fan_out; number the layers from 1.")
              if len(keys) != len(expected_keys) or keys - expected_keys else None,
              hint='keys "W1", "b1", ..., "WL", "bL" with L = len(layer_sizes) - 1.')
    arrays = {}
    for i in range(1, n_layers + 1):
        W = t.array(params[f"W{i}"], f'params["W{i}"] from {what}')
        b = t.array(params[f"b{i}"], f'params["b{i}"] from {what}')
        t.require(W.shape == (sizes[i - 1], sizes[i]),
                  f'params["W{i}"] from {what} has shape {W.shape}, expected {(sizes[i - 1], sizes[i])}.',
                  hint=f"layer i maps layer_sizes[i-1] to layer_sizes[i]: W{i} is (layer_sizes[{i - 1}], "
                       f"layer_sizes[{i}]).")
        _check_zero_bias(t, b, sizes[i], what + f' (params["b{i}"])')
        arrays[f"W{i}"] = W
    return arrays


@visible("init_mlp")
def keys_and_shapes_for_two_layers(t):
    _check_mlp_params(t, [4, 5, 3], np.random.default_rng(0))


# -- Part 2: layers ----------------------------------------------------------------------------------------

@visible("dense_forward")
def the_worked_example(t):
    X = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    b = np.array([0.5, -1.0])
    t.agrees("dense_forward", X, W, b, pick=OUT, what="out of dense_forward",
             candidates=t.data("mlp_dense_suspects", X, W, b))


@visible("relu_forward")
def small_values(t):
    X = np.array([[-1.0, 0.0, 2.0], [3.0, -0.5, 0.0]])
    t.agrees("relu_forward", X, pick=OUT, what="out of relu_forward", candidates=t.data("mlp_relu_suspects", X))


_MLP_HINT = "loop i = 1..L with L = len(params) // 2, using W{i}, b{i}; ReLU after every layer except the last."


@visible("mlp_forward")
def two_layers_small_values(t):
    X = np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 0.0]])
    params = {"W1": np.array([[1.0, -1.0, 0.5], [0.5, 1.0, -1.0]]), "b1": np.array([0.0, 0.5, -0.5]),
              "W2": np.array([[1.0, -1.0], [-2.0, 0.5], [0.5, 1.0]]), "b2": np.array([-1.0, 0.5])}
    t.agrees("mlp_forward", X, params, pick=OUT, what="logits of mlp_forward",
             candidates=t.data("mlp_forward_suspects", X, params), hint=_MLP_HINT)


# -- Part 3: softmax, log-softmax and the losses -----------------------------------------------------------

_LAST_AXIS = ("normalize over the last axis, whatever the number of axes: axis=-1 with keepdims=True (axis=1 fails "
              "for 1-D input and is the wrong axis for 3-D input; a max without keepdims does not broadcast back).")


@visible("softmax")
def small_rows(t):
    z = np.array([[2.0, 1.0, 0.1], [1.0, 1.0, 1.0]])
    _explained(lambda: t.agrees("softmax", z, candidates=t.data("mlp_softmax_suspects", z)), _LAST_AXIS)


@visible("log_softmax")
def small_row(t):
    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    _explained(lambda: t.agrees("log_softmax", z, candidates=t.data("mlp_log_softmax_suspects", z)), _LAST_AXIS)


_CE_INDEX = ("y holds class indices, shape (N,), not one-hot rows: pick each example's own entry with "
             "log_probs[np.arange(N), y] (row = example, column = its label).")


def _check_ce(t, z, y, batch=None):
    """cross_entropy(z, y) against the reference, naming the mistakes of "mlp_cross_entropy_suspects"."""
    _explained(lambda: t.agrees("cross_entropy", z, y, scalar=True, batch=batch,
                                candidates=t.data("mlp_cross_entropy_suspects", z, y)),
               _CE_INDEX + " Use your log_softmax for the log-probabilities (stable for large logits).",
               when=("raised",))


@visible("cross_entropy")
def two_examples_three_classes(t):
    _check_ce(t, np.array([[2.0, 1.0, 0.1], [0.0, 0.0, 3.0]]), np.array([0, 2]))


@visible("mse_loss")
def mse_small_vector(t):
    pred, target = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0])
    t.agrees("mse_loss", pred, target, scalar=True, candidates=t.data("mlp_mse_suspects", pred, target))


# -- Part 4: decisions -------------------------------------------------------------------------------------

def _check_predict(t, X, params):
    """predict(X, params) must be a numpy int array of shape (N,) equal to the reference's labels.

    Inputs:
      X: inputs the check made, shape (N, D)
      params: {"W1": (D, H1), "b1": (H1,), ..., "WL": (H_{L-1}, C), "bL": (C,)}, made by the check
    N and C in the messages are read from the inputs (len(X), the width of WL), not from a reference output.
    """
    expected = t.ref("predict")(X, params)
    n, c = X.shape[0], params[f"W{len(params) // 2}"].shape[1]
    result = t.call("predict", X, params)
    t.require(type(result) is np.ndarray,
              f"predict returned a {type(result).__name__}, expected a numpy.ndarray of int labels of shape ({n},).",
              hint="return the argmax labels as NumPy gives them (an int ndarray).")
    labels = np.asarray(result)
    if labels.shape != (n,):
        causes = {(n, c): "you returned the logits or the probabilities (N, C): the decision is "
                          "np.argmax(logits, axis=1).",
                  (c,): "argmax over axis 0 (one number per class): the decision of each example is over axis 1.",
                  (n, 1): "an extra axis of length 1 (keepdims=True): return shape (N,).",
                  (): "argmax with no axis flattens the whole array: use axis=1."}
        raise Failure(f"predict returned shape {labels.shape}, expected ({n},).", cause=causes.get(labels.shape),
                      hint="the label of an example is the index of its largest logit: argmax over axis 1.")
    t.require(labels.dtype.kind in "iu",
              f"predict returned an array of dtype {labels.dtype}, expected integer class labels.",
              cause="labels are class indices: np.argmax already returns ints; do not turn them into floats, "
                    "probabilities or booleans.",
              hint="return the argmax labels unchanged (or .astype(int)).")
    t.close(labels, expected, "predict(...)", candidates=t.data("mlp_predict_suspects", X, params),
            hint="predict = np.argmax(mlp_forward(X, params)[0], axis=1).")


@visible("predict")
def labels_of_a_small_network(t):
    X = np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 0.0], [2.0, 1.0]])
    params = {"W1": np.array([[1.0, -1.0, 0.5], [0.5, 1.0, -1.0]]), "b1": np.array([0.0, 0.5, -0.5]),
              "W2": np.array([[1.0, -1.0, 0.2], [-2.0, 0.5, 0.1], [0.5, 1.0, -0.3]]), "b2": np.array([-1.0, 0.5, 0.0])}
    _check_predict(t, X, params)


@visible("accuracy")
def three_of_four(t):
    pred, y = np.array([0, 1, 2, 1]), np.array([0, 1, 1, 1])
    t.agrees("accuracy", pred, y, scalar=True, batch=4, candidates=t.data("mlp_accuracy_suspects", pred, y))
