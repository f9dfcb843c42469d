"""Visible checks of backprop (shipped to students): expected values only through t.ref and t.data.

Shapes and small hand-computable values. Every question a check asks `t.ref` or `t.data` is about inputs it made
itself (literals, t.rng, seeded generators), so that it finds its answer in the check data the release carries.
The outputs of named mistakes come from the generators in graders.hidden.backprop (`t.data("backprop_...")`);
this module holds input builders, the checks, and helpers that read results, check shapes and word messages.
"""
from __future__ import annotations

import time

import numpy as np

from ..checks.failures import Failure
from ..checks.registry import checks_for

visible, _ = checks_for("03_backprop")


# -- helpers: inputs, reading results, shapes --------------------------------------------------------------

def _named_shape(t, got, expected_shape, what, named=None):
    """Read an array and fail with a named cause when its shape is one a known mistake gives.

    Inputs:
      got: what the student returned; expected_shape: tuple; what: its name in messages.
      named: {wrong shape: the mistake that gives it}, or None.
    Returns:
      the result as a float64 array (any shape: a shape no mistake is named for is left to the comparison).
    """
    arr = t.array(got, what)
    shape = np.shape(arr)
    if shape != tuple(expected_shape) and named and shape in named:
        raise Failure(f"{what} has shape {shape}, expected {tuple(expected_shape)}.", cause=named[shape])
    return arr


def _dense_inputs(rng, n, d, h):
    """Random dense-layer inputs: X (n, d), W (d, h), b (h,)."""
    return rng.normal(size=(n, d)), rng.normal(size=(d, h)), rng.normal(size=h)


def _mlp_params(rng, sizes):
    """He-scaled random parameters {"W1": (sizes[0], sizes[1]), "b1": (sizes[1],), ...}, nonzero biases."""
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
    """The arrays d[k] for k in keys, raveled and concatenated into one vector (to compare dicts at once)."""
    return np.concatenate([np.ravel(d[k]) for k in keys])


# -- Part 1: dense and ReLU backward -----------------------------------------------------------------------

def _dense_shape_names(n, d, h):
    """{gradient: {wrong shape: the mistake that gives it}} for dense_backward with X (n, d) and W (d, h)."""
    named = {"dW": {(h, d): "dW is transposed: it must be X.T @ dout, shape (D_in, D_out); dout.T @ X gives its transpose."},
             "db": {(1, h): "db kept an axis of length 1: dout.sum(axis=0) without keepdims.",
                    (n, h): "db is not summed over the batch: db = dout.sum(axis=0).",
                    (n,): "db is summed over the wrong axis (axis=1): sum over the batch, axis 0.",
                    (): "db is summed over everything: sum over the batch only, axis 0."},
             "dX": {}}
    return named


def _dense_unpack(r):
    """dense_backward's result (dX, dW, db) as {"dX": dX, "dW": dW, "db": db}."""
    return dict(zip(("dX", "dW", "db"), r))


def _cache(t, forward, *args):
    """The cache of the student's own `forward(*args)` (its form is theirs: only their backward reads it)."""
    return t.part(t.call(forward, *args), lambda r: r[1], forward)


@visible("dense_backward")
def shapes_and_the_worked_example(t):
    """the worked example (one row) and the shapes of dX, dW, db"""
    x, W = np.array([[1.0, 2.0]]), np.array([[0.5, -1.0], [0.25, 1.0]])
    dout = np.array([[1.0, -2.0]])
    slips = t.data("backprop_dense_backward_slips", x, W, dout)
    result = t.call("dense_backward", dout, _cache(t, "dense_forward", x, W, np.zeros(2)))
    grads = t.part(result, _dense_unpack, "dense_backward")
    names = _dense_shape_names(1, 2, 2)
    t.close(_named_shape(t, grads["dX"], (1, 2), "dX", names["dX"]), [[2.5, -1.75]], "dX", candidates=slips["dX"])
    t.close(_named_shape(t, grads["dW"], (2, 2), "dW", names["dW"]), [[1.0, -2.0], [2.0, -4.0]], "dW",
            candidates=slips["dW"])
    t.close(_named_shape(t, grads["db"], (2,), "db", names["db"]), [1.0, -2.0], "db")
    X, W, b = _dense_inputs(t.rng, 4, 3, 5)
    grads = t.part(t.call("dense_backward", t.rng.normal(size=(4, 5)), _cache(t, "dense_forward", X, W, b)),
                   _dense_unpack, "dense_backward")
    for key, shape in (("dX", (4, 3)), ("dW", (3, 5)), ("db", (5,))):
        arr = _named_shape(t, grads[key], shape, f"{key} from dense_backward (N=4, D_in=3, D_out=5)",
                           _dense_shape_names(4, 3, 5)[key])
        t.require(np.shape(arr) == shape, f"{key} has shape {np.shape(arr)}, expected {shape}.")


