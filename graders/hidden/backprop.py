"""Checks for assignment 03_backprop.

Visible checks: shapes and small hand-computable values. Hidden checks: gradient checks against centered
differences with random upstream gradients and distinct non-square shapes, N = 1, inputs that must not change,
optimizer trajectories over several steps (the student's own state fed back), properties of dropout (never exact
random draws), batch norm in both modes, and the real training run on the digits.
Each `candidates` entry names a classic mistake by the output it would produce.
"""
from __future__ import annotations

import functools
import time

import numpy as np

from ..checks.gradcheck import numerical_gradient
from ..checks.failures import Failure
from ..checks.registry import checks_for

visible, hidden = checks_for("03_backprop")

TIME_BUDGET = 20.0       # seconds, the contract's budget for train_mlp (one core)
TARGET_ACCURACY = 0.97


# -- helpers -----------------------------------------------------------------------------------------------

def _named_shape(t, got, expected_shape, what, named=None):
    """Read an array and fail with a named cause when its shape is one a known mistake gives."""
    arr = t.array(got, what)
    shape = np.shape(arr)
    if shape != tuple(expected_shape) and named and shape in named:
        raise Failure(f"{what} has shape {shape}, expected {tuple(expected_shape)}.", cause=named[shape])
    return arr


def _peek_normal(t, shape):
    """The next t.rng.normal(size=shape), without advancing t.rng (backward_check draws its dout this way)."""
    twin = np.random.Generator(type(t.rng.bit_generator)())
    twin.bit_generator.state = t.rng.bit_generator.state
    return twin.normal(size=shape)


def _dense_inputs(rng, n, d, h):
    return rng.normal(size=(n, d)), rng.normal(size=(d, h)), rng.normal(size=h)


def _mlp_params(rng, sizes):
    params = {}
    for layer in range(1, len(sizes)):
        params[f"W{layer}"] = rng.normal(size=(sizes[layer - 1], sizes[layer])) * np.sqrt(2.0 / sizes[layer - 1])
        params[f"b{layer}"] = rng.normal(size=sizes[layer]) * 0.3
    return params


def _read_dict(t, got, keys, what, shapes=None):
    """A student dict of arrays, as plain float arrays, with exactly the expected keys."""
    if not isinstance(got, dict):
        raise Failure(f"{what} is a {type(got).__name__}, expected a dict with keys {sorted(keys)}.",
                      hint="return a new dict {name: array} with the same keys as the parameters.")
    if set(got) != set(keys):
        raise Failure(f"{what} has keys {sorted(got)}, expected {sorted(keys)}.",
                      hint="one entry per parameter, with the same names as in params.")
    out = {}
    for key in keys:
        arr = t.array(got[key], f"{what}[{key!r}]")
        if shapes is not None and np.shape(arr) != np.shape(shapes[key]):
            raise Failure(f"{what}[{key!r}] has shape {np.shape(arr)}, expected {np.shape(shapes[key])}.",
                          cause="each entry must have the shape of its parameter; a transposed gradient, or a "
                                "sum over the wrong axis, changes it.")
        out[key] = arr
    return out


def _flat(d, keys):
    return np.concatenate([np.ravel(d[k]) for k in keys])


# -- Part 1: dense and ReLU backward -----------------------------------------------------------------------

def _dense_unpack(r):
    return dict(zip(("dX", "dW", "db"), r))


def _dense_shape_names(n, d, h):
    named = {"dW": {(h, d): "dW is transposed: it must be X.T @ dout, shape (D_in, D_out); dout.T @ X gives its transpose."},
             "db": {(1, h): "db kept an axis of length 1: dout.sum(axis=0) without keepdims.",
                    (n, h): "db is not summed over the batch: db = dout.sum(axis=0).",
                    (n,): "db is summed over the wrong axis (axis=1): sum over the batch, axis 0.",
                    (): "db is summed over everything: sum over the batch only, axis 0."},
             "dX": {}}
    return named


def _dense_check(t, n, d, h):
    X, W, b = _dense_inputs(t.rng, n, d, h)
    out, cache = t.call("dense_forward", X, W, b)
    dout = t.rng.normal(size=(n, h))
    result = t.call("dense_backward", dout, cache)
    grads = t.part(result, _dense_unpack, "dense_backward")
    t.require(len(grads) == 3, "`dense_backward` must return three arrays (dX, dW, db).")
    names = _dense_shape_names(n, d, h)
    expected_shapes = {"dX": (n, d), "dW": (d, h), "db": (h,)}
    for key in ("dX", "dW", "db"):
        _named_shape(t, grads[key], expected_shapes[key], f"{key} from dense_backward", names[key])
    dout = _peek_normal(t, (n, h))
    t.backward_check("dense_forward", "dense_backward", [X, W, b], {"dX": 0, "dW": 1, "db": 2},
                     unpack=_dense_unpack, batch=n,
                     candidates={"dW": {"dW is divided by N: the 1/N belongs to the loss gradient, not to the layer.":
                                        X.T @ dout / n} if n > 1 else {},
                                 "db": {"db is the mean over the batch: the 1/N belongs to the loss gradient; sum here.":
                                        dout.mean(axis=0)} if n > 1 else {}})


@visible("dense_backward")
def shapes_and_the_worked_example(t):
    """the worked example (one row) and the shapes of dX, dW, db"""
    x, W = np.array([[1.0, 2.0]]), np.array([[0.5, -1.0], [0.25, 1.0]])
    dout = np.array([[1.0, -2.0]])
    result = t.call("dense_backward", dout, (x, W))
    grads = t.part(result, _dense_unpack, "dense_backward")
    names = _dense_shape_names(1, 2, 2)
    t.close(_named_shape(t, grads["dX"], (1, 2), "dX", names["dX"]), [[2.5, -1.75]], "dX",
            candidates={"dX = dout @ W: it must be dout @ W.T (the shapes only agree by luck when W is square).":
                        dout @ W})
    t.close(_named_shape(t, grads["dW"], (2, 2), "dW", names["dW"]), [[1.0, -2.0], [2.0, -4.0]], "dW",
            candidates={"dW is transposed: use X.T @ dout (D_in, D_out), not dout.T @ X.": [[1.0, 2.0], [-2.0, -4.0]]})
    t.close(_named_shape(t, grads["db"], (2,), "db", names["db"]), [1.0, -2.0], "db")
    X, W, b = _dense_inputs(t.rng, 4, 3, 5)
    grads = t.part(t.call("dense_backward", t.rng.normal(size=(4, 5)), (X, W)), _dense_unpack, "dense_backward")
    for key, shape in (("dX", (4, 3)), ("dW", (3, 5)), ("db", (5,))):
        arr = _named_shape(t, grads[key], shape, f"{key} from dense_backward (N=4, D_in=3, D_out=5)",
                           _dense_shape_names(4, 3, 5)[key])
        t.require(np.shape(arr) == shape, f"{key} has shape {np.shape(arr)}, expected {shape}.")


@hidden("dense_backward")
def dense_gradient_check(t):
    """dX, dW, db against centered differences, random dout, N=4, D_in=3, D_out=5"""
    _dense_check(t, 4, 3, 5)


