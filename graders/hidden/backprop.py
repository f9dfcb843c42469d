"""Checks for assignment 03_backprop.

Visible checks: shapes and small hand-computable values. Hidden checks: gradient checks against centered
differences with random upstream gradients and distinct non-square shapes, N = 1, inputs that must not change,
optimizer trajectories over several steps (the student's own state fed back), properties of dropout (never exact
random draws), batch norm in both modes, and the real training run on the digits.
Each `candidates` entry names a classic mistake by the output it would produce; the generators below
(`@generates("backprop_...")`) compute those outputs for the visible and the hidden checks alike.
"""
from __future__ import annotations

import numpy as np

from ..checks.failures import Failure
from .gradients import numerical_gradient
from ..checks.registry import checks_for
from ..tooling.course import course_root
from ..visible.backprop import (_at_step, _bn_backward_check, _bn_parts, _bn_train_check, _cache,
                                _clip_check, _clustered, _dense_inputs, _dense_shape_names, _dense_unpack,
                                _digits_split, _dropout_backward_check, _dropout_out, _flat, _grad_sequence,
                                _kept_check, _mlp_grad_check, _mlp_params, _mse_check, _named_shape, _opt_params,
                                _read_dict, _sanity_check, _sce_check, _train, _trajectory_check)
from . import generates
from .mlp import clipped_cross_entropies

_, hidden = checks_for("03_backprop")

TIME_BUDGET = 20.0       # seconds, the contract's budget for train_mlp (one core)
TARGET_ACCURACY = 0.97


# -- Part 1: dense and ReLU backward -----------------------------------------------------------------------

@generates("backprop_dense_backward_slips")
def dense_backward_slips(source, X, W, dout):
    """Named mistakes of dense_backward for the cache (X, W) and the upstream gradient dout.

    Inputs:
      X: (N, D_in); W: (D_in, D_out); dout: (N, D_out).
    Returns:
      {"dX": {mistake: (N, D_in)}, "dW": {mistake: (D_in, D_out)}, "db": {mistake: (D_out,)}}: a transpose
      only when W is square (otherwise its shape already names it), a 1/N only when N > 1 (else it is right).
    """
    n = X.shape[0]
    slips = {"dX": {}, "dW": {}, "db": {}}
    if W.shape[0] == W.shape[1]:
        slips["dX"]["dX = dout @ W: it must be dout @ W.T (the shapes only agree by luck when W is square)."] = dout @ W
        slips["dW"]["dW is transposed: use X.T @ dout (D_in, D_out), not dout.T @ X."] = dout.T @ X
    if n > 1:
        slips["dW"]["dW is divided by N: the 1/N belongs to the loss gradient, not to the layer."] = X.T @ dout / n
        slips["db"]["db is the mean over the batch: the 1/N belongs to the loss gradient; sum here."] = \
            dout.mean(axis=0)
    return slips


def _dense_grads(t, result, n, d, h):
    """dense_backward's result (dX, dW, db) as {"dX": (n, d), "dW": (d, h), "db": (h,)} float64 arrays; fails
    with a named cause when a gradient has the shape of a known mistake (the unpack of t.backward_check)."""
    grads = t.part(result, _dense_unpack, "dense_backward")
    t.require(len(grads) == 3, "`dense_backward` must return three arrays (dX, dW, db).")
    names = _dense_shape_names(n, d, h)
    shapes = {"dX": (n, d), "dW": (d, h), "db": (h,)}
    return {key: _named_shape(t, grads[key], shapes[key], f"{key} from dense_backward", names[key]) for key in shapes}


def _dense_check(t, n, d, h):
    """dX, dW, db of dense_backward against centered differences of dense_forward, X (n, d), W (d, h)."""
    X, W, b = _dense_inputs(t.rng, n, d, h)
    t.backward_check("dense_forward", "dense_backward", [X, W, b], {"dX": 0, "dW": 1, "db": 2},
                     unpack=lambda r: _dense_grads(t, r, n, d, h), batch=n,
                     candidates=lambda douts: t.data("backprop_dense_backward_slips", X, W, douts[0]))


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
    slips = t.data("backprop_dense_backward_slips", X, W, dout)
    grads = t.part(t.call("dense_backward", dout, _cache(t, "dense_forward", X, W, b)), _dense_unpack,
                   "dense_backward")
    names = _dense_shape_names(n, d, h)
    t.close(_named_shape(t, grads["db"], (h,), "db", names["db"]), dout.sum(axis=0), "db", batch=n,
            candidates=slips["db"])
    t.close(_named_shape(t, grads["dW"], (d, h), "dW", names["dW"]), X.T @ dout, "dW", batch=n,
            candidates=slips["dW"])
    t.close(_named_shape(t, grads["dX"], (n, d), "dX", names["dX"]), dout @ W.T, "dX")


@hidden("dense_backward")
def dense_single_example(t):
    """N = 1, and a square W (where dout @ W would not fail)"""
    _dense_check(t, 1, 4, 3)
    X, W, b = _dense_inputs(t.rng, 3, 4, 4)
    dout = t.rng.normal(size=(3, 4))
    slips = t.data("backprop_dense_backward_slips", X, W, dout)
    grads = t.part(t.call("dense_backward", dout, _cache(t, "dense_forward", X, W, b)), _dense_unpack,
                   "dense_backward")
    t.close(grads["dX"], dout @ W.T, "dX with a square W", candidates=slips["dX"])
    t.close(grads["dW"], X.T @ dout, "dW with a square W", candidates=slips["dW"])


def _away_from_zero(rng, shape, margin=0.05):
    """Random normal inputs of `shape` kept at least `margin` away from the kink at 0."""
    z = rng.normal(size=shape)
    return np.where(np.abs(z) < margin, z + np.sign(z + 1e-12) * 2 * margin, z)