@visible("relu_backward")
def the_worked_example_relu(t):
    """X = [-1, 0, 2], dout = [5, 6, 7] gives [0, 0, 7]"""
    X, dout = np.array([-1.0, 0.0, 2.0]), np.array([5.0, 6.0, 7.0])
    got = t.call("relu_backward", dout, _cache(t, "relu_forward", X))
    t.close(got, np.array([0.0, 0.0, 7.0]), "relu_backward(dout, X)",
            candidates=t.data("backprop_relu_backward_slips", X, dout))


# -- Part 2: softmax cross-entropy -------------------------------------------------------------------------

def _sce_parts(t, logits, y):
    """The student's (loss, dlogits) for these inputs, as returned (read later)."""
    result = t.call("softmax_cross_entropy", logits, y)
    loss = t.part(result, lambda r: r[0], "softmax_cross_entropy")
    dlogits = t.part(result, lambda r: r[1], "softmax_cross_entropy")
    return loss, dlogits


def _sce_check(t, logits, y, gradient=True):
    """softmax_cross_entropy on logits (N, C) and labels y (N,): the loss, the shape of dlogits, with
    `gradient` dlogits against centered differences of the reference loss, then dlogits against the reference."""
    n = logits.shape[0]
    ref_loss, ref_d = t.ref("softmax_cross_entropy")(logits.copy(), y.copy())
    slips = t.data("backprop_sce_slips", logits, y)
    loss, dlogits = _sce_parts(t, logits, y)
    inputs = f"logits {logits.shape} in [{logits.min():.3g}, {logits.max():.3g}], y {y.shape}"
    t.close(loss, ref_loss, "the loss", scalar=True, batch=n, inputs=inputs, candidates=slips["loss"])
    _named_shape(t, dlogits, logits.shape, "dlogits")
    if gradient:
        t.gradient(dlogits, t.data("backprop_sce_numerical_dlogits", logits, y), "dlogits", batch=n,
                   inputs=inputs, candidates=slips["gradient"])
    t.close(dlogits, ref_d, "dlogits", batch=n, atol=1e-12, inputs=inputs, candidates=slips["dlogits"])


@visible("softmax_cross_entropy")
def the_worked_example_sce(t):
    """logits [2, 1, 0] with class 0, and a batch of 2"""
    _sce_check(t, np.array([[2.0, 1.0, 0.0]]), np.array([0]), gradient=False)
    _sce_check(t, np.array([[2.0, 1.0, 0.0], [0.5, 0.5, 3.0]]), np.array([0, 1]), gradient=False)


# -- Part 2: the mean squared error's gradient -------------------------------------------------------------

def _mse_check(t, pred, target, gradient=True):
    """mse_backward on pred and target of one shape: a returned loss named, then (with `gradient`) dpred against
    centered differences of the mean squared error, then dpred against the reference."""
    slips = t.data("backprop_mse_slips", pred, target)
    inputs = f"pred {pred.shape}, target {target.shape}"
    got = t.array(t.call("mse_backward", pred, target), "mse_backward(pred, target)")
    if np.ndim(got) == 0 and pred.size > 1 and np.isclose(float(got), slips["loss"], rtol=1e-6, atol=1e-12):
        raise Failure(f"mse_backward returned one number, {float(got):.6g}: the loss mse_loss(pred, target), "
                      f"not its gradient (expected an array of shape {pred.shape}).", inputs=inputs,
                      cause="the loss is returned instead of the gradient: dpred has one entry per entry of pred.",
                      hint="return 2 * (pred - target) / pred.size, an array shaped like pred.")
    if gradient:
        t.gradient(got, t.data("backprop_mse_numerical_dpred", pred, target), "dpred", inputs=inputs,
                   candidates=slips["dpred"])
    t.close(got, t.ref("mse_backward")(pred.copy(), target.copy()), "dpred", atol=1e-12, inputs=inputs,
            candidates=slips["dpred"])


