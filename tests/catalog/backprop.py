"""Realistic implementations of 03_backprop's functions: mistakes students make, and other valid ways."""
from tests.catalog import Right, Wrong

ASSIGNMENT = "03_backprop"

WRONG = [
    # -- dense and ReLU backward ----------------------------------------------------------------------------
    Wrong("dense_backward", "dW computed as dout.T @ X", """
def dense_backward(dout, cache):
    X, W = cache
    return dout @ W.T, dout.T @ X, dout.sum(axis=0)
""", expect=r"dW is transposed"),
    Wrong("dense_backward", "db not summed over the batch", """
def dense_backward(dout, cache):
    X, W = cache
    return dout @ W.T, X.T @ dout, dout
""", expect=r"db is not summed over the batch"),
    Wrong("dense_backward", "db summed over axis 1", """
def dense_backward(dout, cache):
    X, W = cache
    return dout @ W.T, X.T @ dout, dout.sum(axis=1)
""", expect=r"wrong axis"),
    Wrong("dense_backward", "db averaged instead of summed", """
def dense_backward(dout, cache):
    X, W = cache
    return dout @ W.T, X.T @ dout, dout.mean(axis=0)
""", expect=r"db is the mean over the batch|times too small"),
    Wrong("dense_backward", "dX = dout @ W without the transpose", """
def dense_backward(dout, cache):
    X, W = cache
    return dout @ W, X.T @ dout, dout.sum(axis=0)
""", expect=r"dout @ W\.T.*raised ValueError|raised ValueError.*dout @ W\.T"),
    Wrong("dense_backward", "dW divided by N in the layer", """
def dense_backward(dout, cache):
    X, W = cache
    return dout @ W.T, X.T @ dout / X.shape[0], dout.sum(axis=0)
""", expect=r"dW is divided by N|times too small"),
    Wrong("relu_backward", "valve open at exactly zero", """
def relu_backward(dout, cache):
    return dout * (cache >= 0)
""", expect=r"open at X == 0"),
    Wrong("relu_backward", "gradient passed where the input was negative", """
def relu_backward(dout, cache):
    return dout.copy()
""", expect=r"passed where X <= 0"),
    Wrong("relu_backward", "dout zeroed in place", """
def relu_backward(dout, cache):
    dout[cache <= 0] = 0.0
    return dout
""", expect=r"changed its input `dout` in place"),
    Wrong("relu_backward", "multiplies by the ReLU output", """
def relu_backward(dout, cache):
    return dout * np.maximum(cache, 0)
""", expect=r"ReLU output instead of the 0/1 mask"),
    # -- softmax cross-entropy ------------------------------------------------------------------------------
    Wrong("softmax_cross_entropy", "loss summed over the batch", """
def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    log_p = log_softmax(logits)
    d = np.exp(log_p)
    d[np.arange(n), y] -= 1
    return float(-np.sum(log_p[np.arange(n), y])), d / n
""", expect=r"summed over the batch|times too large"),
    Wrong("softmax_cross_entropy", "gradient missing 1/N", """
def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    log_p = log_softmax(logits)
    d = np.exp(log_p)
    d[np.arange(n), y] -= 1
    return float(-np.mean(log_p[np.arange(n), y])), d
""", expect=r"missing the 1/N|times too large"),
    Wrong("softmax_cross_entropy", "forgot to subtract the one-hot", """
def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    log_p = log_softmax(logits)
    return float(-np.mean(log_p[np.arange(n), y])), np.exp(log_p) / n
""", expect=r"subtract the one-hot"),
    Wrong("softmax_cross_entropy", "softmax without the max shift", """
def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    e = np.exp(logits)
    p = e / e.sum(axis=1, keepdims=True)
    loss = float(-np.mean(np.log(p[np.arange(n), y])))
    d = p.copy()
    d[np.arange(n), y] -= 1
    return loss, d / n
""", expect=r"warning|overflow|nan"),
    Wrong("softmax_cross_entropy", "softmax over the batch axis", """
def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    shifted = logits - logits.max(axis=0, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))
    d = np.exp(log_p)
    d[np.arange(n), y] -= 1
    return float(-np.mean(log_p[np.arange(n), y])), d / n
""", expect=r"over axis 0"),
    # -- the mean squared error's gradient (issue 11) --------------------------------------------------------
    Wrong("mse_backward", "divided by the batch size, not the element count", """
def mse_backward(pred, target):
    return 2.0 * (pred - target) / pred.shape[0]
""", expect=r"divided by the batch size N = \d+ only.*pred\.size"),
    Wrong("mse_backward", "the factor 2 missing", """
def mse_backward(pred, target):
    return (pred - target) / pred.size
""", expect=r"dpred is half the gradient.*2 \(pred - target\)"),
    Wrong("mse_backward", "the sign flipped (target - pred)", """
def mse_backward(pred, target):
    return 2.0 * (target - pred) / pred.size
""", expect=r"dpred has the wrong sign"),
    Wrong("mse_backward", "the loss returned instead of the gradient", """
def mse_backward(pred, target):
    return float(np.mean((pred - target) ** 2))
""", expect=r"the loss mse_loss\(pred, target\), not its gradient"),
    Wrong("mse_backward", "summed, not divided by the element count", """
def mse_backward(pred, target):
    return 2.0 * (pred - target)
""", expect=r"missing the 1/pred\.size"),
    Wrong("mse_backward", "the difference taken in place (pred -= target)", """
def mse_backward(pred, target):
    pred -= target
    return 2.0 * pred / pred.size
""", expect=r"changed its input `pred` in place"),
    # -- the network ----------------------------------------------------------------------------------------
    Wrong("mlp_backward", "ReLU valves skipped", """
def mlp_backward(dlogits, cache):
    grads = {}
    d = dlogits
    for layer in range(len(cache), 0, -1):
        d, grads[f"W{layer}"], grads[f"b{layer}"] = dense_backward(d, cache[layer - 1][0])
    return grads
""", expect=r"valves are skipped"),
    Wrong("mlp_backward", "layers numbered from 0", """
def mlp_backward(dlogits, cache):
    grads = {}
    d = dlogits
    for index in range(len(cache) - 1, -1, -1):
        dense_cache, relu_cache = cache[index]
        if relu_cache is not None:
            d = relu_backward(d, relu_cache)
        d, grads[f"W{index}"], grads[f"b{index}"] = dense_backward(d, dense_cache)
    return grads
""", expect=r"has keys .*expected"),
    Wrong("mlp_loss_and_grads", "regularization missing from the gradient", """
def mlp_loss_and_grads(X, y, params, weight_decay=0.0):
    logits, cache = mlp_forward(X, params)
    loss, dlogits = softmax_cross_entropy(logits, y)
    loss += 0.5 * weight_decay * sum(np.sum(v ** 2) for k, v in params.items() if k.startswith("W"))
    return float(loss), mlp_backward(dlogits, cache)
""", expect=r"missing from the gradient"),
    Wrong("mlp_loss_and_grads", "weight decay applied to biases", """
def mlp_loss_and_grads(X, y, params, weight_decay=0.0):
    logits, cache = mlp_forward(X, params)
    loss, dlogits = softmax_cross_entropy(logits, y)
    grads = mlp_backward(dlogits, cache)
    for k, v in params.items():
        loss += 0.5 * weight_decay * np.sum(v ** 2)
        grads[k] = grads[k] + weight_decay * v
    return float(loss), grads
""", expect=r"biases"),
    Wrong("mlp_loss_and_grads", "L2 without the 0.5", """
def mlp_loss_and_grads(X, y, params, weight_decay=0.0):
    logits, cache = mlp_forward(X, params)
    loss, dlogits = softmax_cross_entropy(logits, y)
    grads = mlp_backward(dlogits, cache)
    for k, v in params.items():
        if k.startswith("W"):
            loss += weight_decay * np.sum(v ** 2)
            grads[k] = grads[k] + 2 * weight_decay * v
    return float(loss), grads
""", expect=r"no 0\.5"),
    Wrong("mlp_loss_and_grads", "L2 gradient without the factor of the 0.5", """
def mlp_loss_and_grads(X, y, params, weight_decay=0.0):
    logits, cache = mlp_forward(X, params)
    loss, dlogits = softmax_cross_entropy(logits, y)
    grads = mlp_backward(dlogits, cache)
    for k, v in params.items():
        if k.startswith("W"):
            loss += 0.5 * weight_decay * np.sum(v ** 2)
            grads[k] = grads[k] + 2 * weight_decay * v
    return float(loss), grads
""", expect=r"2 \* weight_decay \* W"),
    Wrong("mlp_loss_and_grads", "cross-entropy summed over the batch in the loss and gradient", """
def mlp_loss_and_grads(X, y, params, weight_decay=0.0):
    logits, cache = mlp_forward(X, params)
    n = X.shape[0]
    loss, dlogits = softmax_cross_entropy(logits, y)
    grads = mlp_backward(dlogits * n, cache)
    loss = loss * n
    for k, v in params.items():
        if k.startswith("W"):
            loss += 0.5 * weight_decay * np.sum(v ** 2)
            grads[k] = grads[k] + weight_decay * v
    return float(loss), grads
""", expect=r"summed over the batch|times too large"),
    Wrong("mlp_loss_and_grads", "decay added into the caller's weights", """
def mlp_loss_and_grads(X, y, params, weight_decay=0.0):
    logits, cache = mlp_forward(X, params)
    loss, dlogits = softmax_cross_entropy(logits, y)
    grads = mlp_backward(dlogits, cache)
    for k, v in params.items():
        if k.startswith("W"):
            loss += 0.5 * weight_decay * np.sum(v ** 2)
            decay = v
            decay *= weight_decay
            grads[k] = grads[k] + decay
    return float(loss), grads
""", expect=r"changed its input `params` in place"),
    # -- optimizers -----------------------------------------------------------------------------------------
    Wrong("sgd_step", "params updated in place", """
def sgd_step(params, grads, lr):
    for k in params:
        params[k] -= lr * grads[k]
    return params
""", expect=r"changed its input `params` in place"),
    Wrong("sgd_step", "dict updated and returned", """
def sgd_step(params, grads, lr):
    for k in list(params):
        params[k] = params[k] - lr * grads[k]
    return params
""", expect=r"changed its input `params` in place"),
    Wrong("sgd_step", "gradient ascent", """
def sgd_step(params, grads, lr):
    return {k: params[k] + lr * grads[k] for k in params}
""", expect=r"uphill"),
    Wrong("momentum_step", "exponential moving average of the gradient", """
def momentum_step(params, grads, state, lr, beta=0.9):
    v = {k: (state[k] if state is not None else 0.0) * beta + (1 - beta) * grads[k] for k in params}
    return {k: params[k] - lr * v[k] for k in params}, v
""", expect=r"another convention"),
    Wrong("momentum_step", "velocity updated in place", """
def momentum_step(params, grads, state, lr, beta=0.9):
    if state is None:
        state = {k: np.zeros_like(p) for k, p in params.items()}
    for k in params:
        state[k] *= beta
        state[k] += grads[k]
    return {k: params[k] - lr * state[k] for k in params}, state
""", expect=r"changed its input `state` in place"),
    Wrong("momentum_step", "velocity never stored", """
def momentum_step(params, grads, state, lr, beta=0.9):
    v = {k: grads[k] for k in params}
    return {k: params[k] - lr * v[k] for k in params}, state
""", expect=r"not carried between steps"),
    Wrong("adam_step", "no bias correction", """
def adam_step(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    if state is None:
        state = {"m": {k: 0 * p for k, p in params.items()}, "v": {k: 0 * p for k, p in params.items()}}
    m = {k: beta1 * state["m"][k] + (1 - beta1) * grads[k] for k in params}
    v = {k: beta2 * state["v"][k] + (1 - beta2) * grads[k] ** 2 for k in params}
    return {k: params[k] - lr * m[k] / (np.sqrt(v[k]) + eps) for k in params}, {"m": m, "v": v}
""", expect=r"no bias correction"),
    Wrong("adam_step", "step count never advanced", """
def adam_step(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    if state is None:
        state = {"t": 1, "m": {k: 0 * p for k, p in params.items()}, "v": {k: 0 * p for k, p in params.items()}}
    t = state["t"]
    m = {k: beta1 * state["m"][k] + (1 - beta1) * grads[k] for k in params}
    v = {k: beta2 * state["v"][k] + (1 - beta2) * grads[k] ** 2 for k in params}
    new = {k: params[k] - lr * (m[k] / (1 - beta1 ** t)) / (np.sqrt(v[k] / (1 - beta2 ** t)) + eps) for k in params}
    return new, {"t": t, "m": m, "v": v}
""", expect=r"t is not advanced"),
    Wrong("adam_step", "eps inside the square root", """
def adam_step(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    if state is None:
        state = {"t": 0, "m": {k: 0 * p for k, p in params.items()}, "v": {k: 0 * p for k, p in params.items()}}
    t = state["t"] + 1
    m = {k: beta1 * state["m"][k] + (1 - beta1) * grads[k] for k in params}
    v = {k: beta2 * state["v"][k] + (1 - beta2) * grads[k] ** 2 for k in params}
    new = {k: params[k] - lr * (m[k] / (1 - beta1 ** t)) / np.sqrt(v[k] / (1 - beta2 ** t) + eps) for k in params}
    return new, {"t": t, "m": m, "v": v}
""", expect=r"eps is inside the square root"),
    Wrong("adamw_step", "weight decay added to the gradient", """
def adamw_step(params, grads, state, lr=1e-3, weight_decay=1e-2, beta1=0.9, beta2=0.999, eps=1e-8):
    grads = {k: grads[k] + weight_decay * params[k] for k in params}
    return adam_step(params, grads, state, lr, beta1, beta2, eps)
""", expect=r"Adam with L2"),
    Wrong("adamw_step", "decay applied after the Adam step", """
def adamw_step(params, grads, state, lr=1e-3, weight_decay=1e-2, beta1=0.9, beta2=0.999, eps=1e-8):
    new, state = adam_step(params, grads, state, lr, beta1, beta2, eps)
    return {k: p - lr * weight_decay * p for k, p in new.items()}, state
""", expect=r"after the Adam step"),
    Wrong("adamw_step", "decay without the learning rate", """
def adamw_step(params, grads, state, lr=1e-3, weight_decay=1e-2, beta1=0.9, beta2=0.999, eps=1e-8):
    decayed = {k: p * (1 - weight_decay) for k, p in params.items()}
    return adam_step(decayed, grads, state, lr, beta1, beta2, eps)
""", expect=r"not multiplied by lr"),
    Wrong("clip_grad_norm", "each array clipped on its own", """
def clip_grad_norm(grads, max_norm):
    total = float(np.sqrt(sum(np.sum(g ** 2) for g in grads.values())))
    out = {}
    for k, g in grads.items():
        n = np.linalg.norm(g)
        out[k] = g * (max_norm / n) if n > max_norm else g
    return out, total
""", expect=r"clipped by its own norm"),
    Wrong("clip_grad_norm", "gradients scaled in place", """
def clip_grad_norm(grads, max_norm):
    total = float(np.sqrt(sum(np.sum(g ** 2) for g in grads.values())))
    if total > max_norm:
        for g in grads.values():
            g *= max_norm / total
    return grads, total
""", expect=r"changed its input `grads` in place"),
    Wrong("clip_grad_norm", "norm reported after clipping", """
def clip_grad_norm(grads, max_norm):
    total = float(np.sqrt(sum(np.sum(g ** 2) for g in grads.values())))
    if total > max_norm:
        return {k: g * (max_norm / total) for k, g in grads.items()}, float(max_norm)
    return dict(grads), total
""", expect=r"measured after clipping"),
    Wrong("clip_grad_norm", "scale computed before the test", """
def clip_grad_norm(grads, max_norm):
    total = float(np.sqrt(sum(np.sum(g ** 2) for g in grads.values())))
    scale = min(1.0, max_norm / np.float64(total))
    return {k: g * scale for k, g in grads.items()}, total
""", expect=r"warning|divide"),
    # -- dropout and batch norm -----------------------------------------------------------------------------
    Wrong("dropout_forward", "kept values not rescaled", """
def dropout_forward(X, p, train, rng):
    if not train or p == 0:
        return X, None
    mask = rng.random(X.shape) >= p
    return X * mask, mask
""", expect=r"not rescaled"),
    Wrong("dropout_forward", "dropout active at evaluation", """
def dropout_forward(X, p, train, rng):
    if p == 0:
        return X, None
    mask = (rng.random(X.shape) >= p) / (1 - p)
    return X * mask, mask
""", expect=r"active at evaluation"),
    Wrong("dropout_forward", "classic dropout scaled at evaluation", """
def dropout_forward(X, p, train, rng):
    if not train:
        return X * (1 - p), None
    mask = rng.random(X.shape) >= p
    return X * mask, mask
""", expect=r"scaled by \(1 - p\)|not rescaled"),
    Wrong("dropout_forward", "p used as the keep probability", """
def dropout_forward(X, p, train, rng):
    if not train or p == 0:
        return X, None
    mask = (rng.random(X.shape) < p) / p
    return X * mask, mask
""", expect=r"keep probability"),
    Wrong("dropout_forward", "global numpy random state", """
def dropout_forward(X, p, train, rng):
    if not train or p == 0:
        return X, None
    mask = (np.random.random(X.shape) >= p) / (1 - p)
    return X * mask, mask
""", expect=r"rng"),
    Wrong("dropout_forward", "fixed-seed generator inside the function", """
def dropout_forward(X, p, train, rng):
    if not train or p == 0:
        return X, None
    mask = (np.random.default_rng(0).random(X.shape) >= p) / (1 - p)
    return X * mask, mask
""", expect=r"rng argument is ignored"),
    Wrong("dropout_forward", "one mask per feature broadcast over the batch", """
def dropout_forward(X, p, train, rng):
    if not train or p == 0:
        return X, None
    mask = (rng.random(X.shape[-1]) >= p) / (1 - p)
    return X * mask, np.broadcast_to(mask, X.shape)
""", expect=r"same dropout pattern"),
    Wrong("dropout_backward", "gradient not rescaled", """
def dropout_backward(dout, cache):
    if cache is None:
        return dout
    return dout * (cache != 0)
""", expect=r"not rescaled"),
    Wrong("dropout_backward", "mask ignored in the backward pass", """
def dropout_backward(dout, cache):
    return dout
""", expect=r"passes everywhere"),
    Wrong("batchnorm_forward", "unbiased variance", """
def batchnorm_forward(X, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if running is None:
        running = {"mean": np.zeros(X.shape[1]), "var": np.ones(X.shape[1])}
    if train:
        mean = X.mean(axis=0)
        var = X.var(axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])
        running = {"mean": momentum * running["mean"] + (1 - momentum) * mean,
                   "var": momentum * running["var"] + (1 - momentum) * var}
    else:
        mean, var = running["mean"], running["var"]
    x_hat = (X - mean) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x_hat, gamma, 1 / np.sqrt(var + eps)), dict(running)
""", expect=r"unbiased"),
    Wrong("batchnorm_forward", "batch statistics at evaluation", """
def batchnorm_forward(X, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if running is None:
        running = {"mean": np.zeros(X.shape[1]), "var": np.ones(X.shape[1])}
    mean, var = X.mean(axis=0), X.var(axis=0)
    if train:
        running = {"mean": momentum * running["mean"] + (1 - momentum) * mean,
                   "var": momentum * running["var"] + (1 - momentum) * var}
    x_hat = (X - mean) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x_hat, gamma, 1 / np.sqrt(var + eps)), dict(running)
""", expect=r"batch statistics are used at evaluation"),
    Wrong("batchnorm_forward", "running statistics updated in place", """
def batchnorm_forward(X, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if running is None:
        running = {"mean": np.zeros(X.shape[1]), "var": np.ones(X.shape[1])}
    if train:
        mean, var = X.mean(axis=0), X.var(axis=0)
        running["mean"] = momentum * running["mean"] + (1 - momentum) * mean
        running["var"] = momentum * running["var"] + (1 - momentum) * var
    else:
        mean, var = running["mean"], running["var"]
    x_hat = (X - mean) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x_hat, gamma, 1 / np.sqrt(var + eps)), running
""", expect=r"changed its input `running` in place"),
    Wrong("batchnorm_forward", "momentum the other way round", """
def batchnorm_forward(X, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if running is None:
        running = {"mean": np.zeros(X.shape[1]), "var": np.ones(X.shape[1])}
    if train:
        mean, var = X.mean(axis=0), X.var(axis=0)
        running = {"mean": (1 - momentum) * running["mean"] + momentum * mean,
                   "var": (1 - momentum) * running["var"] + momentum * var}
    else:
        mean, var = running["mean"], running["var"]
    x_hat = (X - mean) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x_hat, gamma, 1 / np.sqrt(var + eps)), dict(running)
""", expect=r"other way round"),
    Wrong("batchnorm_backward", "mean and variance treated as constants", """
def batchnorm_backward(dout, cache):
    x_hat, gamma, inv_std, _ = cache  # the reference's cache ends with the mode
    return dout * gamma * inv_std, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
""", expect=r"treated as constants"),
    Wrong("batchnorm_backward", "dbeta averaged over the batch", """
def batchnorm_backward(dout, cache):
    x_hat, gamma, inv_std, _ = cache  # the reference's cache ends with the mode
    g = dout * gamma
    dX = inv_std * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))
    return dX, (dout * x_hat).sum(axis=0), dout.mean(axis=0)
""", expect=r"dbeta is the mean|times too small"),
    # -- named by the generators of graders/hidden/backprop.py (one entry per restructured generator) ---------
    Wrong("relu_backward", "mask inverted", """
def relu_backward(dout, cache):
    return dout * (cache <= 0)
""", expect=r"mask is inverted"),
    Wrong("softmax_cross_entropy", "gradient sign reversed", """
def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    log_p = log_softmax(logits)
    one_hot = np.zeros_like(log_p)
    one_hot[np.arange(n), y] = 1.0
    return float(-np.mean(log_p[np.arange(n), y])), (one_hot - np.exp(log_p)) / n
""", expect=r"sign is reversed|wrong sign"),
    Wrong("sgd_step", "learning rate hard-coded", """
def sgd_step(params, grads, lr):
    return {k: params[k] - 0.1 * grads[k] for k in params}
""", expect=r"lr is ignored"),
    Wrong("momentum_step", "beta hard-coded", """
def momentum_step(params, grads, state, lr, beta=0.9):
    v = {k: (0.9 * state[k] if state is not None else 0.0) + grads[k] for k in params}
    return {k: params[k] - lr * v[k] for k in params}, v
""", expect=r"beta is ignored"),
    Wrong("adam_step", "only the first moment bias-corrected", """
def adam_step(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    if state is None:
        state = {"t": 0, "m": {k: 0 * p for k, p in params.items()}, "v": {k: 0 * p for k, p in params.items()}}
    t = state["t"] + 1
    m = {k: beta1 * state["m"][k] + (1 - beta1) * grads[k] for k in params}
    v = {k: beta2 * state["v"][k] + (1 - beta2) * grads[k] ** 2 for k in params}
    new = {k: params[k] - lr * (m[k] / (1 - beta1 ** t)) / (np.sqrt(v[k]) + eps) for k in params}
    return new, {"t": t, "m": m, "v": v}
""", expect=r"only the first moment is bias-corrected"),
    Wrong("adam_step", "betas and eps hard-coded", """
def adam_step(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    if state is None:
        state = {"t": 0, "m": {k: 0 * p for k, p in params.items()}, "v": {k: 0 * p for k, p in params.items()}}
    t = state["t"] + 1
    m = {k: 0.9 * state["m"][k] + 0.1 * grads[k] for k in params}
    v = {k: 0.999 * state["v"][k] + 0.001 * grads[k] ** 2 for k in params}
    new = {k: params[k] - lr * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v[k] / (1 - 0.999 ** t)) + 1e-8) for k in params}
    return new, {"t": t, "m": m, "v": v}
""", expect=r"beta1, beta2 or eps ignored"),
    Wrong("adamw_step", "Adam step without bias correction after the decay", """
def adamw_step(params, grads, state, lr=1e-3, weight_decay=1e-2, beta1=0.9, beta2=0.999, eps=1e-8):
    if state is None:
        state = {"m": {k: 0 * p for k, p in params.items()}, "v": {k: 0 * p for k, p in params.items()}}
    decayed = {k: p - lr * weight_decay * p for k, p in params.items()}
    m = {k: beta1 * state["m"][k] + (1 - beta1) * grads[k] for k in params}
    v = {k: beta2 * state["v"][k] + (1 - beta2) * grads[k] ** 2 for k in params}
    return {k: decayed[k] - lr * m[k] / (np.sqrt(v[k]) + eps) for k in params}, {"m": m, "v": v}
""", expect=r"Adam step is not bias-corrected"),
    Wrong("adamw_step", "biases left out of the decay", """
def adamw_step(params, grads, state, lr=1e-3, weight_decay=1e-2, beta1=0.9, beta2=0.999, eps=1e-8):
    decayed = {k: (p - lr * weight_decay * p if k.startswith("W") else p) for k, p in params.items()}
    return adam_step(decayed, grads, state, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
""", expect=r"biases are not decayed"),
    Wrong("clip_grad_norm", "total norm as the sum of the per-array norms", """
def clip_grad_norm(grads, max_norm):
    total = float(sum(np.linalg.norm(g) for g in grads.values()))
    if total > max_norm:
        return {k: g * (max_norm / total) for k, g in grads.items()}, total
    return dict(grads), total
""", expect=r"sum of the per-array norms"),
    Wrong("clip_grad_norm", "always rescaled to max_norm", """
def clip_grad_norm(grads, max_norm):
    total = float(np.sqrt(sum(np.sum(g ** 2) for g in grads.values())))
    if total == 0:
        return dict(grads), total
    return {k: g * (max_norm / total) for k, g in grads.items()}, total
""", expect=r"always rescaled to max_norm"),
    Wrong("dropout_forward", "kept values multiplied by the keep probability", """
def dropout_forward(X, p, train, rng):
    if not train or p == 0:
        return X, None
    mask = rng.random(X.shape) >= p
    return X * mask * (1 - p), mask * (1 - p)
""", expect=r"multiplied by \(1 - p\)"),
    Wrong("dropout_backward", "scaled gradient passed everywhere", """
def dropout_forward(X, p, train, rng):
    if not train or p == 0:
        return X, None
    keep = rng.random(X.shape) >= p
    return X * keep / (1 - p), (keep, p)

def dropout_backward(dout, cache):
    if cache is None:
        return dout
    keep, p = cache
    return dout / (1 - p)
""", expect=r"dout / \(1 - p\) everywhere"),
    Wrong("batchnorm_forward", "eps added to the standard deviation", """
def batchnorm_forward(X, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if running is None:
        running = {"mean": np.zeros(X.shape[1]), "var": np.ones(X.shape[1])}
    if train:
        mean, var = X.mean(axis=0), X.var(axis=0)
        running = {"mean": momentum * running["mean"] + (1 - momentum) * mean,
                   "var": momentum * running["var"] + (1 - momentum) * var}
    else:
        mean, var = running["mean"], running["var"]
        running = dict(running)
    std = np.sqrt(var) + eps
    return gamma * (X - mean) / std + beta, ((X - mean) / std, gamma, 1 / std), running
""", expect=r"eps is added to the standard deviation"),
    Wrong("batchnorm_forward", "running statistics never updated", """
def batchnorm_forward(X, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if running is None:
        running = {"mean": np.zeros(X.shape[1]), "var": np.ones(X.shape[1])}
    mean, var = (X.mean(axis=0), X.var(axis=0)) if train else (running["mean"], running["var"])
    x_hat = (X - mean) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x_hat, gamma, 1 / np.sqrt(var + eps)), dict(running)
""", expect=r"not updated in training mode"),
    Wrong("batchnorm_backward", "path through the mean missing", """
def batchnorm_backward(dout, cache):
    x_hat, gamma, inv_std, _ = cache  # the reference's cache ends with the mode
    g = dout * gamma
    dX = inv_std * (g - x_hat * (g * x_hat).mean(axis=0))
    return dX, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
""", expect=r"path through the mean is missing"),
    Wrong("batchnorm_backward", "dgamma from the raw input", """
def batchnorm_forward(X, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if running is None:
        running = {"mean": np.zeros(X.shape[1]), "var": np.ones(X.shape[1])}
    if train:
        mean, var = X.mean(axis=0), X.var(axis=0)
        running = {"mean": momentum * running["mean"] + (1 - momentum) * mean,
                   "var": momentum * running["var"] + (1 - momentum) * var}
    else:
        mean, var = running["mean"], running["var"]
        running = dict(running)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (X - mean) * inv_std
    return gamma * x_hat + beta, (X, x_hat, gamma, inv_std), running

def batchnorm_backward(dout, cache):
    X, x_hat, gamma, inv_std = cache
    g = dout * gamma
    dX = inv_std * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))
    return dX, (dout * X).sum(axis=0), dout.sum(axis=0)
""", expect=r"dgamma uses X instead"),
    # -- training -------------------------------------------------------------------------------------------
    Wrong("train_mlp", "predict forgets to scale the raw pixels", """
def train_mlp(X_train, y_train, X_val, y_val, rng, epochs=20, lr=1e-2):
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    Xs = (X_train - mean) / std
    params, state, losses = init_mlp([64, 128, 10], rng), None, []
    for _ in range(epochs):
        order = rng.permutation(len(Xs))
        for start in range(0, len(Xs), 32):
            idx = order[start:start + 32]
            loss, grads = mlp_loss_and_grads(Xs[idx], y_train[idx], params, 1e-3)
            losses.append(loss)
            params, state = adam_step(params, grads, state, lr=lr)
    return (lambda X: predict(X, params)), {"loss": losses}
""", expect=r"validation accuracy is"),
    Wrong("train_mlp", "predict scales with the statistics of its own input", """
def train_mlp(X_train, y_train, X_val, y_val, rng, epochs=30, lr=1e-2):
    def scale(X):
        std = X.std(axis=0)
        return (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    Xs = scale(X_train)
    params, state, losses = init_mlp([64, 256, 10], rng), None, []
    for _ in range(epochs):
        order = rng.permutation(len(Xs))
        for start in range(0, len(Xs), 32):
            idx = order[start:start + 32]
            loss, grads = mlp_loss_and_grads(Xs[idx], y_train[idx], params, 1e-3)
            losses.append(loss)
            params, state = adam_step(params, grads, state, lr=lr)
    return (lambda X: predict(scale(X), params)), {"loss": losses}
""", expect=r"depends on the other images"),
    Wrong("train_mlp", "history loss as an array", """
def train_mlp(X_train, y_train, X_val, y_val, rng, epochs=20, lr=1e-2):
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    Xs = (X_train - mean) / std
    params, state, losses = init_mlp([64, 128, 10], rng), None, []
    for _ in range(epochs):
        order = rng.permutation(len(Xs))
        for start in range(0, len(Xs), 32):
            idx = order[start:start + 32]
            loss, grads = mlp_loss_and_grads(Xs[idx], y_train[idx], params, 1e-3)
            losses.append(loss)
            params, state = adam_step(params, grads, state, lr=lr)
    return (lambda X: predict((X - mean) / std, params)), {"loss": np.array(losses)}
""", expect=r"must be a non-empty list"),
    Wrong("train_mlp", "plain SGD with a tiny learning rate", """
def train_mlp(X_train, y_train, X_val, y_val, rng, epochs=3, lr=1e-3):
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    Xs = (X_train - mean) / std
    params, losses = init_mlp([64, 32, 10], rng), []
    for _ in range(epochs):
        for start in range(0, len(Xs), 64):
            loss, grads = mlp_loss_and_grads(Xs[start:start + 64], y_train[start:start + 64], params)
            losses.append(loss)
            params = sgd_step(params, grads, lr)
    return (lambda X: predict((X - mean) / std, params)), {"loss": losses}
""", expect=r"accuracy"),
    # -- issue 11: feedback that names the mistake every time
    Wrong("softmax_cross_entropy", "probabilities clipped at 1e-7 before the log", """
def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    p = softmax(logits)
    loss = float(-np.mean(np.log(np.clip(p[np.arange(n), y], 1e-7, 1 - 1e-7))))
    d = p.copy()
    d[np.arange(n), y] -= 1
    return loss, d / n
""", expect=r"clipped at eps = 1e-07 before the log"),
    Wrong("batchnorm_forward", "running variance starting at zeros", """
def batchnorm_forward(X, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if running is None:
        running = {"mean": np.zeros(X.shape[1]), "var": np.zeros(X.shape[1])}
    if train:
        mean, var = X.mean(axis=0), X.var(axis=0)
        running = {"mean": momentum * running["mean"] + (1 - momentum) * mean,
                   "var": momentum * running["var"] + (1 - momentum) * var}
    else:
        mean, var = running["mean"], running["var"]
        running = dict(running)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (X - mean) * inv_std
    return gamma * x_hat + beta, (x_hat, gamma, inv_std), running
""", expect=r"running variance starts at zeros"),
    Wrong("adam_step", "step count starting at 1", """
def adam_step(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    if state is None:
        state = {"t": 1, "m": {k: 0 * p for k, p in params.items()}, "v": {k: 0 * p for k, p in params.items()}}
    t = state["t"] + 1
    m = {k: beta1 * state["m"][k] + (1 - beta1) * grads[k] for k in params}
    v = {k: beta2 * state["v"][k] + (1 - beta2) * grads[k] ** 2 for k in params}
    new = {k: params[k] - lr * (m[k] / (1 - beta1 ** t)) / (np.sqrt(v[k] / (1 - beta2 ** t)) + eps) for k in params}
    return new, {"t": t, "m": m, "v": v}
""", expect=r"step count starts at 1"),
    Wrong("momentum_step", "velocity with the learning rate in it (v = beta v - lr g; p += v)", """
def momentum_step(params, grads, state, lr, beta=0.9):
    v = {k: (beta * state[k] if state is not None else 0.0) - lr * grads[k] for k in params}
    return {k: params[k] + v[k] for k in params}, v
""", expect=r"lr is folded into the velocity"),
    Wrong("train_mlp", "a fixed-seed generator made inside", """
def train_mlp(X_train, y_train, X_val, y_val, rng, epochs=20, lr=1e-2):
    rng = np.random.default_rng(0)  # "reproducible": the same run whatever rng is passed
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    Xs = (X_train - mean) / std
    params, state, losses = init_mlp([64, 128, 10], rng), None, []
    for _ in range(epochs):
        order = rng.permutation(len(Xs))
        for start in range(0, len(Xs), 32):
            idx = order[start:start + 32]
            loss, grads = mlp_loss_and_grads(Xs[idx], y_train[idx], params, 1e-3)
            losses.append(loss)
            params, state = adam_step(params, grads, state, lr=lr)
    return (lambda X: predict((X - mean) / std, params)), {"loss": losses}
""", expect=r"the rng argument is ignored"),
    # -- issue 11 (03): batch norm's backward after evaluation mode, the sanity drills
    Wrong("batchnorm_backward", "the backward ignores that its forward ran in evaluation mode", """
def batchnorm_forward(X, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    if running is None:
        running = {"mean": np.zeros(X.shape[1]), "var": np.ones(X.shape[1])}
    if train:
        mean, var = X.mean(axis=0), X.var(axis=0)
        running = {"mean": momentum * running["mean"] + (1 - momentum) * mean,
                   "var": momentum * running["var"] + (1 - momentum) * var}
    else:
        mean, var = running["mean"], running["var"]
        running = dict(running)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (X - mean) * inv_std
    return gamma * x_hat + beta, (x_hat, gamma, inv_std), running

def batchnorm_backward(dout, cache):
    x_hat, gamma, inv_std = cache
    g = dout * gamma
    dX = inv_std * (g - g.mean(axis=0) - x_hat * (g * x_hat).mean(axis=0))
    return dX, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
""", expect=r"ignores the mode of its forward"),
    Wrong("sanity_checks", "weights drawn from N(0, 1) instead of init_mlp", """
def sanity_checks(X, y, rng, hidden=(64,), n_small=20, steps=100, lr=1e-2):
    sizes = [X.shape[1], *hidden, int(y.max()) + 1]
    params = {}
    for layer in range(1, len(sizes)):
        params[f"W{layer}"] = rng.normal(size=(sizes[layer - 1], sizes[layer]))
        params[f"b{layer}"] = np.zeros(sizes[layer])
    initial, _ = mlp_loss_and_grads(X, y, params)
    state, losses = None, []
    for _ in range(steps):
        loss, grads = mlp_loss_and_grads(X[:n_small], y[:n_small], params)
        losses.append(loss)
        params, state = adamw_step(params, grads, state, lr=lr, weight_decay=0.0)
    return {"initial_loss": initial, "log_c": float(np.log(sizes[-1])), "small_losses": losses,
            "small_accuracy": accuracy(predict(X[:n_small], params), y[:n_small])}
""", expect=r"initial logits are too large"),
    Wrong("sanity_checks", "the optimizer's new parameters never assigned", """
def sanity_checks(X, y, rng, hidden=(64,), n_small=20, steps=100, lr=1e-2):
    params = init_mlp([X.shape[1], *hidden, int(y.max()) + 1], rng)
    initial, _ = mlp_loss_and_grads(X, y, params)
    state, losses = None, []
    for _ in range(steps):
        loss, grads = mlp_loss_and_grads(X[:n_small], y[:n_small], params)
        losses.append(loss)
        _, state = adamw_step(params, grads, state, lr=lr, weight_decay=0.0)
    return {"initial_loss": initial, "log_c": float(np.log(int(y.max()) + 1)), "small_losses": losses,
            "small_accuracy": accuracy(predict(X[:n_small], params), y[:n_small])}
""", expect=r"parameters are not updated"),
    Wrong("sanity_checks", "log C in base 10", """
def sanity_checks(X, y, rng, hidden=(64,), n_small=20, steps=100, lr=1e-2):
    params = init_mlp([X.shape[1], *hidden, int(y.max()) + 1], rng)
    initial, _ = mlp_loss_and_grads(X, y, params)
    state, losses = None, []
    for _ in range(steps):
        loss, grads = mlp_loss_and_grads(X[:n_small], y[:n_small], params)
        losses.append(loss)
        params, state = adamw_step(params, grads, state, lr=lr, weight_decay=0.0)
    return {"initial_loss": initial, "log_c": float(np.log10(int(y.max()) + 1)), "small_losses": losses,
            "small_accuracy": accuracy(predict(X[:n_small], params), y[:n_small])}
""", expect=r"log_c is log10"),
    Wrong("sanity_checks", "the initial loss measured on the small subset only", """
def sanity_checks(X, y, rng, hidden=(64,), n_small=20, steps=100, lr=1e-2):
    params = init_mlp([X.shape[1], *hidden, int(y.max()) + 1], rng)
    state, losses = None, []
    for _ in range(steps):
        loss, grads = mlp_loss_and_grads(X[:n_small], y[:n_small], params)
        losses.append(loss)
        params, state = adamw_step(params, grads, state, lr=lr, weight_decay=0.0)
    return {"initial_loss": losses[0], "log_c": float(np.log(int(y.max()) + 1)), "small_losses": losses,
            "small_accuracy": accuracy(predict(X[:n_small], params), y[:n_small])}
""", expect=r"loss on all of X"),
]