@hidden("dense_backward")
def dense_batch_sum_and_scale(t):
    """db is the sum over the batch (N=6), dW = X.T @ dout, not a mean or a transpose"""
    n, d, h = 6, 2, 7
    X, W, b = _dense_inputs(t.rng, n, d, h)
    dout = t.rng.normal(size=(n, h))
    grads = t.part(t.call("dense_backward", dout, (X, W)), _dense_unpack, "dense_backward")
    names = _dense_shape_names(n, d, h)
    t.close(_named_shape(t, grads["db"], (h,), "db", names["db"]), dout.sum(axis=0), "db", batch=n,
            candidates={"db is the mean over the batch: the 1/N belongs to the loss gradient; sum here.":
                        dout.mean(axis=0)})
    t.close(_named_shape(t, grads["dW"], (d, h), "dW", names["dW"]), X.T @ dout, "dW", batch=n,
            candidates={"dW is divided by N: the 1/N belongs to the loss gradient, not to the layer.": X.T @ dout / n})
    t.close(_named_shape(t, grads["dX"], (n, d), "dX", names["dX"]), dout @ W.T, "dX")


@hidden("dense_backward")
def dense_single_example(t):
    """N = 1, and a square W (where dout @ W would not fail)"""
    _dense_check(t, 1, 4, 3)
    X, W, b = _dense_inputs(t.rng, 3, 4, 4)
    dout = t.rng.normal(size=(3, 4))
    grads = t.part(t.call("dense_backward", dout, (X, W)), _dense_unpack, "dense_backward")
    t.close(grads["dX"], dout @ W.T, "dX with a square W",
            candidates={"dX = dout @ W: it must be dout @ W.T (the shapes only agree by luck when W is square).": dout @ W})
    t.close(grads["dW"], X.T @ dout, "dW with a square W",
            candidates={"dW is transposed: use X.T @ dout, not dout.T @ X.": dout.T @ X})


def _away_from_zero(rng, shape, margin=0.05):
    z = rng.normal(size=shape)
    return np.where(np.abs(z) < margin, z + np.sign(z + 1e-12) * 2 * margin, z)


def _relu_candidates(X, dout):
    return {"the gradient is passed where X <= 0 (no mask): dX = dout * (X > 0).": dout,
            "the valve is open at X == 0: use X > 0, not X >= 0.": dout * (X >= 0),
            "dout multiplied by the ReLU output instead of the 0/1 mask: use dout * (X > 0).": dout * np.maximum(X, 0),
            "the mask is inverted: the gradient flows where X > 0, not where X <= 0.": dout * (X <= 0)}


@visible("relu_backward")
def the_worked_example_relu(t):
    """X = [-1, 0, 2], dout = [5, 6, 7] gives [0, 0, 7]"""
    X, dout = np.array([-1.0, 0.0, 2.0]), np.array([5.0, 6.0, 7.0])
    got = t.call("relu_backward", dout, X)
    t.close(got, np.array([0.0, 0.0, 7.0]), "relu_backward(dout, X)", candidates=_relu_candidates(X, dout))


@hidden("relu_backward")
def relu_kink_and_negatives(t):
    """exact zeros and negative inputs in a (5, 4) batch: no gradient there"""
    X = t.rng.normal(size=(5, 4))
    X[0, :2] = 0.0
    X[3, 3] = 0.0
    dout = t.rng.normal(size=(5, 4))
    got = t.call("relu_backward", dout, X)
    t.close(got, dout * (X > 0), "relu_backward(dout, X)", candidates=_relu_candidates(X, dout))


@hidden("relu_backward")
def relu_gradient_check(t):
    """a gradient check through relu_forward away from the kink, (3, 7) and (1, 5)"""
    for shape in ((3, 7), (1, 5)):
        X = _away_from_zero(t.rng, shape)
        t.backward_check("relu_forward", "relu_backward", [X], {"dX": 0}, unpack=lambda r: {"dX": r})


# -- Part 2: softmax cross-entropy -------------------------------------------------------------------------

def _sce_parts(t, logits, y):
    result = t.call("softmax_cross_entropy", logits, y)
    loss = t.part(result, lambda r: r[0], "softmax_cross_entropy")
    dlogits = t.part(result, lambda r: r[1], "softmax_cross_entropy")
    return loss, dlogits


def _sce_check(t, logits, y, gradient=True):
    n = logits.shape[0]
    log_softmax = t.ref("log_softmax")
    p = np.exp(log_softmax(logits))
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1.0
    ref_loss, ref_d = t.ref("softmax_cross_entropy")(logits.copy(), y.copy())
    log_p0 = log_softmax(logits.T).T  # the softmax over the wrong axis (the batch)
    loss, dlogits = _sce_parts(t, logits, y)
    inputs = f"logits {logits.shape} in [{logits.min():.3g}, {logits.max():.3g}], y {y.shape}"
    axis0 = "the softmax is taken over axis 0 (the batch): normalize each row, over the classes (axis=-1)."
    loss_candidates = {axis0: float(-np.mean(log_p0[np.arange(n), y]))}
    if n > 1:
        loss_candidates["the loss is summed over the batch: take the mean (divide by N)."] = n * ref_loss
    t.close(loss, ref_loss, "the loss", scalar=True, batch=n, inputs=inputs, candidates=loss_candidates)
    _named_shape(t, dlogits, logits.shape, "dlogits")
    if gradient:
        numeric = numerical_gradient(lambda z: t.ref("cross_entropy")(z, y), logits)
        t.gradient(dlogits, numeric, "dlogits", batch=n, inputs=inputs,
                   candidates={"dlogits is softmax(logits) / N: subtract the one-hot of y.": p / n,
                               "dlogits is one_hot - softmax: the sign is reversed (softmax - one_hot).": (onehot - p) / n})
    t.close(dlogits, ref_d, "dlogits", batch=n, atol=1e-12, inputs=inputs,
            candidates={"dlogits is missing the 1/N: the loss is a mean, so is its gradient.": p - onehot,
                        "dlogits is softmax(logits) / N: subtract the one-hot of y.": p / n})


@visible("softmax_cross_entropy")
def the_worked_example_sce(t):
    """logits [2, 1, 0] with class 0, and a batch of 2"""
    _sce_check(t, np.array([[2.0, 1.0, 0.0]]), np.array([0]), gradient=False)
    _sce_check(t, np.array([[2.0, 1.0, 0.0], [0.5, 0.5, 3.0]]), np.array([0, 1]), gradient=False)


@hidden("softmax_cross_entropy")
def sce_random_gradient_check(t):
    """random logits (N=7, C=5): the loss and dlogits against centered differences, with the 1/N"""
    logits = t.rng.normal(size=(7, 5)) * 2
    y = t.rng.integers(0, 5, size=7)
    _sce_check(t, logits, y)


@hidden("softmax_cross_entropy")
def sce_extreme_logits(t):
    """logits of +-1000 and +-1e4: finite, exact, no warning"""
    logits = np.array([[1000.0, -1000.0, 0.0, 5.0], [-1e4, 1e4, 3.0, 0.0], [1e4, 1e4, -1e4, 0.0]])
    y = np.array([1, 0, 1])
    _sce_check(t, logits, y, gradient=False)


@hidden("softmax_cross_entropy")
def sce_single_example(t):
    """N = 1 with C = 6"""
    logits = t.rng.normal(size=(1, 6))
    _sce_check(t, logits, np.array([4]))


# -- Part 3: the network -----------------------------------------------------------------------------------