@visible("mse_backward")
def the_worked_example_mse(t):
    """the worked example (2, 3), and a 1-D batch of 4"""
    pred = np.array([[0.5, 2.0, 1.0], [1.0, 0.0, 3.0]])
    target = np.array([[1.0, 2.0, 0.0], [1.0, 1.0, 3.0]])
    _mse_check(t, pred, target, gradient=False)
    _mse_check(t, np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 0.0, 3.0, 5.0]), gradient=False)


# -- Part 3: the network -----------------------------------------------------------------------------------

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


def _mlp_grad_check(t, sizes, n):
    """Every gradient of mlp_backward against centered differences of mlp_forward, N = n, random dlogits.

    The gradients are named grads['W1'], ... in messages; mlp_backward must return exactly the keys of params,
    each shaped like its parameter.
    """
    X = t.rng.normal(size=(n, sizes[0]))
    params = _mlp_params(t.rng, sizes)
    keys = list(params)
    label = {key: f"grads[{key!r}]" for key in keys}

    def unpack(result):
        return {label[k]: v for k, v in _read_dict(t, result, keys, "mlp_backward(...)", params).items()}

    def candidates(douts):
        return {label[k]: v for k, v in t.data("backprop_mlp_backward_slips", X, params, douts[0]).items()}

    t.backward_check("mlp_forward", "mlp_backward", [X, params], {label[k]: (1, k) for k in keys},
                     unpack=unpack, batch=n, candidates=candidates)



@visible("mlp_backward")
def mlp_gradient_check_two_layers(t):
    """every gradient of a 2-layer network (4 -> 6 -> 3), N = 5, random dlogits, against centered differences
    (relative error below 1e-6)"""
    _mlp_grad_check(t, [4, 6, 3], 5)


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


# -- Part 4: optimizers ------------------------------------------------------------------------------------

def _opt_params(rng):
    """Random parameters of a 3 -> 4 -> 2 network: {"W1": (3, 4), "b1": (4,), "W2": (4, 2), "b2": (2,)}."""
    return {"W1": rng.normal(size=(3, 4)), "b1": rng.normal(size=4), "W2": rng.normal(size=(4, 2)),
            "b2": rng.normal(size=2)}


def _grad_sequence(rng, params, steps):
    """`steps` random gradient dicts shaped like params, growing in scale from 0.5 to 2."""
    return [{k: rng.normal(size=v.shape) * scale for k, v in params.items()}
            for scale in np.linspace(0.5, 2.0, steps)]


#: The generator of each optimizer's named mistakes: {mistake: the trajectory it gives} (graders.hidden.backprop).
_TRAJECTORY_SLIPS = {"momentum_step": "backprop_momentum_slips", "adam_step": "backprop_adam_slips",
                     "adamw_step": "backprop_adamw_slips"}


def _at_step(kwargs, step):
    """The hyperparameters of step `step` (0-based): a list value is a schedule, one entry per step (e.g.
    lr=[0.1, 0.02, ...]); any other value holds for every step."""
    return {key: value[step] if isinstance(value, list) else value for key, value in kwargs.items()}


def _student_trajectory(t, name, params, grad_seq, **kwargs):
    """The student's optimizer `name` run over grad_seq from state None, its own state fed back each step;
    kwargs are the hyperparameters, a list for one that changes between steps (see _at_step).

    Returns:
      (steps, P) array: row s holds the parameters after step s + 1, raveled in params' key order.
    """
    keys, state, out = list(params), None, []
    for step, grads in enumerate(grad_seq, start=1):
        result = t.call(name, params, grads, state, **_at_step(kwargs, step - 1))
        new_params = t.part(result, lambda r: r[0], name)
        state = t.part(result, lambda r: r[1], name)
        params = _read_dict(t, new_params, keys, f"the parameters returned at step {step}", params)
        out.append(_flat(params, keys))
    return np.stack(out)