@generates("backprop_relu_backward_slips")
def relu_backward_slips(source, X, dout):
    """Named mistakes of relu_backward for the input X and upstream dout (same shape): {mistake: dX}."""
    return {"the gradient is passed where X <= 0 (no mask): dX = dout * (X > 0).": dout,
            "the valve is open at X == 0: use X > 0, not X >= 0.": dout * (X >= 0),
            "dout multiplied by the ReLU output instead of the 0/1 mask: use dout * (X > 0).": dout * np.maximum(X, 0),
            "the mask is inverted: the gradient flows where X > 0, not where X <= 0.": dout * (X <= 0)}


@hidden("relu_backward")
def relu_kink_and_negatives(t):
    """exact zeros and negative inputs in a (5, 4) batch: no gradient there"""
    X = t.rng.normal(size=(5, 4))
    X[0, :2] = 0.0
    X[3, 3] = 0.0
    dout = t.rng.normal(size=(5, 4))
    got = t.call("relu_backward", dout, _cache(t, "relu_forward", X))
    t.close(got, dout * (X > 0), "relu_backward(dout, X)", candidates=t.data("backprop_relu_backward_slips", X, dout))


@hidden("relu_backward")
def relu_gradient_check(t):
    """a gradient check through relu_forward away from the kink, (3, 7) and (1, 5)"""
    for shape in ((3, 7), (1, 5)):
        X = _away_from_zero(t.rng, shape)
        t.backward_check("relu_forward", "relu_backward", [X], {"dX": 0}, unpack=lambda r: {"dX": r})


# -- Part 2: softmax cross-entropy -------------------------------------------------------------------------

@generates("backprop_sce_slips")
def sce_slips(source, logits, y):
    """Named mistakes of softmax_cross_entropy for logits (N, C) and int labels y (N,).

    Returns:
      {"loss": {mistake: number}, "dlogits": {mistake: (N, C)}, "gradient": {mistake: (N, C)}}: the last are
      the mistakes named when dlogits fails the gradient check, "dlogits" those named against the reference.
    """
    n = logits.shape[0]
    log_softmax = source.function("log_softmax")
    p = np.exp(log_softmax(logits))
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1.0
    ref_loss, _ = source.function("softmax_cross_entropy")(logits.copy(), y.copy())
    log_p0 = log_softmax(logits.T).T  # the softmax over the wrong axis (the batch)
    axis0 = "the softmax is taken over axis 0 (the batch): normalize each row, over the classes (axis=-1)."
    loss = {axis0: float(-np.mean(log_p0[np.arange(n), y])),
            **clipped_cross_entropies(p[np.arange(n), y], ref_loss)}
    if n > 1:
        loss["the loss is summed over the batch: take the mean (divide by N)."] = n * ref_loss
    return {"loss": loss,
            "gradient": {"dlogits is softmax(logits) / N: subtract the one-hot of y.": p / n,
                         "dlogits is one_hot - softmax: the sign is reversed (softmax - one_hot).": (onehot - p) / n},
            "dlogits": {"dlogits is missing the 1/N: the loss is a mean, so is its gradient.": p - onehot,
                        "dlogits is softmax(logits) / N: subtract the one-hot of y.": p / n}}


@generates("backprop_sce_numerical_dlogits")
def sce_numerical_dlogits(source, logits, y):
    """Centered differences of the reference cross_entropy(logits, y) with respect to logits: (N, C)."""
    cross_entropy = source.function("cross_entropy")
    return numerical_gradient(lambda z: cross_entropy(z, y), logits)


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


# -- Part 2: the mean squared error's gradient -------------------------------------------------------------

@generates("backprop_mse_slips")
def mse_slips(source, pred, target):
    """Named mistakes of mse_backward for pred and target of one shape.

    Returns:
      {"loss": the loss mse_loss(pred, target) (a float), "dpred": {mistake: array shaped like pred}}.
    """
    diff = pred - target
    dpred = {"dpred is half the gradient: the derivative of (pred - target)² is 2 (pred - target), and our "
             "mse_loss has no 1/2 to cancel the 2.": diff / diff.size,
             "dpred has the wrong sign: it is 2 (pred - target) / pred.size; (target - pred) is the gradient of "
             "the loss with respect to target.": -2.0 * diff / diff.size,
             "dpred is missing the 1/pred.size: mse_loss is a mean over every element, so each entry of its "
             "gradient is divided by the number of elements.": 2.0 * diff}
    if diff.ndim > 1:  # on a 1-D batch the batch size is the element count: that mistake cannot show
        dpred[f"dpred is divided by the batch size N = {diff.shape[0]} only: mse_loss is a mean over every element, "
              f"so divide by pred.size = {diff.size} (N times the other axes)."] = 2.0 * diff / diff.shape[0]
    return {"loss": float(np.mean(diff ** 2)), "dpred": dpred}


@generates("backprop_mse_numerical_dpred")
def mse_numerical_dpred(source, pred, target):
    """Centered differences (float64) of the mean of (pred - target)**2 over every element, with respect to pred:
    an array shaped like pred."""
    target = np.asarray(target, dtype=np.float64)
    return numerical_gradient(lambda p: float(np.mean((p - target) ** 2)), pred)


@hidden("mse_backward")
def mse_random_gradient_check(t):
    """random (6, 4) and (3, 5, 2) inputs: dpred against centered differences, divided by every element"""
    for shape in ((6, 4), (3, 5, 2)):
        _mse_check(t, t.rng.normal(size=shape), t.rng.normal(size=shape))