def _mlp_grad_check(t, sizes, n):
    X = t.rng.normal(size=(n, sizes[0]))
    params = _mlp_params(t.rng, sizes)
    logits, cache = t.call("mlp_forward", X, params)
    dlogits = t.rng.normal(size=np.shape(logits))
    grads = _read_dict(t, t.call("mlp_backward", dlogits, cache), list(params), "mlp_backward(...)", params)
    forward = t.ref("mlp_forward")
    ref_logits, ref_cache = forward(X, params)
    relu_on_logits = t.ref("mlp_backward")(dlogits * (ref_logits > 0), ref_cache)
    no_relu = _linear_backward(dlogits, ref_cache)
    for key in params:
        def f(value, key=key):
            return float(np.sum(forward(X, {**params, key: value})[0] * dlogits))
        numeric = numerical_gradient(f, params[key])
        t.gradient(grads[key], numeric, f"grads[{key!r}] from mlp_backward", batch=n,
                   inputs=f"layer sizes {sizes}, N = {n}, random dlogits",
                   candidates={"the ReLU valve is applied after the last layer too: the logits have no ReLU "
                               "(the last layer's relu cache is None).": relu_on_logits[key],
                               "the ReLU valves are skipped: go back through relu_backward before each hidden "
                               "layer's dense_backward.": no_relu[key]})


def _linear_backward(dlogits, cache):
    grads, d = {}, dlogits
    for layer in range(len(cache), 0, -1):
        (X, W), _ = cache[layer - 1]
        grads[f"W{layer}"], grads[f"b{layer}"] = X.T @ d, d.sum(axis=0)
        d = d @ W.T
    return grads


@visible("mlp_backward")
def keys_and_shapes(t):
    """a 2-layer network: the keys of params, each gradient shaped like its parameter"""
    sizes = [3, 4, 2]
    X = t.rng.normal(size=(5, 3))
    params = _mlp_params(t.rng, sizes)
    logits, cache = t.call("mlp_forward", X, params)
    grads = _read_dict(t, t.call("mlp_backward", t.rng.normal(size=(5, 2)), cache), list(params),
                       "mlp_backward(...)", params)
    t.require(all(np.shape(grads[k]) == params[k].shape for k in params), "a gradient has the wrong shape.")


@hidden("mlp_backward")
def mlp_gradient_check_three_layers(t):
    """every parameter of a 3-layer network (5 -> 7 -> 4 -> 3), N = 6, random dlogits"""
    _mlp_grad_check(t, [5, 7, 4, 3], 6)


@hidden("mlp_backward")
def mlp_gradient_check_one_and_two_layers(t):
    """a 1-layer network (no ReLU at all) and a 2-layer one with N = 1"""
    _mlp_grad_check(t, [4, 3], 5)
    _mlp_grad_check(t, [6, 5, 2], 1)


def _data_grads(params, X, y, ref):
    return ref("mlp_loss_and_grads")(X, y, params, 0.0)


def _loss_and_grads_check(t, sizes, n, weight_decay):
    X = t.rng.normal(size=(n, sizes[0]))
    n_classes = sizes[-1]
    y = t.rng.integers(0, n_classes, size=n)
    params = _mlp_params(t.rng, sizes)
    ref = t.ref("mlp_loss_and_grads")
    ref_loss, ref_grads = ref(X, y, params, weight_decay)
    data_loss, data_grads = ref(X, y, params, 0.0)
    weights = sum(float(np.sum(params[k] ** 2)) for k in params if k.startswith("W"))
    biases = sum(float(np.sum(params[k] ** 2)) for k in params if k.startswith("b"))
    result = t.call("mlp_loss_and_grads", X, y, params, weight_decay)
    loss = t.part(result, lambda r: r[0], "mlp_loss_and_grads")
    grads = _read_dict(t, t.part(result, lambda r: r[1], "mlp_loss_and_grads"), list(params), "grads", params)
    inputs = f"layer sizes {sizes}, N = {n}, weight_decay = {weight_decay}"
    loss_candidates = {"the cross-entropy is summed over the batch: take the mean (divide by N).":
                       n * data_loss + 0.5 * weight_decay * weights}
    if weight_decay:
        loss_candidates.update({
            "the L2 term is missing from the loss: add 0.5 * weight_decay * sum(W**2).": data_loss,
            "the L2 term has no 0.5: the loss adds 0.5 * weight_decay * sum(W**2).": data_loss + weight_decay * weights,
            "the L2 term is applied to the biases too: decay only the weights (keys starting with 'W').":
                data_loss + 0.5 * weight_decay * (weights + biases)})
    t.close(loss, ref_loss, "the loss", scalar=True, inputs=inputs, candidates=loss_candidates)
    for key in params:
        is_weight = key.startswith("W")
        candidates = {}
        if weight_decay and is_weight:
            candidates = {"the L2 term is missing from the gradient: add weight_decay * W to grads of the weights.":
                              data_grads[key],
                          "the L2 gradient is 2 * weight_decay * W: with the 0.5 in the loss it is weight_decay * W.":
                              data_grads[key] + 2 * weight_decay * params[key],
                          "the L2 gradient is 0.5 * weight_decay * W: the derivative of 0.5 * wd * W**2 is wd * W.":
                              data_grads[key] + 0.5 * weight_decay * params[key]}
        if weight_decay and not is_weight:
            candidates = {"weight decay is applied to the biases: decay only the weights (keys starting with 'W').":
                          data_grads[key] + weight_decay * params[key]}
        candidates["the gradient is missing the 1/N of the mean loss."] = n * data_grads[key] + (
            weight_decay * params[key] if is_weight else 0.0)
        numeric = numerical_gradient(lambda v, key=key: ref(X, y, {**params, key: v}, weight_decay)[0], params[key])
        t.gradient(grads[key], numeric, f"grads[{key!r}]", batch=n, inputs=inputs, candidates=candidates)


@visible("mlp_loss_and_grads")
def shapes_and_loss_at_small_weights(t):
    """a 2-layer network without weight decay: the loss and the gradient shapes"""
    sizes = [4, 5, 3]
    X = t.rng.normal(size=(6, 4))
    y = np.array([0, 1, 2, 0, 1, 2])
    params = _mlp_params(t.rng, sizes)
    result = t.call("mlp_loss_and_grads", X, y, params)
    loss = t.part(result, lambda r: r[0], "mlp_loss_and_grads")
    ref_loss, ref_grads = t.ref("mlp_loss_and_grads")(X, y, params)
    t.close(loss, ref_loss, "the loss (weight_decay = 0)", scalar=True, batch=6)
    grads = _read_dict(t, t.part(result, lambda r: r[1], "mlp_loss_and_grads"), list(params), "grads", params)
    t.close(_flat(grads, list(params)), _flat(ref_grads, list(params)), "the gradients (weight_decay = 0)", batch=6)


@hidden("mlp_loss_and_grads")
def loss_and_grads_without_decay(t):
    """a 3-layer network, N = 7, weight_decay = 0: loss and gradient checks, the 1/N"""
    _loss_and_grads_check(t, [5, 6, 4, 3], 7, 0.0)


@hidden("mlp_loss_and_grads")
def loss_and_grads_with_decay(t):
    """weight_decay = 0.3 with nonzero biases: L2 on the weights only, with the 0.5, in the loss and the gradient"""
    _loss_and_grads_check(t, [4, 6, 3], 5, 0.3)


@hidden("mlp_loss_and_grads")
def loss_and_grads_single_example(t):
    """N = 1, weight_decay = 0.05"""
    _loss_and_grads_check(t, [3, 4, 2], 1, 0.05)


# -- Part 4: optimizers ------------------------------------------------------------------------------------

def _opt_params(rng):
    return {"W1": rng.normal(size=(3, 4)), "b1": rng.normal(size=4), "W2": rng.normal(size=(4, 2)),
            "b2": rng.normal(size=2)}


def _grad_sequence(rng, params, steps):
    return [{k: rng.normal(size=v.shape) * scale for k, v in params.items()}
            for scale in np.linspace(0.5, 2.0, steps)]