def _trajectory_check(t, name, params, grad_seq, **kwargs):
    """Hold the student's trajectory of optimizer `name` to the reference's (the same run, recorded as one
    (steps, P) array), naming the mistakes that _TRAJECTORY_SLIPS[name] knows."""
    expected = t.data("backprop_optimizer_trajectory", name, params, grad_seq, **kwargs)
    suspects = t.data(_TRAJECTORY_SLIPS[name], params, grad_seq, **kwargs)
    got = _student_trajectory(t, name, params, grad_seq, **kwargs)
    settings = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    t.close(got, expected, f"the parameters after each of {len(grad_seq)} steps of {name} ({settings}; "
                           f"row = step, state fed back)", candidates=suspects,
            inputs=f"{len(grad_seq)} steps from state=None, your state passed back each time; random gradients")


@visible("momentum_step")
def first_step_from_none(t):
    """the first step (state None) is p - lr * g; a second step with your state"""
    params = _opt_params(t.rng)
    grad_seq = _grad_sequence(t.rng, params, 2)
    _trajectory_check(t, "momentum_step", params, grad_seq, lr=0.1)


@visible("adam_step")
def first_adam_step(t):
    """the first step from None moves each entry by about lr (bias correction), then a second step"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "adam_step", params, _grad_sequence(t.rng, params, 2), lr=0.01)


@visible("adamw_step")
def adamw_two_steps(t):
    """two steps from None with lr = 0.01 and weight_decay = 0.1"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "adamw_step", params, _grad_sequence(t.rng, params, 2), lr=0.01, weight_decay=0.1)


@visible("sgd_step")
def one_sgd_step(t):
    """p - lr * g for every key, as a new dict"""
    params = _opt_params(t.rng)
    grads = {k: t.rng.normal(size=v.shape) for k, v in params.items()}
    got = _read_dict(t, t.call("sgd_step", params, grads, 0.1), list(params), "sgd_step(...)", params)
    expected = t.ref("sgd_step")(params, grads, 0.1)
    t.close(_flat(got, list(params)), _flat(expected, list(params)), "the new parameters",
            candidates=t.data("backprop_sgd_slips", params, grads, 0.1))


def _clip_check(t, grads, max_norm):
    """clip_grad_norm(grads, max_norm): total_norm, then the clipped gradients (all keys at once)."""
    keys = list(grads)
    ref_grads, ref_total = t.ref("clip_grad_norm")(grads, max_norm)
    slips = t.data("backprop_clip_slips", grads, max_norm)
    result = t.call("clip_grad_norm", grads, max_norm)
    new = _read_dict(t, t.part(result, lambda r: r[0], "clip_grad_norm"), keys, "the clipped grads", grads)
    total = t.part(result, lambda r: r[1], "clip_grad_norm")
    t.close(total, ref_total, "total_norm", scalar=True, candidates=slips["total_norm"])
    t.close(_flat(new, keys), _flat(ref_grads, keys), f"the clipped gradients (max_norm = {max_norm}, global norm "
                                                        f"{ref_total:.4g})", candidates=slips["clipped"])


@visible("clip_grad_norm")
def the_worked_example_clip(t):
    """{"a": [3, 0], "b": [[4]]} with max_norm = 1, and max_norm = 10 (unchanged)"""
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    _clip_check(t, grads, 1.0)
    _clip_check(t, grads, 10.0)


# -- Part 5: dropout and batch norm ------------------------------------------------------------------------

def _dropout_out(t, X, p, train, rng):
    """The student's dropout_forward(X, p, train, rng): (out as a float64 array shaped like X, the cache)."""
    result = t.call("dropout_forward", X, p, train, rng)
    out = t.part(result, lambda r: r[0], "dropout_forward")
    cache = t.part(result, lambda r: r[1], "dropout_forward")
    return _named_shape(t, out, X.shape, "the output of dropout_forward"), cache