CORRECT = [
    Right("the reference itself", ""),
    Right("mse_backward as a loop over every element", """
def mse_backward(pred, target):
    dpred = np.zeros(np.shape(pred))
    count = dpred.size
    for index in np.ndindex(dpred.shape):
        dpred[index] = 2.0 * (pred[index] - target[index]) / count
    return dpred
"""),
    Right("einsum layers, np.where ReLU, explicit one-hot, recursive network backward", """
def dense_backward(dout, cache):
    X, W = cache
    return np.einsum("nh,dh->nd", dout, W), np.einsum("nd,nh->dh", X, dout), np.einsum("nh->h", dout)

def relu_backward(dout, cache):
    return np.where(cache > 0, dout, 0.0)

def softmax_cross_entropy(logits, y):
    n, c = logits.shape
    one_hot = np.eye(c)[y]
    log_p = log_softmax(logits)
    loss = -float(np.sum(one_hot * log_p)) / n
    return loss, (np.exp(log_p) - one_hot) / n

def mlp_backward(dlogits, cache):
    def back(d, layers):
        if not layers:
            return {}
        dense_cache, relu_cache = layers[-1]
        if relu_cache is not None:
            d = relu_backward(d, relu_cache)
        dX, dW, db = dense_backward(d, dense_cache)
        grads = back(dX, layers[:-1])
        grads[f"W{len(layers)}"], grads[f"b{len(layers)}"] = dW, db
        return grads
    return back(dlogits, list(cache))

def mlp_loss_and_grads(X, y, params, weight_decay=0.0):
    logits, cache = mlp_forward(X, params)
    loss, dlogits = softmax_cross_entropy(logits, y)
    grads = mlp_backward(dlogits, cache)
    weights = [k for k in params if k[0] == "W"]
    penalty = 0.5 * weight_decay * sum(np.einsum("ij,ij->", params[k], params[k]) for k in weights)
    grads.update({k: grads[k] + weight_decay * params[k] for k in weights})
    return float(loss + penalty), grads

def sanity_checks(X, y, rng, hidden=(64,), n_small=20, steps=100, lr=1e-2):
    classes = int(np.max(y)) + 1
    params = init_mlp([X.shape[1]] + list(hidden) + [classes], rng)
    start = cross_entropy(mlp_forward(X, params)[0], y)
    losses, state = [], None
    for step in range(steps):
        logits, cache = mlp_forward(X[:n_small], params)
        loss, dlogits = softmax_cross_entropy(logits, y[:n_small])
        losses.append(loss)
        params, state = adam_step(params, mlp_backward(dlogits, cache), state, lr=lr)
    right = np.argmax(mlp_forward(X[:n_small], params)[0], axis=1) == y[:n_small]
    return dict(initial_loss=start, log_c=float(np.log(classes)), small_losses=losses, small_accuracy=right.mean())

def clip_grad_norm(grads, max_norm):
    flat = np.concatenate([np.ravel(g) for g in grads.values()]) if grads else np.zeros(0)
    total = float(np.linalg.norm(flat))
    factor = max_norm / (total + 1e-6)
    if factor < 1.0:
        return {k: g * factor for k, g in grads.items()}, total
    return {k: g.copy() for k, g in grads.items()}, total
"""),
    Right("PyTorch-style Adam arithmetic, list-based state, loops, binomial dropout mask", """
def sgd_step(params, grads, lr):
    new = {}
    for k, p in params.items():
        new[k] = p.copy()
        new[k] -= lr * grads[k]
    return new

def momentum_step(params, grads, state, lr, beta=0.9):
    keys = sorted(params)
    old = state if state is not None else [np.zeros_like(params[k]) for k in keys]
    velocity = [beta * v + grads[k] for v, k in zip(old, keys)]
    return {k: params[k] - lr * v for k, v in zip(keys, velocity)}, velocity

def adam_step(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    step, m, v = state if state is not None else (0, {}, {})
    step += 1
    bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
    new_m, new_v, new_p = {}, {}, {}
    for k, p in params.items():
        new_m[k] = beta1 * m.get(k, 0.0) + (1 - beta1) * grads[k]
        new_v[k] = beta2 * v.get(k, 0.0) + (1 - beta2) * grads[k] * grads[k]
        denom = np.sqrt(new_v[k]) / np.sqrt(bias2) + eps
        new_p[k] = p - (lr / bias1) * new_m[k] / denom
    return new_p, (step, new_m, new_v)

def adamw_step(params, grads, state, lr=1e-3, weight_decay=1e-2, beta1=0.9, beta2=0.999, eps=1e-8):
    return adam_step({k: p * (1 - lr * weight_decay) for k, p in params.items()}, grads, state,
                     lr=lr, beta1=beta1, beta2=beta2, eps=eps)

def dropout_forward(X, p, train, rng):
    if train and p > 0:
        keep = rng.binomial(1, 1 - p, size=np.shape(X)).astype(bool)
        return np.where(keep, X / (1 - p), 0.0), (keep, p)
    return X.copy(), (None, p)

def dropout_backward(dout, cache):
    keep, p = cache
    if keep is None:
        return dout.copy()
    return np.where(keep, dout / (1 - p), 0.0)
"""),
    Right("batch norm through its computational graph, momentum SGD training loop", """
def batchnorm_forward(X, gamma, beta, running, train, momentum=0.9, eps=1e-5):
    d = X.shape[1]
    old_mean = np.zeros(d) if running is None else running["mean"]
    old_var = np.ones(d) if running is None else running["var"]
    if train:
        mu = np.sum(X, axis=0) / X.shape[0]
        xc = X - mu
        var = np.sum(xc ** 2, axis=0) / X.shape[0]
        new_running = {"mean": momentum * old_mean + (1 - momentum) * mu,
                       "var": momentum * old_var + (1 - momentum) * var}
    else:
        xc, var = X - old_mean, old_var
        new_running = {"mean": np.array(old_mean), "var": np.array(old_var)}
    std = np.sqrt(var + eps)
    x_hat = xc / std
    return gamma * x_hat + beta, {"xc": xc, "std": std, "gamma": gamma, "batch_stats": bool(train)}, new_running

def batchnorm_backward(dout, cache):
    xc, std, gamma = cache["xc"], cache["std"], cache["gamma"]
    n = dout.shape[0]
    x_hat = xc / std
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(dout * x_hat, axis=0)
    dx_hat = dout * gamma
    if not cache["batch_stats"]:
        return dx_hat / std, dgamma, dbeta
    dvar = np.sum(dx_hat * xc, axis=0) * -0.5 * std ** -3
    dmu = -np.sum(dx_hat / std, axis=0) - 2.0 * dvar * np.mean(xc, axis=0)
    dX = dx_hat / std + dvar * 2.0 * xc / n + dmu / n
    return dX, dgamma, dbeta

def train_mlp(X_train, y_train, X_val, y_val, rng, hidden=256, epochs=60, batch_size=20, lr=0.05, beta=0.9):
    mean = X_train.mean(axis=0)
    spread = X_train.std(axis=0) + 1e-3
    fit = (X_train - mean) / spread
    params = init_mlp([fit.shape[1], hidden, 10], rng)
    state, losses = None, []
    for epoch in range(epochs):
        order = rng.permutation(len(fit))
        rate = lr if epoch < 2 * epochs // 3 else lr / 10
        for start in range(0, len(fit), batch_size):
            idx = order[start:start + batch_size]
            loss, grads = mlp_loss_and_grads(fit[idx], y_train[idx], params, 1e-3)
            losses.append(float(loss))
            params, state = momentum_step(params, grads, state, rate, beta)
    return (lambda X: predict((np.asarray(X, dtype=float) - mean) / spread, params)), {"loss": losses}
"""),
    Right("own dense and ReLU forward passes whose caches are dicts, with matching backward passes", """
def dense_forward(X, W, b):
    return X @ W + b, {"inputs": X, "weights": W}

def dense_backward(dout, cache):
    return dout @ cache["weights"].T, cache["inputs"].T @ dout, dout.sum(axis=0)

def relu_forward(X):
    return np.maximum(X, 0.0), {"open": X > 0}

def relu_backward(dout, cache):
    return np.where(cache["open"], dout, 0.0)
"""),
]