def _run(step_fn, params, grad_seq, **kwargs):
    """Parameters after each step of a (reference or mistaken) optimizer, flattened and stacked."""
    keys, state, out = list(params), None, []
    for grads in grad_seq:
        params, state = step_fn(params, grads, state, **kwargs)
        out.append(_flat(params, keys))
    return np.stack(out)


def _student_trajectory(t, name, params, grad_seq, **kwargs):
    keys, state, out = list(params), None, []
    for step, grads in enumerate(grad_seq, start=1):
        result = t.call(name, params, grads, state, **kwargs)
        new_params = t.part(result, lambda r: r[0], name)
        state = t.part(result, lambda r: r[1], name)
        params = _read_dict(t, new_params, keys, f"the parameters returned at step {step}", params)
        out.append(_flat(params, keys))
    return np.stack(out)


def _trajectory_check(t, name, params, grad_seq, candidates, **kwargs):
    expected = _run(t.ref(name), params, grad_seq, **kwargs)
    suspects = {label: _run(fn, params, grad_seq, **kwargs) for label, fn in candidates.items()}
    got = _student_trajectory(t, name, params, grad_seq, **kwargs)
    settings = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    t.close(got, expected, f"the parameters after each of {len(grad_seq)} steps of {name} ({settings}; "
                           f"row = step, state fed back)", candidates=suspects,
            inputs=f"{len(grad_seq)} steps from state=None, your state passed back each time; random gradients")


def _momentum_ema(params, grads, state, lr, beta=0.9):
    v = {k: (beta * state[k] if state else 0.0) + (1 - beta) * grads[k] for k in params}
    return {k: params[k] - lr * v[k] for k in params}, v


def _momentum_lr_in_v(params, grads, state, lr, beta=0.9):
    v = {k: (beta * state[k] if state else 0.0) + lr * grads[k] for k in params}
    return {k: params[k] - v[k] for k in params}, v


def _momentum_no_state(params, grads, state, lr, beta=0.9):
    return {k: params[k] - lr * grads[k] for k in params}, None


def _momentum_beta_ignored(params, grads, state, lr, beta=0.9):
    v = {k: (0.9 * state[k] if state else 0.0) + grads[k] for k in params}
    return {k: params[k] - lr * v[k] for k in params}, v


@visible("momentum_step")
def first_step_from_none(t):
    """the first step (state None) is p - lr * g; a second step with your state"""
    params = _opt_params(t.rng)
    grad_seq = _grad_sequence(t.rng, params, 2)
    _trajectory_check(t, "momentum_step", params, grad_seq, {}, lr=0.1)


@hidden("momentum_step")
def momentum_trajectory(t):
    """six steps, lr = 0.05, beta = 0.9: v = beta*v + g, p = p - lr*v"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "momentum_step", params, _grad_sequence(t.rng, params, 6), {
        "v = beta*v + (1 - beta)*g is another convention: ours (PyTorch's) is v = beta*v + g.": _momentum_ema,
        "lr is folded into v (v = beta*v + lr*g): our convention is v = beta*v + g, then p = p - lr*v.": _momentum_lr_in_v,
        "the velocity is not carried between steps (plain SGD): keep v in the returned state.": _momentum_no_state,
    }, lr=0.05, beta=0.9)


@hidden("momentum_step")
def momentum_other_beta(t):
    """five steps with beta = 0.5 and lr = 0.2"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "momentum_step", params, _grad_sequence(t.rng, params, 5), {
        "beta is ignored (0.9 is used): use the beta argument.": _momentum_beta_ignored,
        "v = beta*v + (1 - beta)*g is another convention: ours (PyTorch's) is v = beta*v + g.": _momentum_ema,
    }, lr=0.2, beta=0.5)


def _adam_variant(bias_correction=True, advance=True, eps_inside=False, no_square=False):
    def step(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        if state is None:
            state = {"t": 0, "m": {k: 0.0 for k in params}, "v": {k: 0.0 for k in params}}
        t = state["t"] + 1 if advance else 1
        m = {k: beta1 * state["m"][k] + (1 - beta1) * grads[k] for k in params}
        v = {k: beta2 * state["v"][k] + (1 - beta2) * (np.abs(grads[k]) if no_square else grads[k] ** 2)
             for k in params}
        new = {}
        for k in params:
            m_hat = m[k] / (1 - beta1 ** t) if bias_correction else m[k]
            v_hat = v[k] / (1 - beta2 ** t) if bias_correction else v[k]
            denom = np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps
            new[k] = params[k] - lr * m_hat / denom
        return new, {"t": t if advance else 0, "m": m, "v": v}
    return step


def _adam_first_moment_only_corrected(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    if state is None:
        state = {"t": 0, "m": {k: 0.0 for k in params}, "v": {k: 0.0 for k in params}}
    t = state["t"] + 1
    m = {k: beta1 * state["m"][k] + (1 - beta1) * grads[k] for k in params}
    v = {k: beta2 * state["v"][k] + (1 - beta2) * grads[k] ** 2 for k in params}
    new = {k: params[k] - lr * (m[k] / (1 - beta1 ** t)) / (np.sqrt(v[k]) + eps) for k in params}
    return new, {"t": t, "m": m, "v": v}


_ADAM_MISTAKES = {
    "no bias correction: divide m by (1 - beta1**t) and v by (1 - beta2**t).": _adam_variant(bias_correction=False),
    "t is not advanced between steps (the bias correction of step 1 is used every time): keep t in the state "
    "and add 1 at each step.": _adam_variant(advance=False),
    "only the first moment is bias-corrected: divide v by (1 - beta2**t) too.": _adam_first_moment_only_corrected,
    "eps is inside the square root: PyTorch divides by sqrt(v_hat) + eps.": _adam_variant(eps_inside=True),
    "the second moment uses |g| instead of g**2.": _adam_variant(no_square=True),
}


@visible("adam_step")
def first_adam_step(t):
    """the first step from None moves each entry by about lr (bias correction), then a second step"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "adam_step", params, _grad_sequence(t.rng, params, 2), _ADAM_MISTAKES, lr=0.01)


@hidden("adam_step")
def adam_trajectory(t):
    """six steps with lr = 0.01: bias correction with t advancing, eps outside the square root"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "adam_step", params, _grad_sequence(t.rng, params, 6), _ADAM_MISTAKES, lr=0.01)


@hidden("adam_step")
def adam_other_hyperparameters(t):
    """five steps with beta1 = 0.5, beta2 = 0.8, eps = 0.1 (tiny gradients, where eps matters)"""
    params = _opt_params(t.rng)
    grad_seq = [{k: g * 1e-2 for k, g in grads.items()} for grads in _grad_sequence(t.rng, params, 5)]
    _trajectory_check(t, "adam_step", params, grad_seq, {
        **_ADAM_MISTAKES,
        "beta1, beta2 or eps ignored (defaults used): use the arguments.":
            lambda p, g, s, lr, beta1, beta2, eps: _adam_variant()(p, g, s, lr=lr),
    }, lr=0.05, beta1=0.5, beta2=0.8, eps=0.1)


def _adamw_variant(kind):
    adam = _adam_variant()

    def step(params, grads, state, lr=1e-3, weight_decay=1e-2, beta1=0.9, beta2=0.999, eps=1e-8):
        if kind == "l2":
            grads = {k: grads[k] + weight_decay * params[k] for k in params}
            return adam(params, grads, state, lr, beta1, beta2, eps)
        if kind == "after":
            new, state = adam(params, grads, state, lr, beta1, beta2, eps)
            return {k: v - lr * weight_decay * v for k, v in new.items()}, state
        if kind == "after_old":
            new, state = adam(params, grads, state, lr, beta1, beta2, eps)
            return {k: new[k] - lr * weight_decay * params[k] for k in params}, state
        if kind == "no_lr":
            decayed = {k: v - weight_decay * v for k, v in params.items()}
            return adam(decayed, grads, state, lr, beta1, beta2, eps)
        if kind == "weights_only":
            decayed = {k: (v - lr * weight_decay * v if k.startswith("W") else v) for k, v in params.items()}
            return adam(decayed, grads, state, lr, beta1, beta2, eps)
        if kind == "none":
            return adam(params, grads, state, lr, beta1, beta2, eps)
        raise ValueError(kind)
    return step


_ADAMW_MISTAKES = {
    "weight decay added to the gradient (Adam with L2): AdamW decays the parameters directly, p = p - lr*wd*p.":
        _adamw_variant("l2"),
    "the decay is not multiplied by lr: p = p - lr * weight_decay * p.": _adamw_variant("no_lr"),
    "no weight decay at all: first p = p - lr * weight_decay * p, then the Adam step.": _adamw_variant("none"),
    "biases are not decayed: AdamW (as in PyTorch) decays every parameter it is given.": _adamw_variant("weights_only"),
}


@visible("adamw_step")
def adamw_two_steps(t):
    """two steps from None with lr = 0.01 and weight_decay = 0.1"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "adamw_step", params, _grad_sequence(t.rng, params, 2), _ADAMW_MISTAKES,
                      lr=0.01, weight_decay=0.1)


@hidden("adamw_step")
def adamw_trajectory(t):
    """six steps with lr = 0.1 and weight_decay = 0.5: decoupled decay with lr, before the Adam step"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "adamw_step", params, _grad_sequence(t.rng, params, 6), {
        **_ADAMW_MISTAKES,
        "the decay is applied after the Adam step: decay first (p = p - lr*wd*p), then take the Adam step.":
            _adamw_variant("after"),
        "the Adam step is not bias-corrected (AdamW is the Adam step of the contract after the decay).":
            lambda p, g, s, lr, weight_decay: _adam_variant(bias_correction=False)(
                {k: v - lr * weight_decay * v for k, v in p.items()}, g, s, lr),
    }, lr=0.1, weight_decay=0.5)