def _kept_check(t, X, out, p):
    """The entries the student's dropout kept (out != 0) against the reference's value of a kept entry.

    The mask is the student's own draw, so the check asks only about X and p (what every entry becomes if it is
    kept, and under each named mistake) and compares the entries the student kept.
    """
    kept = out != 0
    values = t.data("backprop_dropout_kept_values", X, p)
    t.close(out[kept], values["kept"][kept], f"the kept entries (p = {p})",
            candidates={mistake: value[kept] for mistake, value in values["slips"].items()})


@visible("dropout_forward")
def evaluation_identity_and_scaling(t):
    """train=False and p=0 leave X unchanged; train=True gives 0 or X / (1 - p)"""
    X = t.rng.uniform(0.5, 1.5, size=(20, 30))
    rng = np.random.default_rng(0)
    out, _ = _dropout_out(t, X, 0.5, False, rng)
    t.close(out, X, "dropout_forward(X, 0.5, train=False) (the identity)",
            candidates=t.data("backprop_dropout_eval_slips", X, 0.5))
    out, _ = _dropout_out(t, X, 0.0, True, rng)
    t.close(out, X, "dropout_forward(X, 0.0, train=True) (p = 0 is the identity)")
    out, _ = _dropout_out(t, X, 0.5, True, rng)
    _kept_check(t, X, out, 0.5)


def _by_mask(kept, pair):
    """Per entry, pair[0] where the forward kept it and pair[1] where it dropped it; both shaped like kept."""
    return np.where(kept, pair[0], pair[1])


def _dropout_backward_check(t, shape, p):
    """dropout_backward through the mask of the student's own forward (p, train=True, a seeded rng).

    The mask is the student's draw, so the check asks only about dout and p (what an entry's gradient is where
    the forward kept it and where it dropped it, and under each named mistake) and picks by the student's mask.
    """
    X = t.rng.uniform(0.5, 1.5, size=shape)
    out, cache = _dropout_out(t, X, p, True, np.random.default_rng(5))
    dout = t.rng.normal(size=shape)
    dX = _named_shape(t, t.call("dropout_backward", dout, cache), shape, "dX from dropout_backward")
    kept = out != 0
    values = t.data("backprop_dropout_backward_values", dout, p)
    t.close(dX, _by_mask(kept, values["expected"]), f"dX from dropout_backward (p = {p}, the forward's mask)",
            candidates={mistake: _by_mask(kept, pair) for mistake, pair in values["slips"].items()})


@visible("dropout_backward")
def same_mask_small(t):
    """p = 0.5 on (6, 5): the gradient flows (doubled) exactly where the forward kept the input"""
    _dropout_backward_check(t, (6, 5), 0.5)


def _bn_parts(t, X, gamma, beta, running, train, **kwargs):
    """The student's batchnorm_forward: (raw result, out, the returned running as {"mean", "var"} arrays)."""
    result = t.call("batchnorm_forward", X, gamma, beta, running, train, **kwargs)
    out = t.part(result, lambda r: r[0], "batchnorm_forward")
    t.part(result, lambda r: r[1], "batchnorm_forward")
    new_running = t.part(result, lambda r: r[2], "batchnorm_forward")
    return result, out, _read_dict(t, new_running, ["mean", "var"], "the returned running",
                                   {"mean": X[0], "var": X[0]})


def _bn_train_check(t, X, gamma, beta, running, **kwargs):
    """batchnorm_forward in training mode: the output, then the updated running mean and variance."""
    ref_out, _, ref_running = t.ref("batchnorm_forward")(X, gamma, beta, running, True, **kwargs)
    slips = t.data("backprop_batchnorm_forward_slips", X, gamma, beta, running, True, **kwargs)
    _, out, new_running = _bn_parts(t, X, gamma, beta, running, True, **kwargs)
    t.close(out, ref_out, "the output in training mode", candidates=slips["out"])
    for key in ("mean", "var"):
        t.close(new_running[key], ref_running[key], f"running[{key!r}] after a training step",
                candidates=slips[key])