@hidden("mse_backward")
def mse_single_example_and_vectors(t):
    """N = 1 with K = 7, and a 1-D batch of 5: dpred against centered differences"""
    for shape in ((1, 7), (5,)):
        _mse_check(t, t.rng.normal(size=shape) * 3, t.rng.normal(size=shape))


# -- Part 3: the network -----------------------------------------------------------------------------------

def _linear_backward(dlogits, cache):
    """mlp_backward without the ReLU valves, on the reference's cache: {"W1": ..., "b1": ..., ...}."""
    grads, d = {}, dlogits
    for layer in range(len(cache), 0, -1):
        (X, W), _ = cache[layer - 1]
        grads[f"W{layer}"], grads[f"b{layer}"] = X.T @ d, d.sum(axis=0)
        d = d @ W.T
    return grads


@generates("backprop_mlp_backward_slips")
def mlp_backward_slips(source, X, params, dlogits):
    """Named mistakes of mlp_backward for the network params on X (N, D) with upstream dlogits (N, C).

    Returns:
      {parameter name: {mistake: its gradient, shaped like the parameter}}.
    """
    logits, cache = source.function("mlp_forward")(X, params)
    relu_on_logits = source.function("mlp_backward")(dlogits * (logits > 0), cache)
    no_relu = _linear_backward(dlogits, cache)
    return {key: {"the ReLU valve is applied after the last layer too: the logits have no ReLU "
                  "(the last layer's relu cache is None).": relu_on_logits[key],
                  "the ReLU valves are skipped: go back through relu_backward before each hidden "
                  "layer's dense_backward.": no_relu[key]}
            for key in params}


@hidden("mlp_backward")
def mlp_gradient_check_three_layers(t):
    """every parameter of a 3-layer network (5 -> 7 -> 4 -> 3), N = 6, random dlogits"""
    _mlp_grad_check(t, [5, 7, 4, 3], 6)


@hidden("mlp_backward")
def mlp_gradient_check_one_and_two_layers(t):
    """a 1-layer network (no ReLU at all) and a 2-layer one with N = 1"""
    _mlp_grad_check(t, [4, 3], 5)
    _mlp_grad_check(t, [6, 5, 2], 1)


def _loss_and_grads_check(t, sizes, n, weight_decay):
    """mlp_loss_and_grads: the loss (mean, L2 on the weights with the 0.5) and every gradient against
    centered differences of the reference loss, naming the L2 and 1/N mistakes."""
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

def _run(step_fn, params, grad_seq, **kwargs):
    """Parameters after each step of a (reference or mistaken) optimizer from state None, its state fed back;
    kwargs are the hyperparameters, a list for one that changes between steps (see _at_step).

    Returns:
      (steps, P) array: row s holds the parameters after step s + 1, raveled in params' key order.
    """
    keys, state, out = list(params), None, []
    for step, grads in enumerate(grad_seq):
        params, state = step_fn(params, grads, state, **_at_step(kwargs, step))
        out.append(_flat(params, keys))
    return np.stack(out)


@generates("backprop_optimizer_trajectory")
def optimizer_trajectory(source, name, params, grad_seq, **kwargs):
    """The reference optimizer `name` (e.g. "adam_step") run over grad_seq from state None with kwargs, its own
    state fed back: (steps, P), row s the parameters after step s + 1 raveled in params' key order."""
    return _run(source.function(name), params, grad_seq, **kwargs)


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


@generates("backprop_momentum_slips")
def momentum_slips(source, params, grad_seq, **kwargs):
    """Named mistakes of momentum_step run over grad_seq from state None (kwargs: lr, beta as the check passes
    them): {mistake: (steps, P) trajectory}; "beta ignored" only when beta is not the default 0.9."""
    mistakes = {
        "v = beta*v + (1 - beta)*g is another convention: ours (PyTorch's) is v = beta*v + g.": _momentum_ema,
        "lr is folded into the velocity (v = beta*v - lr*g, p = p + v; or v = beta*v + lr*g, p = p - v): that "
        "equals our rule only while lr stays the same, since the velocity keeps the old steps' lr. Ours (PyTorch's) "
        "is v = beta*v + g, then p = p - lr*v.": _momentum_lr_in_v,
        "the velocity is not carried between steps (plain SGD): keep v in the returned state.": _momentum_no_state,
    }
    if kwargs.get("beta", 0.9) != 0.9:
        mistakes["beta is ignored (0.9 is used): use the beta argument."] = _momentum_beta_ignored
    return {label: _run(step, params, grad_seq, **kwargs) for label, step in mistakes.items()}


@hidden("momentum_step")
def momentum_trajectory(t):
    """six steps, lr = 0.05, beta = 0.9: v = beta*v + g, p = p - lr*v"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "momentum_step", params, _grad_sequence(t.rng, params, 6), lr=0.05, beta=0.9)


@hidden("momentum_step")
def momentum_other_beta(t):
    """five steps with beta = 0.5 and lr = 0.2"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "momentum_step", params, _grad_sequence(t.rng, params, 5), lr=0.2, beta=0.5)