@hidden("adamw_step")
def adamw_other_betas(t):
    """four steps with beta1 = 0.7, beta2 = 0.9, eps = 1e-3"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "adamw_step", params, _grad_sequence(t.rng, params, 4), _ADAMW_MISTAKES,
                      lr=0.05, weight_decay=0.2, beta1=0.7, beta2=0.9, eps=1e-3)


@visible("sgd_step")
def one_sgd_step(t):
    """p - lr * g for every key, as a new dict"""
    params = _opt_params(t.rng)
    grads = {k: t.rng.normal(size=v.shape) for k, v in params.items()}
    got = _read_dict(t, t.call("sgd_step", params, grads, 0.1), list(params), "sgd_step(...)", params)
    expected = t.ref("sgd_step")(params, grads, 0.1)
    t.close(_flat(got, list(params)), _flat(expected, list(params)), "the new parameters",
            candidates={"the step goes uphill: p - lr * g, not p + lr * g.":
                        _flat({k: params[k] + 0.1 * grads[k] for k in params}, list(params))})


@hidden("sgd_step")
def sgd_random_and_unchanged_inputs(t):
    """random parameters, lr = 0.37, then three steps fed back; params and grads unchanged"""
    params = _opt_params(t.rng)
    keys = list(params)
    for lr in (0.37, 1e-3):
        grads = {k: t.rng.normal(size=v.shape) for k, v in params.items()}
        got = _read_dict(t, t.call("sgd_step", params, grads, lr), keys, "sgd_step(...)", params)
        t.close(_flat(got, keys), _flat(t.ref("sgd_step")(params, grads, lr), keys), f"the new parameters (lr = {lr})",
                candidates={"lr is ignored: use the lr argument.":
                            _flat({k: params[k] - 0.1 * grads[k] for k in keys}, keys),
                            "the step goes uphill: p - lr * g, not p + lr * g.":
                            _flat({k: params[k] + lr * grads[k] for k in keys}, keys)})


@hidden("sgd_step")
def sgd_returns_a_new_dict(t):
    """the returned dict is not the one given (the caller's params still hold the old values)"""
    params = _opt_params(t.rng)
    grads = {k: t.rng.normal(size=v.shape) for k, v in params.items()}
    got = t.call("sgd_step", params, grads, 0.5)
    t.require(got is not params, "`sgd_step` returned the params dict it was given.",
              cause="the dict was updated in place (params[k] = ...) and returned.",
              hint="build and return a new dict: {k: params[k] - lr * grads[k] for k in params}.")


def _clip_per_array(grads, max_norm):
    out = {}
    for k, g in grads.items():
        n = np.linalg.norm(g)
        out[k] = g * (max_norm / n) if n > max_norm else g
    return out


def _clip_check(t, grads, max_norm):
    keys = list(grads)
    ref_grads, ref_total = t.ref("clip_grad_norm")(grads, max_norm)
    result = t.call("clip_grad_norm", grads, max_norm)
    new = _read_dict(t, t.part(result, lambda r: r[0], "clip_grad_norm"), keys, "the clipped grads", grads)
    total = t.part(result, lambda r: r[1], "clip_grad_norm")
    per_array_sum = sum(float(np.linalg.norm(g)) for g in grads.values())
    t.close(total, ref_total, "total_norm", scalar=True,
            candidates={"total_norm is measured after clipping: return the norm before clipping.": min(ref_total, max_norm),
                        "total_norm is the sum of the per-array norms: take sqrt of the sum of all squares.": per_array_sum,
                        "total_norm is the sum of squares: take its square root.": ref_total ** 2})
    t.close(_flat(new, keys), _flat(ref_grads, keys), f"the clipped gradients (max_norm = {max_norm}, global norm "
                                                        f"{ref_total:.4g})",
            candidates={"each array is clipped by its own norm: scale every array by max_norm / (global norm).":
                        _flat(_clip_per_array(grads, max_norm), keys),
                        "the gradients are always rescaled to max_norm: only clip when the norm exceeds it.":
                        _flat({k: g * (max_norm / ref_total) for k, g in grads.items()}, keys) if ref_total else
                        _flat(grads, keys)})


@visible("clip_grad_norm")
def the_worked_example_clip(t):
    """{"a": [3, 0], "b": [[4]]} with max_norm = 1, and max_norm = 10 (unchanged)"""
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    _clip_check(t, grads, 1.0)
    _clip_check(t, grads, 10.0)


@hidden("clip_grad_norm")
def global_not_per_array(t):
    """random gradients of several sizes, global norm above and below max_norm"""
    grads = {"W1": t.rng.normal(size=(5, 3)) * 2, "b1": t.rng.normal(size=3) * 0.1, "W2": t.rng.normal(size=(3, 4)),
             "b2": t.rng.normal(size=4) * 3}
    total = float(np.sqrt(sum(np.sum(g ** 2) for g in grads.values())))
    for max_norm in (total * 0.3, total * 0.9, total * 1.5):
        _clip_check(t, grads, max_norm)


@hidden("clip_grad_norm")
def all_zero_gradients(t):
    """all-zero gradients: total_norm 0, unchanged, no division by zero"""
    grads = {"W": np.zeros((2, 3)), "b": np.zeros(3)}
    _clip_check(t, grads, 1.0)


# -- Part 5: dropout and batch norm ------------------------------------------------------------------------

def _dropout_out(t, X, p, train, rng):
    result = t.call("dropout_forward", X, p, train, rng)
    out = t.part(result, lambda r: r[0], "dropout_forward")
    cache = t.part(result, lambda r: r[1], "dropout_forward")
    return _named_shape(t, out, X.shape, "the output of dropout_forward"), cache


def _kept_check(t, X, out, p):
    kept = out != 0
    t.close(out[kept], X[kept] / (1 - p), f"the kept entries (p = {p})",
            candidates={"kept entries are not rescaled: inverted dropout divides them by (1 - p).": X[kept],
                        "kept entries are multiplied by (1 - p): inverted dropout divides them by (1 - p).":
                            X[kept] * (1 - p),
                        "kept entries are divided by p: divide by the keep probability (1 - p).": X[kept] / p})


@visible("dropout_forward")
def evaluation_identity_and_scaling(t):
    """train=False and p=0 leave X unchanged; train=True gives 0 or X / (1 - p)"""
    X = t.rng.uniform(0.5, 1.5, size=(20, 30))
    rng = np.random.default_rng(0)
    out, _ = _dropout_out(t, X, 0.5, False, rng)
    t.close(out, X, "dropout_forward(X, 0.5, train=False) (the identity)",
            candidates={"at evaluation the output is scaled by (1 - p): with inverted dropout evaluation is the identity.":
                        X * 0.5})
    out, _ = _dropout_out(t, X, 0.0, True, rng)
    t.close(out, X, "dropout_forward(X, 0.0, train=True) (p = 0 is the identity)")
    out, _ = _dropout_out(t, X, 0.5, True, rng)
    _kept_check(t, X, out, 0.5)


@hidden("dropout_forward")
def dropped_fraction_and_scale(t):
    """on a (400, 250) array: the dropped fraction is close to p (0.2 and 0.7), kept entries exactly X / (1 - p)"""
    X = t.rng.uniform(0.5, 1.5, size=(400, 250))
    for p in (0.2, 0.7):
        out, _ = _dropout_out(t, X, p, True, np.random.default_rng(int(p * 100)))
        dropped = float(np.mean(out == 0))
        if abs(dropped - (1 - p)) < 0.01 and abs(p - 0.5) > 0.05:
            raise Failure(f"with p = {p}, {dropped:.1%} of the entries were dropped, expected about {p:.0%}.",
                          cause="p is used as the keep probability: p is the probability of DROPPING an entry, "
                                "so keep where rng.random(...) >= p.")
        t.require(abs(dropped - p) < 0.01,
                  f"with p = {p}, {dropped:.1%} of the entries were dropped, expected {p:.0%} (within 1%).",
                  hint="draw one uniform number per entry (rng.random(X.shape)) and drop where it is < p.")
        _kept_check(t, X, out, p)
        t.require(abs(float(out.mean()) - float(X.mean())) < 0.03,
                  f"the mean of the output ({out.mean():.4f}) is far from the mean of the input ({X.mean():.4f}).",
                  hint="inverted dropout keeps the expected value: divide the kept entries by (1 - p).")


@hidden("dropout_forward")
def evaluation_is_the_identity(t):
    """train=False with p = 0.5 and 0.9: X unchanged (no mask, no scale); p = 0 in training too"""
    X = t.rng.normal(size=(30, 40))
    for p in (0.5, 0.9):
        out, _ = _dropout_out(t, X, p, False, np.random.default_rng(1))
        if np.mean(out == 0) > 0.05:
            raise Failure(f"with train=False and p = {p}, {np.mean(out == 0):.0%} of the entries are 0.",
                          cause="dropout is active at evaluation: when train is False, return X unchanged.")
        t.close(out, X, f"dropout_forward(X, {p}, train=False)",
                candidates={"at evaluation the output is scaled by (1 - p): with inverted dropout evaluation is the identity.":
                            X * (1 - p),
                            "at evaluation the output is divided by (1 - p): evaluation is the identity.": X / (1 - p)})
    out, _ = _dropout_out(t, X, 0.0, True, np.random.default_rng(2))
    t.close(out, X, "dropout_forward(X, 0.0, train=True)")


@hidden("dropout_forward")
def independent_entries_and_rng_only(t):
    """each entry has its own draw (not one mask per row or column); randomness only from rng"""
    X = t.rng.uniform(0.5, 1.5, size=(64, 48))
    out, _ = _dropout_out(t, X, 0.5, True, np.random.default_rng(11))
    zeros = out == 0
    t.require(not np.all(zeros == zeros[0:1]), "every row has the same dropout pattern.",
              cause="one mask of shape (D,) is drawn and broadcast over the batch.",
              hint="draw a mask with the full shape of X: rng.random(X.shape).")
    t.require(not np.all(zeros == zeros[:, 0:1]), "every column has the same dropout pattern.",
              cause="one mask of shape (N, 1) is drawn and broadcast over the features.",
              hint="draw a mask with the full shape of X: rng.random(X.shape).")
    again, _ = _dropout_out(t, X, 0.5, True, np.random.default_rng(11))
    t.require(np.array_equal(zeros, again == 0), "two calls with identically seeded rngs dropped different entries.",
              cause="the randomness does not come (only) from the rng argument: np.random.* or a new Generator was used.",
              hint="draw with the rng you are given: rng.random(X.shape).")
    other, _ = _dropout_out(t, X, 0.5, True, np.random.default_rng(13))
    t.require(not np.array_equal(zeros, other == 0), "two calls with differently seeded rngs dropped exactly the same "
                                                     "entries.",
              cause="the rng argument is ignored: a new Generator with a fixed seed is created inside the function.",
              hint="draw from the rng you are given: rng.random(X.shape).")


def _dropout_backward_check(t, shape, p):
    X = t.rng.uniform(0.5, 1.5, size=shape)
    out, cache = _dropout_out(t, X, p, True, np.random.default_rng(5))
    dout = t.rng.normal(size=shape)
    dX = _named_shape(t, t.call("dropout_backward", dout, cache), shape, "dX from dropout_backward")
    kept = out != 0
    expected = np.where(kept, dout / (1 - p), 0.0)
    t.close(dX, expected, f"dX from dropout_backward (p = {p}, the forward's mask)",
            candidates={"the gradient is not rescaled: kept entries pass dout / (1 - p), as the forward scaled X.":
                        np.where(kept, dout, 0.0),
                        "the gradient passes everywhere: dropped entries get no gradient (use the forward's mask).": dout,
                        "dout / (1 - p) everywhere: dropped entries get no gradient.": dout / (1 - p)})


@visible("dropout_backward")
def same_mask_small(t):
    """p = 0.5 on (6, 5): the gradient flows (doubled) exactly where the forward kept the input"""
    _dropout_backward_check(t, (6, 5), 0.5)


@hidden("dropout_backward")
def same_mask_large(t):
    """p = 0.3 on (200, 120) and p = 0.8 on (1, 300)"""
    _dropout_backward_check(t, (200, 120), 0.3)
    _dropout_backward_check(t, (1, 300), 0.8)


@hidden("dropout_backward")
def identity_at_evaluation(t):
    """the cache of train=False (and of p = 0) passes dout through unchanged"""
    X = t.rng.normal(size=(7, 9))
    dout = t.rng.normal(size=(7, 9))
    for p, train in ((0.5, False), (0.0, True)):
        _, cache = _dropout_out(t, X, p, train, np.random.default_rng(3))
        dX = t.call("dropout_backward", dout, cache)
        t.close(dX, dout, f"dX after dropout_forward(X, {p}, train={train}) (the identity)")


def _bn_ref(t, X, gamma, beta, running, train, **kwargs):
    return t.ref("batchnorm_forward")(X, gamma, beta, running, train, **kwargs)


def _bn_variant(X, gamma, beta, running, train, momentum=0.9, eps=1e-5, ddof=0, eval_batch=False,
                swap=False, eps_outside=False, no_update=False, running_ddof=0):
    d = X.shape[1]
    running = running or {"mean": np.zeros(d), "var": np.ones(d)}
    if train or eval_batch:
        mean, var = X.mean(axis=0), X.var(axis=0, ddof=ddof) if X.shape[0] > ddof else np.zeros(d)
    else:
        mean, var = running["mean"], running["var"]
    if train and not no_update:
        a, b = (1 - momentum, momentum) if swap else (momentum, 1 - momentum)
        batch_var = X.var(axis=0, ddof=running_ddof) if X.shape[0] > running_ddof else np.zeros(d)
        running = {"mean": a * running["mean"] + b * mean, "var": a * running["var"] + b * batch_var}
    x_hat = (X - mean) / (np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps))
    return gamma * x_hat + beta, None, running