@visible("batchnorm_forward")
def training_mode_from_none(t):
    """the worked example, and a (6, 4) batch with gamma = 1, beta = 0, running None"""
    X = np.array([[1.0], [2.0], [3.0], [6.0]])
    _bn_train_check(t, X, np.ones(1), np.zeros(1), None)
    X = t.rng.normal(size=(6, 4)) * 3 + 2
    _bn_train_check(t, X, np.ones(4), np.zeros(4), None)


def _bn_grads(t, result, n, d, what="{key}"):
    """batchnorm_backward's result (dX, dgamma, dbeta) as {"dX": (n, d), "dgamma": (d,), "dbeta": (d,)};
    fails with a named cause when dgamma or dbeta is not summed over the batch."""
    grads = t.part(result, lambda r: {"dX": r[0], "dgamma": r[1], "dbeta": r[2]}, "batchnorm_backward")
    named = {key: {(n, d): f"{key} is not summed over the batch: sum over axis 0."} for key in ("dgamma", "dbeta")}
    return {key: _named_shape(t, grads[key], shape, what.format(key=key), named.get(key))
            for key, shape in (("dX", (n, d)), ("dgamma", (d,)), ("dbeta", (d,)))}


@visible("batchnorm_backward")
def shapes_of_the_gradients(t):
    """dX (4, 3), dgamma (3,), dbeta (3,) and dbeta = sum(dout)"""
    X = t.rng.normal(size=(4, 3))
    gamma, beta = np.ones(3), np.zeros(3)
    result = t.call("batchnorm_forward", X, gamma, beta, None, True)
    cache = t.part(result, lambda r: r[1], "batchnorm_forward")
    dout = t.rng.normal(size=(4, 3))
    grads = _bn_grads(t, t.call("batchnorm_backward", dout, cache), 4, 3)
    # the reference's gradients for the same inputs (never through the student's cache: its form is theirs)
    t.close(grads["dbeta"], t.data("backprop_batchnorm_gradients", X, gamma, beta, dout)[2], "dbeta", batch=4)


def _bn_backward_check(t, n, d, train=True):
    """dX, dgamma, dbeta of batchnorm_backward against centered differences of the reference batchnorm_forward,
    X (n, d) with features of different scales, random gamma and beta; `train` is the mode of the forward whose
    cache the backward gets (in evaluation mode with random running statistics: a plain affine map of X)."""
    X = t.rng.normal(size=(n, d)) * t.rng.uniform(0.5, 2, size=d) + t.rng.normal(size=d)
    gamma, beta = t.rng.normal(size=d), t.rng.normal(size=d)
    running = None if train else {"mean": t.rng.normal(size=d), "var": t.rng.uniform(0.5, 2, size=d)}
    slips = "backprop_batchnorm_backward_slips" if train else "backprop_batchnorm_eval_backward_slips"
    t.backward_check("batchnorm_forward", "batchnorm_backward", [X, gamma, beta, running, train],
                     {"dX": 0, "dgamma": 1, "dbeta": 2}, batch=n,
                     unpack=lambda r: _bn_grads(t, r, n, d, what="{key} from batchnorm_backward"),
                     candidates=lambda douts: t.data(slips, X, gamma, douts[0], running))


@visible("batchnorm_backward")
def batchnorm_gradient_check_small(t):
    """dX, dgamma, dbeta after a training-mode forward, N = 5, D = 3, random gamma, beta and dout, against
    centered differences (relative error below 1e-6)"""
    _bn_backward_check(t, 5, 3)


# -- Part 6: training on the digits ------------------------------------------------------------------------

def _digits_split(t):
    """The notebook's fixed split of the 8x8 digits (digits_split.npz, made once from scikit-learn's copy with a
    stratified 75/25 split, random_state 0): X_train (1347, 64) and X_val (450, 64) raw pixels 0..16 as float64,
    y_train (1347,) and y_val (450,) int64 labels."""
    X_train, X_val, y_train, y_val = t.data("backprop_digits_split")
    return X_train.astype(np.float64), X_val.astype(np.float64), y_train.astype(np.int64), y_val.astype(np.int64)