@hidden("momentum_step")
def momentum_learning_rate_changes_between_steps(t):
    """five steps whose lr changes (0.1, 0.1, 0.02, 0.3, 0.05), as a schedule does: the velocity holds gradients"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "momentum_step", params, _grad_sequence(t.rng, params, 5), lr=[0.1, 0.1, 0.02, 0.3, 0.05])


def _adam_variant(bias_correction=True, advance=True, eps_inside=False, no_square=False, first_t=0):
    """An Adam step with one option changed (all defaults: the contract's Adam); first_t is the step count the
    state holds before the first step (the contract's 0, so that the first step has t = 1)."""
    def step(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        if state is None:
            state = {"t": first_t, "m": {k: 0.0 for k in params}, "v": {k: 0.0 for k in params}}
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


def _adam_hyperparameters_ignored(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """The contract's Adam step with lr as given but beta1, beta2 and eps left at their defaults."""
    return _adam_variant()(params, grads, state, lr=lr)


_ADAM_MISTAKES = {
    "no bias correction: divide m by (1 - beta1**t) and v by (1 - beta2**t).": _adam_variant(bias_correction=False),
    "t is not advanced between steps (the bias correction of step 1 is used every time): keep t in the state "
    "and add 1 at each step.": _adam_variant(advance=False),
    "the step count starts at 1 and is advanced before the first step, so the first bias correction uses t = 2: "
    "start the state at t = 0 and add 1 at the top of every step (the first step has t = 1).": _adam_variant(first_t=1),
    "only the first moment is bias-corrected: divide v by (1 - beta2**t) too.": _adam_first_moment_only_corrected,
    "eps is inside the square root: PyTorch divides by sqrt(v_hat) + eps.": _adam_variant(eps_inside=True),
    "the second moment uses |g| instead of g**2.": _adam_variant(no_square=True),
}
_ADAM_DEFAULTS = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


@generates("backprop_adam_slips")
def adam_slips(source, params, grad_seq, **kwargs):
    """Named mistakes of adam_step run over grad_seq from state None (kwargs: the hyperparameters the check
    passes): {mistake: (steps, P) trajectory}; "ignored" only when a beta or eps is not its default."""
    mistakes = dict(_ADAM_MISTAKES)
    if any(kwargs.get(k, v) != v for k, v in _ADAM_DEFAULTS.items()):
        mistakes["beta1, beta2 or eps ignored (defaults used): use the arguments."] = _adam_hyperparameters_ignored
    return {label: _run(step, params, grad_seq, **kwargs) for label, step in mistakes.items()}


@hidden("adam_step")
def adam_trajectory(t):
    """six steps with lr = 0.01: bias correction with t advancing, eps outside the square root"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "adam_step", params, _grad_sequence(t.rng, params, 6), lr=0.01)


@hidden("adam_step")
def adam_other_hyperparameters(t):
    """five steps with beta1 = 0.5, beta2 = 0.8, eps = 0.1 (tiny gradients, where eps matters)"""
    params = _opt_params(t.rng)
    grad_seq = [{k: g * 1e-2 for k, g in grads.items()} for grads in _grad_sequence(t.rng, params, 5)]
    _trajectory_check(t, "adam_step", params, grad_seq, lr=0.05, beta1=0.5, beta2=0.8, eps=0.1)


def _adamw_variant(kind):
    """An AdamW step with one mistake `kind` ("none" leaves the decay out altogether)."""
    adam = _adam_variant()

    def step(params, grads, state, lr=1e-3, weight_decay=1e-2, beta1=0.9, beta2=0.999, eps=1e-8):
        if kind == "l2":
            grads = {k: grads[k] + weight_decay * params[k] for k in params}
            return adam(params, grads, state, lr, beta1, beta2, eps)
        if kind == "after":
            new, state = adam(params, grads, state, lr, beta1, beta2, eps)
            return {k: v - lr * weight_decay * v for k, v in new.items()}, state
        if kind == "no_lr":
            decayed = {k: v - weight_decay * v for k, v in params.items()}
            return adam(decayed, grads, state, lr, beta1, beta2, eps)
        if kind == "weights_only":
            decayed = {k: (v - lr * weight_decay * v if k.startswith("W") else v) for k, v in params.items()}
            return adam(decayed, grads, state, lr, beta1, beta2, eps)
        if kind == "none":
            return adam(params, grads, state, lr, beta1, beta2, eps)
        if kind == "no_bias_correction":
            decayed = {k: v - lr * weight_decay * v for k, v in params.items()}
            return _adam_variant(bias_correction=False)(decayed, grads, state, lr, beta1, beta2, eps)
        raise ValueError(kind)
    return step


_ADAMW_MISTAKES = {
    "weight decay added to the gradient (Adam with L2): AdamW decays the parameters directly, p = p - lr*wd*p.":
        _adamw_variant("l2"),
    "the decay is not multiplied by lr: p = p - lr * weight_decay * p.": _adamw_variant("no_lr"),
    "no weight decay at all: first p = p - lr * weight_decay * p, then the Adam step.": _adamw_variant("none"),
    "biases are not decayed: AdamW (as in PyTorch) decays every parameter it is given.": _adamw_variant("weights_only"),
    "the decay is applied after the Adam step: decay first (p = p - lr*wd*p), then take the Adam step.":
        _adamw_variant("after"),
    "the Adam step is not bias-corrected (AdamW is the Adam step of the contract after the decay).":
        _adamw_variant("no_bias_correction"),
}


@generates("backprop_adamw_slips")
def adamw_slips(source, params, grad_seq, **kwargs):
    """Named mistakes of adamw_step run over grad_seq from state None (kwargs: the hyperparameters the check
    passes): {mistake: (steps, P) trajectory}."""
    return {label: _run(step, params, grad_seq, **kwargs) for label, step in _ADAMW_MISTAKES.items()}


@hidden("adamw_step")
def adamw_trajectory(t):
    """six steps with lr = 0.1 and weight_decay = 0.5: decoupled decay with lr, before the Adam step"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "adamw_step", params, _grad_sequence(t.rng, params, 6), lr=0.1, weight_decay=0.5)


@hidden("adamw_step")
def adamw_other_betas(t):
    """four steps with beta1 = 0.7, beta2 = 0.9, eps = 1e-3"""
    params = _opt_params(t.rng)
    _trajectory_check(t, "adamw_step", params, _grad_sequence(t.rng, params, 4),
                      lr=0.05, weight_decay=0.2, beta1=0.7, beta2=0.9, eps=1e-3)


@generates("backprop_sgd_slips")
def sgd_slips(source, params, grads, lr):
    """Named mistakes of sgd_step(params, grads, lr): {mistake: the new parameters raveled in params' key
    order}; "lr ignored" only when lr is not 0.1 (the value a hard-coded lr usually has)."""
    keys = list(params)
    slips = {}
    if lr != 0.1:
        slips["lr is ignored: use the lr argument."] = _flat({k: params[k] - 0.1 * grads[k] for k in keys}, keys)
    slips["the step goes uphill: p - lr * g, not p + lr * g."] = _flat({k: params[k] + lr * grads[k] for k in keys},
                                                                        keys)
    return slips


@hidden("sgd_step")
def sgd_random_and_unchanged_inputs(t):
    """random parameters, lr = 0.37, then three steps fed back; params and grads unchanged"""
    params = _opt_params(t.rng)
    keys = list(params)
    for lr in (0.37, 1e-3):
        grads = {k: t.rng.normal(size=v.shape) for k, v in params.items()}
        got = _read_dict(t, t.call("sgd_step", params, grads, lr), keys, "sgd_step(...)", params)
        t.close(_flat(got, keys), _flat(t.ref("sgd_step")(params, grads, lr), keys), f"the new parameters (lr = {lr})",
                candidates=t.data("backprop_sgd_slips", params, grads, lr))


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


@generates("backprop_clip_slips")
def clip_slips(source, grads, max_norm):
    """Named mistakes of clip_grad_norm(grads, max_norm).

    Returns:
      {"total_norm": {mistake: number}, "clipped": {mistake: the clipped gradients raveled in grads' key order}}.
    """
    keys = list(grads)
    _, ref_total = source.function("clip_grad_norm")(grads, max_norm)
    per_array_sum = sum(float(np.linalg.norm(g)) for g in grads.values())
    return {"total_norm": {"total_norm is measured after clipping: return the norm before clipping.":
                               min(ref_total, max_norm),
                           "total_norm is the sum of the per-array norms: take sqrt of the sum of all squares.":
                               per_array_sum,
                           "total_norm is the sum of squares: take its square root.": ref_total ** 2},
            "clipped": {"each array is clipped by its own norm: scale every array by max_norm / (global norm).":
                            _flat(_clip_per_array(grads, max_norm), keys),
                        "the gradients are always rescaled to max_norm: only clip when the norm exceeds it.":
                            _flat({k: g * (max_norm / ref_total) for k, g in grads.items()}, keys) if ref_total else
                            _flat(grads, keys)}}


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

@generates("backprop_dropout_kept_values")
def dropout_kept_values(source, X, p):
    """What each entry of X becomes in inverted dropout's training mode if it is kept, and under the named
    mistakes: {"kept": X / (1 - p), "slips": {mistake: shaped like X}}. The check picks the entries the
    student's own mask kept."""
    return {"kept": X / (1 - p),
            "slips": {"kept entries are not rescaled: inverted dropout divides them by (1 - p).": X,
                      "kept entries are multiplied by (1 - p): inverted dropout divides them by (1 - p).": X * (1 - p),
                      "kept entries are divided by p: divide by the keep probability (1 - p).": X / p}}


@generates("backprop_dropout_eval_slips")
def dropout_eval_slips(source, X, p):
    """Named mistakes of dropout_forward(X, p, train=False) (the identity): {mistake: shaped like X}."""
    return {"at evaluation the output is scaled by (1 - p): with inverted dropout evaluation is the identity.":
                X * (1 - p),
            "at evaluation the output is divided by (1 - p): evaluation is the identity.": X / (1 - p)}


@generates("backprop_dropout_backward_values")
def dropout_backward_values(source, dout, p):
    """dX of inverted dropout's backward for the upstream dout (any shape), per entry, as a pair (where the
    forward kept the entry, where it dropped it): {"expected": pair, "slips": {mistake: pair}}. The check picks
    by the student's own mask."""
    zeros = np.zeros_like(dout)
    return {"expected": (dout / (1 - p), zeros),
            "slips": {"the gradient is not rescaled: kept entries pass dout / (1 - p), as the forward scaled X.":
                          (dout, zeros),
                      "the gradient passes everywhere: dropped entries get no gradient (use the forward's mask).":
                          (dout, dout),
                      "dout / (1 - p) everywhere: dropped entries get no gradient.": (dout / (1 - p), dout / (1 - p))}}


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
        t.close(out, X, f"dropout_forward(X, {p}, train=False)", candidates=t.data("backprop_dropout_eval_slips", X, p))
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


def _bn_variant(X, gamma, beta, running, train, momentum=0.9, eps=1e-5, ddof=0, eval_batch=False,
                swap=False, eps_outside=False, no_update=False, running_ddof=0, zero_var_start=False):
    """batchnorm_forward with one option changed (all defaults: the contract's): (out, None, new running)."""
    d = X.shape[1]
    running = running or {"mean": np.zeros(d), "var": np.zeros(d) if zero_var_start else np.ones(d)}
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


_BN_ZERO_VAR_START = ("the running variance starts at zeros: with running=None start from mean zeros(D) and "
                      "variance ones(D) (a variance of 0 claims every feature is constant), then new = momentum * old "
                      "+ (1 - momentum) * batch statistic.")


@generates("backprop_batchnorm_forward_slips")
def batchnorm_forward_slips(source, X, gamma, beta, running, train, **kwargs):
    """Named mistakes of batchnorm_forward(X (N, D), gamma, beta, running, train, **kwargs) in the given mode.

    Returns:
      {"out": {mistake: (N, D)}, "mean": {mistake: (D,)}, "var": {mistake: (D,)}}: "mean" and "var" are the
      returned running statistics.
    """
    args = (X, gamma, beta, running, train)
    if not train:
        return {"out": {"batch statistics are used at evaluation: normalize with running['mean'] and running['var'].":
                        _bn_variant(*args, eval_batch=True, **kwargs)[0],
                        "eps is added to the standard deviation: use sqrt(var + eps).":
                        _bn_variant(*args, eps_outside=True, **kwargs)[0]},
                **{key: {"the running statistics are updated at evaluation: only training steps update them.":
                         _bn_variant(X, gamma, beta, running, True, **kwargs)[2][key]} for key in ("mean", "var")}}
    start = running or {"mean": np.zeros(X.shape[1]), "var": np.ones(X.shape[1])}
    zero_start = ({_BN_ZERO_VAR_START: _bn_variant(*args, zero_var_start=True, **kwargs)[2]["var"]}
                  if running is None else {})
    return {"out": {"the unbiased variance (ddof=1) is used: batch norm normalizes with the biased one, X.var(axis=0).":
                    _bn_variant(*args, ddof=1, **kwargs)[0],
                    "eps is added to the standard deviation: use sqrt(var + eps).":
                    _bn_variant(*args, eps_outside=True, **kwargs)[0],
                    "the running statistics are used in training mode: normalize with the batch's mean and variance.":
                    _bn_variant(X, gamma, beta, running, False, **kwargs)[0]},
            **{key: {"the running statistics are not updated in training mode.": start[key],
                     "momentum is applied the other way round: new = momentum*old + (1 - momentum)*batch.":
                     _bn_variant(*args, swap=True, **kwargs)[2][key],
                     "the running variance uses the unbiased batch variance: the contract uses the biased one.":
                     _bn_variant(*args, running_ddof=1, **kwargs)[2][key],
                     **(zero_start if key == "var" else {})}
               for key in ("mean", "var")}}


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
    ref_out, _, _ = t.ref("batchnorm_forward")(X, gamma, beta, running, False)
    slips = t.data("backprop_batchnorm_forward_slips", X, gamma, beta, running, False)
    _, out, new_running = _bn_parts(t, X, gamma, beta, running, False)
    t.close(out, ref_out, "the output in evaluation mode (train=False)", candidates=slips["out"])
    for key in ("mean", "var"):
        t.close(new_running[key], running[key], f"running[{key!r}] after evaluation (unchanged)",
                candidates=slips[key])
    single = X[:1]
    _, out, _ = _bn_parts(t, single, gamma, beta, running, False)
    t.close(out, t.ref("batchnorm_forward")(single, gamma, beta, running, False)[0],
            "the output for a batch of one at evaluation")


@hidden("batchnorm_forward")
def running_none_then_updates(t):
    """running=None starts from mean 0, variance 1; three training steps fed back"""
    running_ref = running_student = running_zero_start = None
    for _ in range(3):
        X = t.rng.normal(size=(5, 3)) * 2 + 3
        gamma, beta = np.ones(3), np.zeros(3)
        _, _, running_ref = t.ref("batchnorm_forward")(X, gamma, beta, running_ref, True)
        _, _, running_zero_start = _bn_variant(X, gamma, beta, running_zero_start, True, zero_var_start=True)
        _, _, running_student = _bn_parts(t, X, gamma, beta, running_student, True)
        for key in ("mean", "var"):
            t.close(running_student[key], running_ref[key], f"running[{key!r}] after successive training steps",
                    candidates={_BN_ZERO_VAR_START: running_zero_start["var"]} if key == "var" else None,
                    hint="with running=None start from {'mean': zeros(D), 'var': ones(D)}, then "
                         "new = momentum * old + (1 - momentum) * batch statistic.")


@generates("backprop_batchnorm_gradients")
def batchnorm_gradients(source, X, gamma, beta, dout):
    """The reference's (dX (N, D), dgamma (D,), dbeta (D,)) for batchnorm_forward(X (N, D), gamma, beta, None,
    True) followed by batchnorm_backward with the upstream dout (N, D)."""
    _, cache, _ = source.function("batchnorm_forward")(X, gamma, beta, None, True)
    return source.function("batchnorm_backward")(dout, cache)


@generates("backprop_batchnorm_backward_slips")
def batchnorm_backward_slips(source, X, gamma, dout, running=None):
    """Named mistakes of batchnorm_backward after batchnorm_forward(X (N, D), gamma (D,), beta, None, True)
    (eps 1e-5), for the upstream dout (N, D): {"dX": {mistake: (N, D)}, "dgamma": {...: (D,)}, "dbeta": {...}}.
    `running` is unused (training mode ignores it): the signature is the evaluation generator's."""
    mean, var = X.mean(axis=0), X.var(axis=0)
    inv_std = 1 / np.sqrt(var + 1e-5)
    x_hat = (X - mean) * inv_std
    return {"dX": {"the mean and variance are treated as constants: dX = dout * gamma / std "
                   "misses the two paths through the batch statistics.": dout * gamma * inv_std,
                   "the path through the mean is missing: subtract mean(g) over the batch.":
                   inv_std * (dout * gamma - x_hat * (dout * gamma * x_hat).mean(axis=0)),
                   "the path through the variance is missing: subtract x_hat * mean(g * x_hat).":
                   inv_std * (dout * gamma - (dout * gamma).mean(axis=0))},
            "dgamma": {"dgamma uses X instead of the normalized x_hat: sum(dout * x_hat, axis=0).":
                       (dout * X).sum(axis=0)},
            "dbeta": {"dbeta is the mean over the batch: it is the sum, dout.sum(axis=0).": dout.mean(axis=0)}}


@hidden("batchnorm_backward")
def batchnorm_gradient_check(t):
    """dX, dgamma, dbeta against centered differences, N = 6, D = 4, random gamma, beta and dout"""
    _bn_backward_check(t, 6, 4)


@hidden("batchnorm_backward")
def batchnorm_gradient_check_other_shape(t):
    """N = 3, D = 7"""
    _bn_backward_check(t, 3, 7)


_BN_EVAL_BACKWARD = ("the backward ignores the mode of its forward: after an evaluation-mode forward the mean and "
                     "variance are the running ones, constants of the batch, so the layer is the affine map "
                     "gamma * (X - running mean) / sqrt(running var + eps) + beta and dX = dout * gamma / "
                     "sqrt(running var + eps); the training-mode formula (the two paths through the batch "
                     "statistics) is wrong there. Keep the mode in the cache.")


@generates("backprop_batchnorm_eval_backward_slips")
def batchnorm_eval_backward_slips(source, X, gamma, dout, running, eps=1e-5):
    """Named mistakes of batchnorm_backward after batchnorm_forward(X (N, D), gamma (D,), beta, running, False):
    {"dX": {mistake: (N, D)}, "dgamma": {}, "dbeta": {}}; the one named is the training-mode formula applied to
    the x_hat and 1/std of the running statistics."""
    inv_std = 1 / np.sqrt(running["var"] + eps)
    x_hat = (X - running["mean"]) * inv_std
    g = dout * gamma
    return {"dX": {_BN_EVAL_BACKWARD: inv_std * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))},
            "dgamma": {}, "dbeta": {}}


@hidden("batchnorm_backward")
def batchnorm_gradient_check_after_evaluation(t):
    """after a forward in evaluation mode (train=False, random running statistics), N = 6, D = 4: dX is the
    affine map's dout * gamma / sqrt(running var + eps); dgamma and dbeta use the running x_hat"""
    _bn_backward_check(t, 6, 4, train=False)


# -- Part 6: training on the digits ------------------------------------------------------------------------

@generates("backprop_sanity_expected")
def sanity_expected(source, X, y, seed, hidden=(64,), n_small=20, steps=100, lr=1e-2):
    """What sanity_checks(X (N, D), y (N,), default_rng(seed), hidden, n_small, steps, lr) must report that does
    not depend on the student's optimizer: the untrained network's loss (init_mlp([D, *hidden, C], rng), the first
    draw from rng) on all of X and on X[:n_small], log C, and the sizes.

    Returns:
      {"initial_loss": float, "first_small_loss": float, "log_c": float, "n_classes": int, "steps": int,
       "n_small": int}.
    """
    n_classes = int(np.max(y)) + 1
    params = source.function("init_mlp")([X.shape[1], *hidden, n_classes], np.random.default_rng(seed))
    loss = source.function("mlp_loss_and_grads")
    return {"initial_loss": float(loss(X, y, params)[0]), "first_small_loss": float(loss(X[:n_small], y[:n_small],
                                                                                        params)[0]),
            "log_c": float(np.log(n_classes)), "n_classes": n_classes, "steps": int(steps), "n_small": int(n_small)}


def _standardized_digits(t):
    """The notebook's digits split, standardized with the training statistics: (X_train, y_train)."""
    X_train, _, y_train, _ = _digits_split(t)
    std = X_train.std(axis=0)
    return (X_train - X_train.mean(axis=0)) / np.where(std > 0, std, 1.0), y_train


@hidden("sanity_checks")
def drills_on_the_digits(t):
    """the standardized digits, default config, seed 0: within 1.5 of log 10, 20 images memorised in 100 steps, 2 s"""
    X, y = _standardized_digits(t)
    _sanity_check(t, X, y, 0, 2.0)


@hidden("sanity_checks")
def drills_on_another_problem(t):
    """5 classes, 12 features, another network and run (hidden (32, 16), n_small 12, 150 steps, lr 5e-3)"""
    X, y = _clustered(t.rng, 80, 12, 5)
    _sanity_check(t, X, y, 3, 2.0, hidden=(32, 16), n_small=12, steps=150, lr=5e-3)


@hidden("sanity_checks")
def drills_draw_only_from_the_rng(t):
    """rngs seeded alike give the same drills, rngs seeded differently different ones"""
    X, y = _standardized_digits(t)
    t.draws_only_from_rng("sanity_checks", lambda rng: t.array(t.part(
        t.call("sanity_checks", X[:200], y[:200], rng, steps=10), lambda r: r["small_losses"], "sanity_checks"),
        'result["small_losses"]'), hint=TRAINING_FROM_RNG)


@hidden("train_mlp")
def reaches_97_percent_on_the_digits(t):
    """default config, rng seed 0, the fixed split: at least 97% validation accuracy within 20 s"""
    X_train, X_val, y_train, y_val = _digits_split(t)
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


#: where a training function takes its randomness from, for the message of a check that it uses only its rng
TRAINING_FROM_RNG = ("draw every random number (initialization, shuffling, dropout) from the rng argument, and pass "
                     "that rng on to the functions that need one.")


def _losses_of(t, name: str, result) -> np.ndarray:
    """history["loss"] of a training function's (predict, history) result, as a float vector."""
    history = t.part(result, lambda r: r[1], name)
    return t.array(t.part(history, lambda h: h["loss"], f"the history of {name}"), f'history["loss"] of {name}')


@hidden("train_mlp")
def randomness_only_from_the_rng_given(t):
    """200 training images, three runs: rngs seeded alike train alike, rngs seeded differently do not"""
    X_train, X_val, y_train, y_val = _digits_split(t)
    # 2 epochs: the initialization and two shuffles are drawn by then (a second epoch, so that a shuffle drawn
    # from the global state only from the second epoch on shows too); 40 epochs three times would only repeat them
    t.draws_only_from_rng("train_mlp", lambda rng: _losses_of(t, "train_mlp", t.call(
        "train_mlp", X_train[:200], y_train[:200], X_val[:50], y_val[:50], rng, epochs=2)), hint=TRAINING_FROM_RNG)


@generates("backprop_digits_split")
def the_notebooks_digits(source):
    """The digits split the 03 notebook loads, from source/03_backprop/digits_split.npz.

    Returns:
      (X_train (1347, 64), X_val (450, 64), y_train (1347,), y_val (450,)), all uint8 as stored.
    """
    with np.load(course_root() / "source" / "03_backprop" / "digits_split.npz", allow_pickle=False) as data:
        return tuple(data[name] for name in ("X_train", "X_val", "y_train", "y_val"))



# -- the recordings the notebook draws its pictures from before the student's code runs ---------------------

#: The non-solution code cells whose definitions the recordings run (each up to its first top-level `try:` or
#: `plot_...(` call, where it starts drawing).
_FIGURE_HELPERS = ("gradient_reaching_each_layer", "valley_path", "batchnorm_demo_features", "plot_drills",
                   "gd_curve", "overfitting_curves")
FIGURES_FILE = "backprop_figures.npz"


def _definitions(source: str) -> str:
    """A figure cell's source up to its first top-level line that runs a figure (`try:` or `plot_...`)."""
    lines = source.splitlines()
    end = next((i for i, line in enumerate(lines) if line.startswith(("try:", "plot_"))), len(lines))
    return "\n".join(lines[:end])


def figure_recordings() -> dict:
    """Every array the 03 notebook draws before its exercises, computed with the reference solution and the
    notebook's own figure helpers (the instructor's side: the student's side gets these as data).

    Returns:
      {name: array}: flow_scales (3,), flow_norms (3, 10); valley_sgd, valley_momentum, valley_adam (60, 2);
      dropout_ones (12, 30); batchnorm_normed (500, 3); drills_initial_loss, drills_log_c, drills_small_accuracy
      (scalars), drills_small_losses (100,); real_* and shuffled_* (loss per step; train_acc, val_acc per epoch;
      grad_W1, grad_W2 per step) of train_mlp with rng seed 0 on the real and on shuffled labels;
      diagnosis_losses (4, 150), diagnosis_dead (4,), overfit_train (300,), overfit_val (300,).
    """
    from ..tooling.course import nbgrader_meta, notebook_path, read_notebook
    from ..tooling.reference import reference

    ns = reference("03_backprop")
    with np.load(course_root() / "source" / "03_backprop" / "digits_split.npz", allow_pickle=False) as split:
        ns.update(X_train=split["X_train"].astype(np.float64), X_val=split["X_val"].astype(np.float64),
                  y_train=split["y_train"].astype(np.int64), y_val=split["y_val"].astype(np.int64))
    for cell in read_notebook(notebook_path("03_backprop", "source")).cells:
        if (cell.cell_type == "code" and not nbgrader_meta(cell).get("solution")
                and any(f"def {name}(" in cell.source for name in _FIGURE_HELPERS)):
            exec(compile(_definitions(cell.source), "<03 figure helpers>", "exec"), ns)
    out = {"flow_scales": np.array([0.5, 1.0, 1.6])}
    out["flow_norms"] = np.array([ns["gradient_reaching_each_layer"](scale) for scale in out["flow_scales"]])
    out["valley_sgd"] = ns["valley_path"](ns["sgd_step"], lr=0.07)
    out["valley_momentum"] = ns["valley_path"](ns["momentum_step"], lr=0.02, beta=0.8)
    out["valley_adam"] = ns["valley_path"](ns["adam_step"], lr=0.3)
    out["dropout_ones"] = ns["dropout_forward"](np.ones((12, 30)), 0.4, True, np.random.default_rng(3))[0]
    features = ns["batchnorm_demo_features"]()
    out["batchnorm_normed"] = ns["batchnorm_forward"](features, np.ones(3), np.zeros(3), None, True)[0]
    drills = ns["sanity_checks"](ns["X_train_std"], ns["y_train"], np.random.default_rng(0))
    out.update({f"drills_{key}": np.asarray(value, dtype=np.float64) for key, value in drills.items()})
    shuffled = np.random.default_rng(1).permutation(ns["y_train"])
    for run, labels in (("real", ns["y_train"]), ("shuffled", shuffled)):
        _, history = ns["train_mlp"](ns["X_train"], labels, ns["X_val"], ns["y_val"], np.random.default_rng(0))
        out.update({f"{run}_loss": np.array(history["loss"]), f"{run}_train_acc": np.array(history["train_acc"]),
                    f"{run}_val_acc": np.array(history["val_acc"]),
                    **{f"{run}_grad_{key}": np.array(norms) for key, norms in history["grad_norms"].items()}})
    runs = [ns["gd_curve"](lr) for lr in ns["DIAGNOSIS_RATES"]]
    out["diagnosis_losses"] = np.array([losses for losses, _ in runs])
    out["diagnosis_dead"] = np.array([dead for _, dead in runs])
    out["overfit_train"], out["overfit_val"] = map(np.array, ns["overfitting_curves"]())
    return out


def write_figure_recordings() -> None:
    """Write figure_recordings() to source/03_backprop/backprop_figures.npz (run after changing a figure or the
    reference: `.venv/bin/python -c "from graders.hidden.backprop import write_figure_recordings as w; w()"`)."""
    np.savez_compressed(course_root() / "source" / "03_backprop" / FIGURES_FILE, **figure_recordings())