def _bn_parts(t, X, gamma, beta, running, train, **kwargs):
    result = t.call("batchnorm_forward", X, gamma, beta, running, train, **kwargs)
    out = t.part(result, lambda r: r[0], "batchnorm_forward")
    t.part(result, lambda r: r[1], "batchnorm_forward")
    new_running = t.part(result, lambda r: r[2], "batchnorm_forward")
    return result, out, _read_dict(t, new_running, ["mean", "var"], "the returned running",
                                   {"mean": X[0], "var": X[0]})


def _bn_train_check(t, X, gamma, beta, running, **kwargs):
    ref_out, _, ref_running = _bn_ref(t, X, gamma, beta, running, True, **kwargs)
    _, out, new_running = _bn_parts(t, X, gamma, beta, running, True, **kwargs)
    args = (X, gamma, beta, running, True)
    t.close(out, ref_out, "the output in training mode",
            candidates={"the unbiased variance (ddof=1) is used: batch norm normalizes with the biased one, X.var(axis=0).":
                        _bn_variant(*args, ddof=1, **kwargs)[0],
                        "eps is added to the standard deviation: use sqrt(var + eps).":
                        _bn_variant(*args, eps_outside=True, **kwargs)[0],
                        "the running statistics are used in training mode: normalize with the batch's mean and variance.":
                        _bn_variant(X, gamma, beta, running, False, **kwargs)[0]})
    for key in ("mean", "var"):
        t.close(new_running[key], ref_running[key], f"running[{key!r}] after a training step",
                candidates={"the running statistics are not updated in training mode.":
                            (running or {"mean": np.zeros(X.shape[1]), "var": np.ones(X.shape[1])})[key],
                            "momentum is applied the other way round: new = momentum*old + (1 - momentum)*batch.":
                            _bn_variant(*args, swap=True, **kwargs)[2][key],
                            "the running variance uses the unbiased batch variance: the contract uses the biased one.":
                            _bn_variant(*args, running_ddof=1, **kwargs)[2][key]})