def _train(t, X_train, y_train, X_val, y_val, seed):
    """Run the student's train_mlp and its predict; check the form of what they return.

    Returns:
      (history["loss"] as a float64 vector, validation accuracy of predict(X_val), seconds train_mlp took).
    """
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
    labels = t.array(t.call_returned(predict_fn, X_val, name="predict"), "predict(X_val)")
    t.require(labels.shape == y_val.shape, f"predict(X_val) has shape {labels.shape}, expected {y_val.shape}.",
              hint="return one integer label per image: np.argmax(logits, axis=1).")
    few = t.array(t.call_returned(predict_fn, X_val[:3], name="predict"), "predict(X_val[:3])")
    t.require(few.shape == (3,) and np.array_equal(few, labels[:3]),
              "predict(X_val[:3]) differs from the first 3 labels of predict(X_val): the prediction of an image "
              "depends on the other images it is passed with.",
              cause="predict scales its input with statistics of that input (or of the batch) instead of the "
                    "training statistics.",
              hint="compute the mean and std once from X_train inside train_mlp and use them in predict.")
    return values, float(np.mean(labels == y_val)), seconds


#: The drills' pass marks, stated in the notebook: the untrained network's loss within INITIAL_LOSS_MARGIN of
#: log C; after the short run on the small subset, its loss below OVERFIT_LOSS and every example right.
INITIAL_LOSS_MARGIN = 1.5
OVERFIT_LOSS = 0.01


def _sanity_parts(t, X, y, seed, **config):
    """Run the student's sanity_checks(X, y, rng(seed), **config) and read its dict.

    Returns:
      ({"initial_loss": float, "log_c": float, "small_losses": (steps,) float64, "small_accuracy": float},
       seconds the call took).
    """
    start = time.perf_counter()
    result = t.call("sanity_checks", X, y, np.random.default_rng(seed), **config)
    seconds = time.perf_counter() - start
    keys = ("initial_loss", "log_c", "small_losses", "small_accuracy")
    t.require(isinstance(result, dict) and set(keys) <= set(result),
              f"sanity_checks returned a {type(result).__name__}"
              + (f" with keys {sorted(result)}" if isinstance(result, dict) else "")
              + f", expected a dict with the keys {list(keys)}.",
              hint="return {\"initial_loss\": ..., \"log_c\": ..., \"small_losses\": [...], \"small_accuracy\": ...}.")
    losses = result["small_losses"]
    t.require(isinstance(losses, list) and len(losses) > 0,
              f'result["small_losses"] must be a non-empty list, got {type(losses).__name__}.',
              hint="append the loss of every step to a Python list.")
    return {"initial_loss": t.number(result["initial_loss"], 'result["initial_loss"]'),
            "log_c": t.number(result["log_c"], 'result["log_c"]'),
            "small_losses": t.array(losses, 'result["small_losses"]'),
            "small_accuracy": t.number(result["small_accuracy"], 'result["small_accuracy"]')}, seconds


def _sanity_check(t, X, y, seed, budget, **config):
    """sanity_checks on X (N, D), y (N,) with rng seed `seed`: log C, the untrained network's loss (the
    reference's network from the same rng) and its distance to log C, then the overfitting run on the first
    n_small examples: one loss per step, the first one the untrained network's, the last below OVERFIT_LOSS, all of
    them right, within `budget` seconds. config: the keyword arguments passed (hidden, n_small, steps, lr)."""
    got, seconds = _sanity_parts(t, X, y, seed, **config)
    expected = t.data("backprop_sanity_expected", X, y, seed, **config)
    n_classes, steps, n_small = expected["n_classes"], expected["steps"], expected["n_small"]
    inputs = f"X {X.shape}, {n_classes} classes, rng seed {seed}" + "".join(f", {k}={v}" for k, v in config.items())
    t.close(got["log_c"], expected["log_c"], f"log_c for {n_classes} classes", scalar=True, inputs=inputs,
            candidates={"log_c is log10(C): the loss uses the natural log, np.log(C).": np.log10(n_classes),
                        "log_c is log2(C): the loss uses the natural log, np.log(C).": np.log2(n_classes),
                        "log_c is log(10) whatever the data: C is the number of classes of y, y.max() + 1.":
                            np.log(10.0)})
    t.require(abs(got["initial_loss"] - expected["log_c"]) < INITIAL_LOSS_MARGIN,
              f"the untrained network's loss is {got['initial_loss']:.3g}, more than {INITIAL_LOSS_MARGIN} away from "
              f"log C = {expected['log_c']:.3f}.", inputs=inputs,
              cause="starts far above log C: the initial logits are too large (weights drawn N(0, 1) instead of "
                    "He's init_mlp, or unscaled inputs); far below: the loss is not the mean cross-entropy."
                    if got["initial_loss"] > expected["log_c"] else
                    "a loss below log C before any training: the loss is not the mean cross-entropy of the "
                    "untrained network (weight decay, or a loss taken after a step).",
              hint="initialize with init_mlp([D, *hidden, C], rng) and measure mlp_loss_and_grads(X, y, params)[0] "
                   "before any step.")
    t.close(got["initial_loss"], expected["initial_loss"], "the untrained network's loss on all of X", scalar=True,
            rtol=1e-6, inputs=inputs, hint="the first thing drawn from rng is init_mlp([D, *hidden, C], rng); the "
                                           "loss is measured on all of X, with weight_decay = 0.")
    losses = got["small_losses"]
    t.require(losses.shape == (steps,),
              f'result["small_losses"] has {losses.size} values, expected {steps} (one per step).', inputs=inputs,
              hint="record the loss before each of the `steps` optimizer steps.")
    t.close(losses[0], expected["first_small_loss"], f"the first loss of the overfitting run (on X[:{n_small}])",
            scalar=True, rtol=1e-6, inputs=inputs,
            hint=f"train the network you just measured on the first n_small = {n_small} examples only.")
    t.require(np.all(np.isfinite(losses)) and losses[-1] < OVERFIT_LOSS,
              f"after {steps} steps on {n_small} examples the loss is {losses[-1]:.3g}, expected below "
              f"{OVERFIT_LOSS} (a network that cannot memorise {n_small} examples has a bug).", inputs=inputs,
              cause="the loss does not fall: the parameters are not updated (params = step(...)[0] not assigned, "
                    "or the state not passed back)." if abs(losses[-1] - losses[0]) < 1e-9 else
                    "the loss falls too slowly: weight decay left on, or too small a learning rate.",
              hint="at every step, keep both things the AdamW step returns (the new parameters and the new state), with "
                   "weight decay 0 for this drill.")
    t.require(got["small_accuracy"] == 1.0,
              f"the accuracy on the {n_small} examples after the run is {got['small_accuracy']:.2%}, expected 100%.",
              inputs=inputs, hint="measure accuracy(predict(X[:n_small], params), y[:n_small]) after the last step.")
    t.require(seconds <= budget, f"sanity_checks took {seconds:.1f} s, over the budget of {budget:.0f} s.",
              hint="full-batch steps on the small subset: no Python loop over examples.")


def _clustered(rng, n, d, c):
    """A standardized classification problem: n points (n, d) around c random centres, int labels (n,) with
    every class present (so that C = c)."""
    centres = rng.normal(size=(c, d))
    y = rng.integers(0, c, size=n)
    y[:c] = np.arange(c)
    X = centres[y] + rng.normal(size=(n, d))
    return (X - X.mean(axis=0)) / X.std(axis=0), y


@visible("sanity_checks")
def the_drills_on_a_small_problem(t):
    """3 classes, 8 features, 30 examples, hidden (32,), lr 2e-2: log C, the untrained loss, 20 examples memorised"""
    X, y = _clustered(t.rng, 30, 8, 3)
    _sanity_check(t, X, y, 0, 2.0, hidden=(32,), lr=2e-2)


@visible("train_mlp")
def trains_on_a_small_subset(t):
    """360 training images, 150 validation images: returns (predict, history), learns something"""
    X_train, X_val, y_train, y_val = _digits_split(t)
    losses, acc, seconds = _train(t, X_train[:360], y_train[:360], X_val[:150], y_val[:150], seed=1)
    t.require(acc >= 0.6, f"validation accuracy on the small subset is {acc:.1%}, expected at least 60%.",
              cause="the network does not learn: check the scaling (training statistics), the optimizer step "
                    "(params = step(...)) and the learning rate.",
              hint="run the Part 6 cells and look at the loss curve.")