@visible("batchnorm_forward")
def training_mode_from_none(t):
    """the worked example, and a (6, 4) batch with gamma = 1, beta = 0, running None"""
    X = np.array([[1.0], [2.0], [3.0], [6.0]])
    _bn_train_check(t, X, np.ones(1), np.zeros(1), None)
    X = t.rng.normal(size=(6, 4)) * 3 + 2
    _bn_train_check(t, X, np.ones(4), np.zeros(4), None)


@hidden("batchnorm_forward")
def training_mode_random(t):
    """random gamma, beta and running stats, momentum 0.9 and 0.7; the biased variance; N = 1 and N = 2"""
    X = t.rng.normal(size=(7, 5)) * t.rng.uniform(0.5, 3, size=5) + t.rng.normal(size=5)
    gamma, beta = t.rng.normal(size=5), t.rng.normal(size=5)
    running = {"mean": t.rng.normal(size=5), "var": t.rng.uniform(0.5, 2, size=5)}
    _bn_train_check(t, X, gamma, beta, running)
    _bn_train_check(t, X, gamma, beta, running, momentum=0.7, eps=1e-3)
    for n in (1, 2):
        _bn_train_check(t, t.rng.normal(size=(n, 3)), t.rng.normal(size=3), t.rng.normal(size=3), None)


@hidden("batchnorm_forward")
def evaluation_mode_uses_running(t):
    """train=False: normalize with the running statistics, return them unchanged, for any batch size"""
    X = t.rng.normal(size=(6, 4)) * 2 + 1
    gamma, beta = t.rng.normal(size=4), t.rng.normal(size=4)
    running = {"mean": t.rng.normal(size=4), "var": t.rng.uniform(0.5, 2, size=4)}
    ref_out, _, _ = _bn_ref(t, X, gamma, beta, running, False)
    _, out, new_running = _bn_parts(t, X, gamma, beta, running, False)
    t.close(out, ref_out, "the output in evaluation mode (train=False)",
            candidates={"batch statistics are used at evaluation: normalize with running['mean'] and running['var'].":
                        _bn_variant(X, gamma, beta, running, False, eval_batch=True)[0],
                        "eps is added to the standard deviation: use sqrt(var + eps).":
                        _bn_variant(X, gamma, beta, running, False, eps_outside=True)[0]})
    for key in ("mean", "var"):
        t.close(new_running[key], running[key], f"running[{key!r}] after evaluation (unchanged)",
                candidates={"the running statistics are updated at evaluation: only training steps update them.":
                            _bn_variant(X, gamma, beta, running, True)[2][key]})
    single = X[:1]
    _, out, _ = _bn_parts(t, single, gamma, beta, running, False)
    t.close(out, _bn_ref(t, single, gamma, beta, running, False)[0], "the output for a batch of one at evaluation")


@hidden("batchnorm_forward")
def running_none_then_updates(t):
    """running=None starts from mean 0, variance 1; three training steps fed back"""
    running_ref = running_student = None
    for _ in range(3):
        X = t.rng.normal(size=(5, 3)) * 2 + 3
        gamma, beta = np.ones(3), np.zeros(3)
        _, _, running_ref = _bn_ref(t, X, gamma, beta, running_ref, True)
        _, _, running_student = _bn_parts(t, X, gamma, beta, running_student, True)
        for key in ("mean", "var"):
            t.close(running_student[key], running_ref[key], f"running[{key!r}] after successive training steps",
                    hint="with running=None start from {'mean': zeros(D), 'var': ones(D)}, then "
                         "new = momentum * old + (1 - momentum) * batch statistic.")


def _bn_backward_unpack(r):
    return dict(zip(("dX", "dgamma", "dbeta"), r))


def _bn_backward_check(t, n, d):
    X = t.rng.normal(size=(n, d)) * t.rng.uniform(0.5, 2, size=d) + t.rng.normal(size=d)
    gamma, beta = t.rng.normal(size=d), t.rng.normal(size=d)
    result = t.call("batchnorm_forward", X, gamma, beta, None, True)
    cache = t.part(result, lambda r: r[1], "batchnorm_forward")
    dout = t.rng.normal(size=(n, d))
    grads = t.part(t.call("batchnorm_backward", dout, cache), _bn_backward_unpack, "batchnorm_backward")
    mean, var = X.mean(axis=0), X.var(axis=0)
    inv_std = 1 / np.sqrt(var + 1e-5)
    x_hat = (X - mean) * inv_std
    for key, shape in (("dX", (n, d)), ("dgamma", (d,)), ("dbeta", (d,))):
        _named_shape(t, grads[key], shape, f"{key} from batchnorm_backward",
                     {(n, d): f"{key} is not summed over the batch: sum over axis 0."} if key != "dX" else None)
    t.close(grads["dbeta"], dout.sum(axis=0), "dbeta", batch=n,
            candidates={"dbeta is the mean over the batch: it is the sum, dout.sum(axis=0).": dout.mean(axis=0)})
    t.close(grads["dgamma"], (dout * x_hat).sum(axis=0), "dgamma", batch=n,
            candidates={"dgamma uses X instead of the normalized x_hat: sum(dout * x_hat, axis=0).":
                        (dout * X).sum(axis=0)})
    dout = _peek_normal(t, (n, d))
    t.backward_check("batchnorm_forward", "batchnorm_backward", [X, gamma, beta, None, True],
                     {"dX": 0, "dgamma": 1, "dbeta": 2}, unpack=_bn_backward_unpack, batch=n,
                     candidates={"dX": {"the mean and variance are treated as constants: dX = dout * gamma / std "
                                        "misses the two paths through the batch statistics.":
                                        dout * gamma * inv_std,
                                        "the path through the mean is missing: subtract mean(g) over the batch.":
                                        inv_std * (dout * gamma - x_hat * (dout * gamma * x_hat).mean(axis=0)),
                                        "the path through the variance is missing: subtract x_hat * mean(g * x_hat).":
                                        inv_std * (dout * gamma - (dout * gamma).mean(axis=0))}})


@visible("batchnorm_backward")
def shapes_of_the_gradients(t):
    """dX (4, 3), dgamma (3,), dbeta (3,) and dbeta = sum(dout)"""
    X = t.rng.normal(size=(4, 3))
    result = t.call("batchnorm_forward", X, np.ones(3), np.zeros(3), None, True)
    cache = t.part(result, lambda r: r[1], "batchnorm_forward")
    dout = t.rng.normal(size=(4, 3))
    grads = t.part(t.call("batchnorm_backward", dout, cache), _bn_backward_unpack, "batchnorm_backward")
    _named_shape(t, grads["dX"], (4, 3), "dX")
    _named_shape(t, grads["dgamma"], (3,), "dgamma", {(4, 3): "dgamma is not summed over the batch: sum over axis 0."})
    t.close(_named_shape(t, grads["dbeta"], (3,), "dbeta", {(4, 3): "dbeta is not summed over the batch: sum over axis 0."}),
            dout.sum(axis=0), "dbeta", batch=4)


@hidden("batchnorm_backward")
def batchnorm_gradient_check(t):
    """dX, dgamma, dbeta against centered differences, N = 6, D = 4, random gamma, beta and dout"""
    _bn_backward_check(t, 6, 4)


@hidden("batchnorm_backward")
def batchnorm_gradient_check_other_shape(t):
    """N = 3, D = 7"""
    _bn_backward_check(t, 3, 7)


# -- Part 6: training on the digits ------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    X, y = digits.data.astype(np.float64), digits.target.astype(np.int64)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    return X_train, X_val, y_train, y_val


def _train(t, X_train, y_train, X_val, y_val, seed):
    start = time.perf_counter()
    result = t.call("train_mlp", X_train, y_train, X_val, y_val, np.random.default_rng(seed))
    seconds = time.perf_counter() - start
    predict_fn = t.part(result, lambda r: r[0], "train_mlp")
    history = t.part(result, lambda r: r[1], "train_mlp")
    t.require(callable(predict_fn), f"the first thing train_mlp returns is a {type(predict_fn).__name__}, "
                                    "expected the predict function.",
              hint="return (predict, history) where predict(X) gives the labels of raw pixel images.")
    t.require(isinstance(history, dict) and "loss" in history,
              "history must be a dict with at least the key \"loss\".",
              hint='history = {"loss": [...], ...}: one loss per step (or per epoch).')
    losses = history["loss"]
    t.require(isinstance(losses, list) and len(losses) > 0,
              f'history["loss"] must be a non-empty list, got {type(losses).__name__}.',
              hint="append one float per step to a Python list.")
    values = t.array(losses, 'history["loss"]')
    t.require(values.ndim == 1 and np.all(np.isfinite(values)),
              'history["loss"] must be a list of finite numbers.',
              cause="a nan or inf loss: the learning rate is too high, or an unstable log/exp.")
    labels = t.array(_call_predict(t, predict_fn, X_val), "predict(X_val)")
    t.require(labels.shape == y_val.shape, f"predict(X_val) has shape {labels.shape}, expected {y_val.shape}.",
              hint="return one integer label per image: np.argmax(logits, axis=1).")
    few = t.array(_call_predict(t, predict_fn, X_val[:3]), "predict(X_val[:3])")
    t.require(few.shape == (3,) and np.array_equal(few, labels[:3]),
              "predict(X_val[:3]) differs from the first 3 labels of predict(X_val): the prediction of an image "
              "depends on the other images it is passed with.",
              cause="predict scales its input with statistics of that input (or of the batch) instead of the "
                    "training statistics.",
              hint="compute the mean and std once from X_train inside train_mlp and use them in predict.")
    return values, float(np.mean(labels == y_val)), seconds


def _call_predict(t, predict_fn, X):
    namespace = {"predict_under_test": predict_fn}
    inner = type(t)(t.assignment, t.exercise, namespace, t.rng)
    return inner.call("predict_under_test", X)


@visible("train_mlp")
def trains_on_a_small_subset(t):
    """360 training images, 150 validation images: returns (predict, history), learns something"""
    X_train, X_val, y_train, y_val = _digits_split()
    losses, acc, seconds = _train(t, X_train[:360], y_train[:360], X_val[:150], y_val[:150], seed=1)
    t.require(acc >= 0.6, f"validation accuracy on the small subset is {acc:.1%}, expected at least 60%.",
              cause="the network does not learn: check the scaling (training statistics), the optimizer step "
                    "(params = step(...)) and the learning rate.",
              hint="run the Part 6 cells and look at the loss curve.")


@hidden("train_mlp")
def reaches_97_percent_on_the_digits(t):
    """default config, rng seed 0, the fixed split: at least 97% validation accuracy within 20 s"""
    X_train, X_val, y_train, y_val = _digits_split()
    losses, acc, seconds = _train(t, X_train, y_train, X_val, y_val, seed=0)
    t.require(seconds <= TIME_BUDGET,
              f"train_mlp took {seconds:.1f} s, over the budget of {TIME_BUDGET:.0f} s.",
              hint="fewer epochs or a smaller hidden layer; vectorize the minibatch loop (no Python loop over examples).")
    t.require(acc >= TARGET_ACCURACY,
              f"validation accuracy is {acc:.2%}, expected at least {TARGET_ACCURACY:.0%} (trained in {seconds:.1f} s).",
              cause="typical causes: features not standardized with the training statistics (or predict not "
                    "applying the same scaling to raw pixels), too few epochs, a learning rate too high or too low.",
              hint="look at the loss and accuracy curves in Part 6; Adam with lr around 1e-3 to 1e-2, a hidden "
                   "layer of 100 to 300 units and 20 to 50 epochs is a good start.")
    t.require(float(np.mean(losses[-5:])) < float(np.mean(losses[:5])),
              'history["loss"] does not go down during training.',
              hint="record the loss of every step, in order.")
