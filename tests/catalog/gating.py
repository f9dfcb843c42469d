"""Realistic implementations of 05_gating's functions: mistakes students make, and other valid ways."""
from tests.catalog import Right, Wrong

ASSIGNMENT = "05_gating"

WRONG = [
    Wrong("sigmoid_gate", "the logit used as the gate", """
def sigmoid_gate(value, gate_logit):
    return gate_logit * value
""", expect=r"logit is used as the gate"),
    Wrong("sigmoid_gate", "naive sigmoid overflows", """
def sigmoid_gate(value, gate_logit):
    return value / (1.0 + np.exp(-np.asarray(gate_logit, dtype=float)))
""", expect=r"warning.*overflow"),
    Wrong("interpolate_gate", "gate weighs the old value", """
def interpolate_gate(new, old, gate_logit):
    g = sigmoid(gate_logit)
    return g * old + (1 - g) * new
""", expect=r"gate weighs the old value"),
    Wrong("glu_forward", "sigmoid on the wrong half", """
def glu_forward(X, W, b, V, c):
    a = sigmoid(X @ W + b)
    u = X @ V + c
    return a * u, (X, W, V, a, u)
""", expect=r"sigmoid is on the wrong half"),
    Wrong("glu_backward", "sigmoid slope missing in the gate branch", """
def glu_backward(dout, cache):
    X, W, V, a, g = cache
    da = dout * g
    du = dout * a * g
    return da @ W.T + du @ V.T, X.T @ da, da.sum(axis=0), X.T @ du, du.sum(axis=0)
""", expect=r"slope g\(1-g\) is missing"),
    Wrong("glu_backward", "dX from the signal branch only", """
def glu_backward(dout, cache):
    X, W, V, a, g = cache
    da = dout * g
    du = dout * a * g * (1 - g)
    return da @ W.T, X.T @ da, da.sum(axis=0), X.T @ du, du.sum(axis=0)
""", expect=r"dX has only the signal branch"),
    Wrong("glu_backward", "dX from the gate branch only", """
def glu_backward(dout, cache):
    X, W, V, a, g = cache
    da = dout * g
    du = dout * a * g * (1 - g)
    return du @ V.T, X.T @ da, da.sum(axis=0), X.T @ du, du.sum(axis=0)
""", expect=r"dX has only the gate branch"),
    Wrong("swiglu_forward", "swish on the wrong half", """
def swiglu_forward(X, W, b, V, c):
    a = X @ W + b
    u = X @ V + c
    return a * u * sigmoid(u), (X, W, V, a, u, sigmoid(u))
""", expect=r"swish is on the wrong half"),
    Wrong("swiglu_backward", "swish derivative taken as the sigmoid", """
def swiglu_backward(dout, cache):
    X, W, V, a, u, s = cache
    da = dout * u * s
    du = dout * a * s
    return da @ W.T + du @ V.T, X.T @ da, da.sum(axis=0), X.T @ du, du.sum(axis=0)
""", expect=r"swish'\(a\) taken as sigmoid"),
    Wrong("gru_cell_forward", "gate order z, r, n", """
def gru_cell_forward(x, h_prev, params):
    H = h_prev.shape[1]
    gx = x @ params["Wx"] + params["bx"]
    gh = h_prev @ params["Wh"] + params["bh"]
    z = sigmoid(gx[:, :H] + gh[:, :H])
    r = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    hn = gh[:, 2 * H:]
    n = np.tanh(gx[:, 2 * H:] + r * hn)
    return (1 - z) * n + z * h_prev, (x, h_prev, params["Wx"], params["Wh"], r, z, n, hn)
""", expect=r"gate order: the columns are read as z, r, n"),
    Wrong("gru_cell_forward", "(1 - z) on the wrong term", """
def gru_cell_forward(x, h_prev, params):
    H = h_prev.shape[1]
    gx = x @ params["Wx"] + params["bx"]
    gh = h_prev @ params["Wh"] + params["bh"]
    r = sigmoid(gx[:, :H] + gh[:, :H])
    z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    hn = gh[:, 2 * H:]
    n = np.tanh(gx[:, 2 * H:] + r * hn)
    return z * n + (1 - z) * h_prev, (x, h_prev, params["Wx"], params["Wh"], r, z, n, hn)
""", expect=r"\(1 - z\) is on the wrong term"),
    Wrong("gru_cell_forward", "reset gate applied outside the recurrent bias", """
def gru_cell_forward(x, h_prev, params):
    H = h_prev.shape[1]
    Wx, Wh, bx, bh = params["Wx"], params["Wh"], params["bx"], params["bh"]
    r = sigmoid(x @ Wx[:, :H] + bx[:H] + h_prev @ Wh[:, :H] + bh[:H])
    z = sigmoid(x @ Wx[:, H:2 * H] + bx[H:2 * H] + h_prev @ Wh[:, H:2 * H] + bh[H:2 * H])
    n = np.tanh(x @ Wx[:, 2 * H:] + bx[2 * H:] + r * (h_prev @ Wh[:, 2 * H:]) + bh[2 * H:])
    return (1 - z) * n + z * h_prev, None
""", expect=r"r is applied outside the recurrent term"),
    Wrong("gru_cell_forward", "reset gate applied before the matrix product", """
def gru_cell_forward(x, h_prev, params):
    H = h_prev.shape[1]
    Wx, Wh, bx, bh = params["Wx"], params["Wh"], params["bx"], params["bh"]
    r = sigmoid(x @ Wx[:, :H] + bx[:H] + h_prev @ Wh[:, :H] + bh[:H])
    z = sigmoid(x @ Wx[:, H:2 * H] + bx[H:2 * H] + h_prev @ Wh[:, H:2 * H] + bh[H:2 * H])
    n = np.tanh(x @ Wx[:, 2 * H:] + bx[2 * H:] + (r * h_prev) @ Wh[:, 2 * H:] + bh[2 * H:])
    return (1 - z) * n + z * h_prev, None
""", expect=r"r is applied to h_prev before the product"),
    Wrong("gru_cell_backward", "dh_prev misses the direct path", """
def gru_cell_backward(dh, cache):
    x, h_prev, Wx, Wh, r, z, n, hn = cache
    dan = dh * (1 - z) * (1 - n * n)
    dar = dan * hn * r * (1 - r)
    daz = dh * (h_prev - n) * z * (1 - z)
    d_in = np.concatenate([dar, daz, dan], axis=1)
    d_rec = np.concatenate([dar, daz, dan * r], axis=1)
    grads = {"Wx": x.T @ d_in, "Wh": h_prev.T @ d_rec, "bx": d_in.sum(axis=0), "bh": d_rec.sum(axis=0)}
    return d_in @ Wx.T, d_rec @ Wh.T, grads
""", expect=r"direct path dh \* z"),
    Wrong("gru_cell_backward", "recurrent n columns miss the factor r", """
def gru_cell_backward(dh, cache):
    x, h_prev, Wx, Wh, r, z, n, hn = cache
    dan = dh * (1 - z) * (1 - n * n)
    dar = dan * hn * r * (1 - r)
    daz = dh * (h_prev - n) * z * (1 - z)
    d = np.concatenate([dar, daz, dan], axis=1)
    grads = {"Wx": x.T @ d, "Wh": h_prev.T @ d, "bx": d.sum(axis=0), "bh": d.sum(axis=0)}
    return d @ Wx.T, dh * z + d @ Wh.T, grads
""", expect=r"factor r"),
    Wrong("lstm_cell_forward", "gate order i, f, o, g", """
def lstm_cell_forward(x, h_prev, c_prev, params):
    H = h_prev.shape[1]
    a = x @ params["Wx"] + h_prev @ params["Wh"] + params["b"]
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    c = f * c_prev + i * g
    return o * np.tanh(c), c, None
""", expect=r"gate order: the columns are read as i, f, o, g"),
    Wrong("lstm_cell_forward", "h without the tanh of c", """
def lstm_cell_forward(x, h_prev, c_prev, params):
    H = h_prev.shape[1]
    a = x @ params["Wx"] + h_prev @ params["Wh"] + params["b"]
    i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
    g, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
    c = f * c_prev + i * g
    return o * c, c, None
""", expect=r"h = o \* c"),
    Wrong("lstm_cell_backward", "ignores dc", """
def lstm_cell_backward(dh, dc, cache):
    x, h_prev, c_prev, Wx, Wh, i, f, g, o, tc = cache
    dct = dh * o * (1 - tc * tc)
    da = np.concatenate([dct * g * i * (1 - i), dct * c_prev * f * (1 - f), dct * i * (1 - g * g),
                         dh * tc * o * (1 - o)], axis=1)
    return da @ Wx.T, da @ Wh.T, dct * f, {"Wx": x.T @ da, "Wh": h_prev.T @ da, "b": da.sum(axis=0)}
""", expect=r"dc .* is ignored"),
    Wrong("lstm_cell_backward", "path through h added without tanh's slope", """
def lstm_cell_backward(dh, dc, cache):
    x, h_prev, c_prev, Wx, Wh, i, f, g, o, tc = cache
    dct = dc + dh * o
    da = np.concatenate([dct * g * i * (1 - i), dct * c_prev * f * (1 - f), dct * i * (1 - g * g),
                         dh * tc * o * (1 - o)], axis=1)
    return da @ Wx.T, da @ Wh.T, dct * f, {"Wx": x.T @ da, "Wh": h_prev.T @ da, "b": da.sum(axis=0)}
""", expect=r"without tanh's slope"),
    Wrong("lstm_cell_backward", "dc_prev leaves out the path through h", """
def lstm_cell_backward(dh, dc, cache):
    x, h_prev, c_prev, Wx, Wh, i, f, g, o, tc = cache
    dct = dc + dh * o * (1 - tc * tc)
    da = np.concatenate([dct * g * i * (1 - i), dct * c_prev * f * (1 - f), dct * i * (1 - g * g),
                         dh * tc * o * (1 - o)], axis=1)
    return da @ Wx.T, da @ Wh.T, dc * f, {"Wx": x.T @ da, "Wh": h_prev.T @ da, "b": da.sum(axis=0)}
""", expect=r"dc_prev = dc \* f leaves out the path through h"),
    Wrong("gru_forward", "h0 ignored", """
def gru_forward(X, h0, params):
    h = np.zeros_like(h0)
    states, caches = [], []
    for t in range(X.shape[1]):
        h, cache = gru_cell_forward(X[:, t], h, params)
        states.append(h)
        caches.append(cache)
    return np.stack(states, axis=1), (caches, X.shape)
""", expect=r"h0 is ignored"),
    Wrong("gru_backward", "BPTT drops the gradient through h", """
def gru_backward(dH, cache):
    caches, shape = cache
    dX = np.zeros(shape)
    grads = {k: 0.0 for k in ("Wx", "Wh", "bx", "bh")}
    for t in reversed(range(shape[1])):
        dx, dh_prev, g = gru_cell_backward(dH[:, t], caches[t])
        dX[:, t] = dx
        grads = {k: grads[k] + g[k] for k in grads}
    return dX, dh_prev, grads
""", expect=r"drops the gradient flowing through h"),
    Wrong("gru_backward", "parameter gradients overwritten at each step", """
def gru_backward(dH, cache):
    caches, shape = cache
    dX = np.zeros(shape)
    dh = np.zeros((shape[0], dH.shape[2]))
    for t in reversed(range(shape[1])):
        dx, dh, grads = gru_cell_backward(dH[:, t] + dh, caches[t])
        dX[:, t] = dx
    return dX, dh, grads
""", expect=r"overwritten at each step"),
    Wrong("train_gated_memory", "cell ignored: a GRU for both", """
_reference_train = train_gated_memory
def train_gated_memory(X_train, y_train, X_val, y_val, rng, cell="gru", **config):
    return _reference_train(X_train, y_train, X_val, y_val, rng, cell="gru", **config)
""", expect=r"cell=\"rnn\".*above 1/K \+ 0.1"),
    Wrong("train_gated_memory", "no update-gate bias and a tiny learning rate", """
_reference_train = train_gated_memory
def train_gated_memory(X_train, y_train, X_val, y_val, rng, cell="gru", **config):
    config = {**config, "update_bias": 0.0, "lr": 1e-3}
    return _reference_train(X_train, y_train, X_val, y_val, rng, cell=cell, **config)
""", expect=r"cell=\"gru\".*below 0.95"),
    Wrong("train_gated_memory", "predict returns logits", """
_reference_train = train_gated_memory
def train_gated_memory(X_train, y_train, X_val, y_val, rng, cell="gru", **config):
    predict, history = _reference_train(X_train, y_train, X_val, y_val, rng, cell=cell, **config)
    classes = int(max(X_train.max(), y_train.max())) + 1
    return (lambda X: np.eye(classes)[predict(X)]), history
""", expect=r"one int label per sequence"),
    Wrong("moe_forward", "outputs weighted by the router logits", """
def moe_forward(X, params, top_k):
    logits = X @ params["Wr"]
    chosen = np.argsort(-logits, axis=1, kind="stable")[:, :top_k]
    gates = np.take_along_axis(logits, chosen, axis=1)
    out = np.zeros(X.shape)
    for n in range(X.shape[0]):
        for slot in range(top_k):
            e = chosen[n, slot]
            out[n] += gates[n, slot] * (np.maximum(X[n] @ params["W1"][e] + params["b1"][e], 0) @ params["W2"][e] + params["b2"][e])
    return out, None
""", expect=r"weighted by the router logits"),
    Wrong("moe_forward", "chosen probabilities not renormalized", """
def moe_forward(X, params, top_k):
    probs = softmax(X @ params["Wr"])
    chosen = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    gates = np.take_along_axis(probs, chosen, axis=1)
    out = np.zeros(X.shape)
    for n in range(X.shape[0]):
        for slot in range(top_k):
            e = chosen[n, slot]
            out[n] += gates[n, slot] * (np.maximum(X[n] @ params["W1"][e] + params["b1"][e], 0) @ params["W2"][e] + params["b2"][e])
    return out, None
""", expect=r"not renormalized"),
    Wrong("moe_forward", "ties go to the higher index", """
def moe_forward(X, params, top_k):
    probs = softmax(X @ params["Wr"])
    chosen = np.argsort(probs, axis=1, kind="stable")[:, ::-1][:, :top_k]
    gates = np.take_along_axis(probs, chosen, axis=1)
    gates = gates / gates.sum(axis=1, keepdims=True)
    out = np.zeros(X.shape)
    for n in range(X.shape[0]):
        for slot in range(top_k):
            e = chosen[n, slot]
            out[n] += gates[n, slot] * (np.maximum(X[n] @ params["W1"][e] + params["b1"][e], 0) @ params["W2"][e] + params["b2"][e])
    return out, None
""", expect=r"ties go to the higher index"),
    Wrong("moe_forward", "every expert used, weighted by its probability", """
def moe_forward(X, params, top_k):
    probs = softmax(X @ params["Wr"])
    out = np.zeros(X.shape)
    for e in range(probs.shape[1]):
        y = np.maximum(X @ params["W1"][e] + params["b1"][e], 0) @ params["W2"][e] + params["b2"][e]
        out += probs[:, e:e + 1] * y
    return out, None
""", expect=r"every expert is used"),
    Wrong("moe_backward", "no gradient to the router", """
def moe_backward(dout, cache):
    X, params, probs, chosen, gates, total, per_expert = cache
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dX = np.zeros(X.shape)
    for e, (rows, slots, pre, hidden, y) in enumerate(per_expert):
        dy = gates[rows, slots][:, None] * dout[rows]
        grads["W2"][e] = hidden.T @ dy
        grads["b2"][e] = dy.sum(axis=0)
        dpre = (dy @ params["W2"][e].T) * (pre > 0)
        grads["W1"][e] = X[rows].T @ dpre
        grads["b1"][e] = dpre.sum(axis=0)
        dX[rows] += dpre @ params["W1"][e].T
    return dX, grads
""", expect=r"no gradient reaches the router"),
    Wrong("moe_backward", "router gradient ignores the renormalization", """
def moe_backward(dout, cache):
    X, params, probs, chosen, gates, total, per_expert = cache
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dX = np.zeros(X.shape)
    dgates = np.zeros(gates.shape)
    for e, (rows, slots, pre, hidden, y) in enumerate(per_expert):
        dgates[rows, slots] = np.sum(dout[rows] * y, axis=1)
        dy = gates[rows, slots][:, None] * dout[rows]
        grads["W2"][e] = hidden.T @ dy
        grads["b2"][e] = dy.sum(axis=0)
        dpre = (dy @ params["W2"][e].T) * (pre > 0)
        grads["W1"][e] = X[rows].T @ dpre
        grads["b1"][e] = dpre.sum(axis=0)
        dX[rows] += dpre @ params["W1"][e].T
    dprobs = np.zeros(probs.shape)
    np.put_along_axis(dprobs, chosen, dgates, axis=1)
    dlogits = probs * (dprobs - np.sum(dprobs * probs, axis=1, keepdims=True))
    grads["Wr"] = X.T @ dlogits
    return dX + dlogits @ params["Wr"].T, grads
""", expect=r"ignores the renormalization"),
    Wrong("moe_backward", "dX leaves out the router path", """
_reference_moe_backward = moe_backward
def moe_backward(dout, cache):
    X, params, probs, chosen, gates, total, per_expert = cache
    dX, grads = _reference_moe_backward(dout, cache)
    dgates = np.zeros(gates.shape)
    for e, (rows, slots, pre, hidden, y) in enumerate(per_expert):
        dgates[rows, slots] = np.sum(dout[rows] * y, axis=1)
    dchosen = (dgates - np.sum(dgates * gates, axis=1, keepdims=True)) / total
    dprobs = np.zeros(probs.shape)
    np.put_along_axis(dprobs, chosen, dchosen, axis=1)
    dlogits = probs * (dprobs - np.sum(dprobs * probs, axis=1, keepdims=True))
    return dX - dlogits @ params["Wr"].T, grads
""", expect=r"leaves out the router's share"),
    Wrong("load_balancing_loss", "factor E missing", """
def load_balancing_loss(router_probs, expert_index, n_experts):
    f = np.bincount(expert_index, minlength=n_experts) / len(expert_index)
    return float(np.sum(f * router_probs.mean(axis=0)))
""", expect=r"factor E is missing"),
    Wrong("load_balancing_loss", "f from the probabilities", """
def load_balancing_loss(router_probs, expert_index, n_experts):
    P = router_probs.mean(axis=0)
    return float(n_experts * np.sum(P * P))
""", expect=r"f is computed from the probabilities"),
    Wrong("load_balancing_loss", "bincount without minlength", """
def load_balancing_loss(router_probs, expert_index, n_experts):
    f = np.bincount(expert_index) / len(expert_index)
    return float(n_experts * np.sum(f * router_probs.mean(axis=0)))
""", expect=r"raised ValueError|operands could not be broadcast"),
]

CORRECT = [
    Right("the reference itself", ""),
    Right("einsum layers, per-gate weight slices, and a per-token loop mixture of experts", """
def sigmoid_gate(value, gate_logit):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(gate_logit, dtype=float))) * value

def interpolate_gate(new, old, gate_logit):
    return old + sigmoid(gate_logit) * (new - old)

def glu_forward(X, W, b, V, c):
    a = np.einsum("nd,df->nf", X, W) + b
    u = np.einsum("nd,df->nf", X, V) + c
    return a * sigmoid(u), {"X": X, "W": W, "V": V, "a": a, "u": u}

def glu_backward(dout, cache):
    g = sigmoid(cache["u"])
    da = dout * g
    du = dout * cache["a"] * g * (1 - g)
    dX = np.einsum("nf,df->nd", da, cache["W"]) + np.einsum("nf,df->nd", du, cache["V"])
    return dX, np.einsum("nd,nf->df", cache["X"], da), da.sum(0), np.einsum("nd,nf->df", cache["X"], du), du.sum(0)

def swiglu_forward(X, W, b, V, c):
    a = np.einsum("nd,df->nf", X, W) + b
    u = np.einsum("nd,df->nf", X, V) + c
    return a * sigmoid(a) * u, {"X": X, "W": W, "V": V, "a": a, "u": u}

def swiglu_backward(dout, cache):
    a, u = cache["a"], cache["u"]
    s = sigmoid(a)
    da = dout * u * s * (1 + a * (1 - s))
    du = dout * a * s
    dX = np.einsum("nf,df->nd", da, cache["W"]) + np.einsum("nf,df->nd", du, cache["V"])
    return dX, np.einsum("nd,nf->df", cache["X"], da), da.sum(0), np.einsum("nd,nf->df", cache["X"], du), du.sum(0)

def gru_cell_forward(x, h_prev, params):
    H = h_prev.shape[1]
    cols = {"r": slice(0, H), "z": slice(H, 2 * H), "n": slice(2 * H, 3 * H)}
    Wx, Wh, bx, bh = params["Wx"], params["Wh"], params["bx"], params["bh"]
    r = sigmoid(x @ Wx[:, cols["r"]] + bx[cols["r"]] + h_prev @ Wh[:, cols["r"]] + bh[cols["r"]])
    z = sigmoid(x @ Wx[:, cols["z"]] + bx[cols["z"]] + h_prev @ Wh[:, cols["z"]] + bh[cols["z"]])
    hn = h_prev @ Wh[:, cols["n"]] + bh[cols["n"]]
    n = np.tanh(x @ Wx[:, cols["n"]] + bx[cols["n"]] + r * hn)
    h = n + z * (h_prev - n)
    return h, dict(x=x, h_prev=h_prev, params=params, r=r, z=z, n=n, hn=hn, cols=cols)

def gru_cell_backward(dh, cache):
    x, h_prev, p, r, z, n, hn, cols = (cache[k] for k in ("x", "h_prev", "params", "r", "z", "n", "hn", "cols"))
    dan = dh * (1 - z) * (1 - n ** 2)
    pre_in = {"r": dan * hn * r * (1 - r), "z": dh * (h_prev - n) * z * (1 - z), "n": dan}
    pre_rec = dict(pre_in, n=dan * r)
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dx = np.zeros_like(x)
    dh_prev = dh * z
    for gate in ("r", "z", "n"):
        s = cols[gate]
        grads["Wx"][:, s] = x.T @ pre_in[gate]
        grads["bx"][s] = pre_in[gate].sum(0)
        grads["Wh"][:, s] = h_prev.T @ pre_rec[gate]
        grads["bh"][s] = pre_rec[gate].sum(0)
        dx = dx + pre_in[gate] @ p["Wx"][:, s].T
        dh_prev = dh_prev + pre_rec[gate] @ p["Wh"][:, s].T
    return dx, dh_prev, grads

def lstm_cell_forward(x, h_prev, c_prev, params):
    a = x @ params["Wx"] + h_prev @ params["Wh"] + params["b"]
    ai, af, ag, ao = np.split(a, 4, axis=1)
    gates = {"i": sigmoid(ai), "f": sigmoid(af), "g": np.tanh(ag), "o": sigmoid(ao)}
    c = gates["f"] * c_prev + gates["i"] * gates["g"]
    h = gates["o"] * np.tanh(c)
    return h, c, (x, h_prev, c_prev, c, gates, params)

def lstm_cell_backward(dh, dc, cache):
    x, h_prev, c_prev, c, G, params = cache
    tc = np.tanh(c)
    dc = dc + dh * G["o"] / np.cosh(c) ** 2
    da = np.hstack([dc * G["g"] * G["i"] * (1 - G["i"]), dc * c_prev * G["f"] * (1 - G["f"]),
                    dc * G["i"] * (1 - G["g"] ** 2), dh * tc * G["o"] * (1 - G["o"])])
    grads = {"Wx": np.einsum("nd,nk->dk", x, da), "Wh": np.einsum("nh,nk->hk", h_prev, da), "b": da.sum(0)}
    return da @ params["Wx"].T, da @ params["Wh"].T, dc * G["f"], grads

def moe_forward(X, params, top_k):
    probs = softmax(X @ params["Wr"])
    N, E = probs.shape
    routes = []
    out = np.zeros(X.shape)
    for n in range(N):
        remaining = list(range(E))
        picked = []
        for _ in range(top_k):
            best = max(remaining, key=lambda e: (probs[n, e], -e))
            picked.append(best)
            remaining.remove(best)
        total = sum(probs[n, e] for e in picked)
        for e in picked:
            pre = X[n] @ params["W1"][e] + params["b1"][e]
            y = np.maximum(pre, 0) @ params["W2"][e] + params["b2"][e]
            w = probs[n, e] / total
            out[n] = out[n] + w * y
            routes.append((n, e, w, total, pre, y))
    return out, (X, params, probs, routes, top_k)

def moe_backward(dout, cache):
    X, params, probs, routes, top_k = cache
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dX = np.zeros(X.shape)
    dprobs = np.zeros(probs.shape)
    by_token = {}
    for n, e, w, total, pre, y in routes:
        by_token.setdefault(n, []).append((e, w, total, float(dout[n] @ y)))
        hidden = np.maximum(pre, 0)
        dy = w * dout[n]
        grads["W2"][e] += np.outer(hidden, dy)
        grads["b2"][e] += dy
        dpre = (params["W2"][e] @ dy) * (pre > 0)
        grads["W1"][e] += np.outer(X[n], dpre)
        grads["b1"][e] += dpre
        dX[n] += params["W1"][e] @ dpre
    for n, items in by_token.items():
        mean = sum(w * dw for _, w, _, dw in items)
        for e, w, total, dw in items:
            dprobs[n, e] = (dw - mean) / total
    dlogits = probs * (dprobs - np.sum(dprobs * probs, axis=1, keepdims=True))
    grads["Wr"] = X.T @ dlogits
    return dX + dlogits @ params["Wr"].T, grads

def load_balancing_loss(router_probs, expert_index, n_experts):
    total = 0.0
    N = len(expert_index)
    for e in range(n_experts):
        f_e = sum(1 for i in expert_index if i == e) / N
        P_e = sum(router_probs[n, e] for n in range(N)) / N
        total += f_e * P_e
    return float(n_experts * total)
"""),
    Right("preallocated BPTT, softmax over the chosen logits, and a learned embedding for the memory task", """
def gru_forward(X, h0, params):
    N, T, _ = X.shape
    H = np.empty((N, T, h0.shape[1]))
    caches = []
    h = h0
    for t in range(T):
        h, c = gru_cell_forward(X[:, t, :], h, params)
        H[:, t, :] = h
        caches.append(c)
    return H, {"caches": caches, "N": N, "T": T, "D": X.shape[2]}

def gru_backward(dH, cache):
    N, T, D = cache["N"], cache["T"], cache["D"]
    dX = np.empty((N, T, D))
    grads = {}
    carry = np.zeros(dH.shape[::2])
    for t in range(T - 1, -1, -1):
        dx, carry, g = gru_cell_backward(dH[:, t, :] + carry, cache["caches"][t])
        dX[:, t, :] = dx
        for k, v in g.items():
            grads[k] = grads.get(k, 0.0) + v
    return dX, carry, grads

def moe_forward(X, params, top_k):
    logits = X @ params["Wr"]
    probs = softmax(logits)
    if top_k == 1:
        chosen = np.argmax(probs, axis=1)[:, None]
    else:
        chosen = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    gates = softmax(np.take_along_axis(logits, chosen, axis=1))   # = renormalized probabilities
    E = params["Wr"].shape[1]
    expert_out = np.stack([np.maximum(X @ params["W1"][e] + params["b1"][e], 0) @ params["W2"][e] + params["b2"][e]
                           for e in range(E)], axis=1)               # (N, E, D): every expert, for clarity
    picked = np.take_along_axis(expert_out, chosen[:, :, None], axis=1)
    out = np.einsum("nk,nkd->nd", gates, picked)
    return out, (X, params, probs, chosen, gates, picked)

def moe_backward(dout, cache):
    X, params, probs, chosen, gates, picked = cache
    E = params["Wr"].shape[1]
    weight = np.zeros(probs.shape)
    np.put_along_axis(weight, chosen, gates, axis=1)                 # (N, E), zero for experts not chosen
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dX = np.zeros(X.shape)
    for e in range(E):
        pre = X @ params["W1"][e] + params["b1"][e]
        dy = weight[:, e:e + 1] * dout
        grads["W2"][e] = np.maximum(pre, 0).T @ dy
        grads["b2"][e] = dy.sum(0)
        dpre = (dy @ params["W2"][e].T) * (pre > 0)
        grads["W1"][e] = X.T @ dpre
        grads["b1"][e] = dpre.sum(0)
        dX += dpre @ params["W1"][e].T
    dgates = np.einsum("nd,nkd->nk", dout, picked)
    dchosen_logits = gates * (dgates - np.sum(dgates * gates, axis=1, keepdims=True))
    dlogits = np.zeros(probs.shape)
    np.put_along_axis(dlogits, chosen, dchosen_logits, axis=1)
    grads["Wr"] = X.T @ dlogits
    return dX + dlogits @ params["Wr"].T, grads

def train_gated_memory(X_train, y_train, X_val, y_val, rng, cell="gru", **config):
    H = config.get("hidden_size", 24)
    emb = config.get("embedding_size", 8)
    steps = config.get("steps", 120)
    V = int(max(X_train.max(), y_train.max())) + 1
    fwd, bwd, width = (gru_forward, gru_backward, 3 * H) if cell == "gru" else (rnn_forward, rnn_backward, H)
    p = {"emb": rng.normal(0, 1, (V, emb)), "Wx": rng.normal(0, 1 / np.sqrt(emb), (emb, width)),
         "Wh": rng.normal(0, 0.5 / np.sqrt(H), (H, width)), "Wy": rng.normal(0, 1 / np.sqrt(H), (H, V)),
         "by": np.zeros(V)}
    if cell == "gru":
        p["bx"] = np.r_[np.zeros(H), np.full(H, 3.0), np.zeros(H)]
        p["bh"] = np.zeros(3 * H)
        rec = ("Wx", "Wh", "bx", "bh")
    else:
        p["b"] = np.zeros(H)
        rec = ("Wx", "Wh", "b")

    def run(ids, p):
        states, cache = fwd(p["emb"][ids], np.zeros((len(ids), H)), {k: p[k] for k in rec})
        return states, cache

    opt = None
    losses = []
    for _ in range(steps):
        idx = rng.choice(len(X_train), size=64, replace=False)
        ids = X_train[idx]
        states, cache = run(ids, p)
        loss, dlogits = softmax_cross_entropy(states[:, -1] @ p["Wy"] + p["by"], y_train[idx])
        losses.append(loss)
        dH = np.zeros_like(states)
        dH[:, -1] = dlogits @ p["Wy"].T
        dX, _, g = bwd(dH, cache)
        dE = np.zeros_like(p["emb"])
        np.add.at(dE, ids, dX)
        g.update(emb=dE, Wy=states[:, -1].T @ dlogits, by=dlogits.sum(0))
        g, _ = clip_grad_norm(g, 1.0)
        p, opt = adam_step(p, g, opt, lr=0.01)
    trained = dict(p)
    return (lambda X: (run(X, trained)[0][:, -1] @ trained["Wy"] + trained["by"]).argmax(axis=1)), {"loss": losses}

def load_balancing_loss(router_probs, expert_index, n_experts):
    one_hot = np.eye(n_experts)[expert_index]
    return float(n_experts * np.mean(one_hot, axis=0) @ np.mean(router_probs, axis=0))
"""),
    Right("fused [x, h_prev] LSTM, per-sample GLU/SwiGLU loops, in-place BPTT carry, and mask-based MoE", """
def glu_forward(X, W, b, V, c):
    X = np.asarray(X, dtype=float)
    N, F = X.shape[0], W.shape[1]
    out, A, G = np.empty((N, F)), np.empty((N, F)), np.empty((N, F))
    for n in range(N):
        A[n] = X[n] @ W + b
        G[n] = sigmoid(X[n] @ V + c)
        out[n] = A[n] * G[n]
    return out, (X, W, V, A, G)

def glu_backward(dout, cache):
    X, W, V, A, G = cache
    dX = np.zeros(X.shape)
    dW, dV = np.zeros(W.shape), np.zeros(V.shape)
    db, dc = np.zeros(W.shape[1]), np.zeros(V.shape[1])
    for n in range(X.shape[0]):
        da = dout[n] * G[n]
        du = dout[n] * A[n] * G[n] * (1.0 - G[n])
        dX[n] = W @ da + V @ du
        dW += np.outer(X[n], da)
        dV += np.outer(X[n], du)
        db += da
        dc += du
    return dX, dW, db, dV, dc

def swiglu_forward(X, W, b, V, c):
    X = np.asarray(X, dtype=float)
    N, F = X.shape[0], W.shape[1]
    out, A, U = np.empty((N, F)), np.empty((N, F)), np.empty((N, F))
    for n in range(N):
        A[n] = X[n] @ W + b
        U[n] = X[n] @ V + c
        out[n] = A[n] * sigmoid(A[n]) * U[n]
    return out, (X, W, V, A, U)

def swiglu_backward(dout, cache):
    X, W, V, A, U = cache
    dX = np.zeros(X.shape)
    dW, dV = np.zeros(W.shape), np.zeros(V.shape)
    db, dc = np.zeros(W.shape[1]), np.zeros(V.shape[1])
    for n in range(X.shape[0]):
        s = sigmoid(A[n])
        swish = A[n] * s
        da = dout[n] * U[n] * (swish + s * (1.0 - swish))   # swish' = s + a s (1 - s) = swish + s (1 - swish)
        du = dout[n] * swish
        dX[n] = W @ da + V @ du
        dW += np.outer(X[n], da)
        dV += np.outer(X[n], du)
        db += da
        dc += du
    return dX, dW, db, dV, dc

def lstm_cell_forward(x, h_prev, c_prev, params):
    H = h_prev.shape[1]
    xh = np.concatenate([x, h_prev], axis=1)                  # (N, D + H)
    W = np.vstack([params["Wx"], params["Wh"]])               # (D + H, 4H): one fused product
    a = xh @ W + params["b"]
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 3 * H:])
    g = np.tanh(a[:, 2 * H:3 * H])
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return h, c, {"xh": xh, "W": W, "D": x.shape[1], "c_prev": c_prev, "c": c, "ifgo": (i, f, g, o)}

def lstm_cell_backward(dh, dc, cache):
    xh, W, D, c_prev, c = cache["xh"], cache["W"], cache["D"], cache["c_prev"], cache["c"]
    i, f, g, o = cache["ifgo"]
    tc = np.tanh(c)
    dct = dc + dh * o * (1.0 - tc ** 2)
    da = np.concatenate([dct * g * i * (1.0 - i), dct * c_prev * f * (1.0 - f),
                         dct * i * (1.0 - g ** 2), dh * tc * o * (1.0 - o)], axis=1)
    dW = xh.T @ da
    dxh = da @ W.T
    grads = {"Wx": dW[:D].copy(), "Wh": dW[D:].copy(), "b": da.sum(axis=0)}
    return dxh[:, :D].copy(), dxh[:, D:].copy(), dct * f, grads

def gru_forward(X, h0, params):
    h = h0
    states, caches = [], []
    for t in range(X.shape[1]):
        h, step = gru_cell_forward(X[:, t], h, params)
        states.append(h)
        caches.append(step)
    keys = ("Wx", "Wh", "bx", "bh")
    return np.stack(states, axis=1), {"caches": caches, "D": X.shape[2], "zeros": {k: np.zeros_like(params[k], dtype=float) for k in keys}}

def gru_backward(dH, cache):
    caches = cache["caches"]
    N, T, _ = dH.shape
    total = np.array(dH, dtype=float)                         # copy: the carry is added into the previous step's slot
    dX = np.zeros((N, T, cache["D"]))
    grads = {k: v.copy() for k, v in cache["zeros"].items()}
    dh0 = None
    for t in range(T - 1, -1, -1):
        dx, dprev, g = gru_cell_backward(total[:, t], caches[t])
        dX[:, t] = dx
        for k in grads:
            grads[k] += g[k]
        if t > 0:
            total[:, t - 1] += dprev
        else:
            dh0 = dprev
    return dX, dh0, grads

def moe_forward(X, params, top_k):
    probs = softmax(X @ params["Wr"])
    N, E = probs.shape
    mask = np.zeros((N, E), dtype=bool)
    left = probs.copy()
    for _ in range(top_k):                                    # repeated argmax: ties go to the lower index
        best = np.argmax(left, axis=1)
        mask[np.arange(N), best] = True
        left[np.arange(N), best] = -np.inf
    total = np.sum(np.where(mask, probs, 0.0), axis=1, keepdims=True)
    G = np.where(mask, probs, 0.0) / total                    # (N, E) gate matrix, zero off the chosen experts
    out = np.zeros(X.shape)
    experts = []
    for e in range(E):
        tokens = mask[:, e]
        pre = X[tokens] @ params["W1"][e] + params["b1"][e]
        y = np.maximum(pre, 0.0) @ params["W2"][e] + params["b2"][e]
        out[tokens] += G[tokens, e:e + 1] * y
        experts.append((tokens, pre, y))
    return out, {"X": X, "params": params, "probs": probs, "mask": mask, "G": G, "total": total, "experts": experts}

def moe_backward(dout, cache):
    X, p, probs, mask, G, total = (cache[k] for k in ("X", "params", "probs", "mask", "G", "total"))
    grads = {k: np.zeros_like(v, dtype=float) for k, v in p.items()}
    dX = np.zeros(X.shape)
    dG = np.zeros(G.shape)
    for e, (tokens, pre, y) in enumerate(cache["experts"]):
        dG[tokens, e] = np.einsum("nd,nd->n", dout[tokens], y)
        dy = G[tokens, e:e + 1] * dout[tokens]
        grads["W2"][e] = np.maximum(pre, 0.0).T @ dy
        grads["b2"][e] = dy.sum(axis=0)
        dpre = (dy @ p["W2"][e].T) * (pre > 0)
        grads["W1"][e] = X[tokens].T @ dpre
        grads["b1"][e] = dpre.sum(axis=0)
        dX[tokens] += dpre @ p["W1"][e].T
    # G = p / total on the chosen experts: dp_e = (dG_e - sum_j G_j dG_j) / total there, 0 elsewhere
    dprobs = np.where(mask, (dG - np.sum(G * dG, axis=1, keepdims=True)) / total, 0.0)
    dlogits = probs * (dprobs - np.sum(probs * dprobs, axis=1, keepdims=True))
    grads["Wr"] = X.T @ dlogits
    return dX + dlogits @ p["Wr"].T, grads

def load_balancing_loss(router_probs, expert_index, n_experts):
    counts = np.zeros(n_experts)
    np.add.at(counts, np.asarray(expert_index), 1.0)
    f = counts / counts.sum()
    P = np.asarray(router_probs, dtype=float).sum(axis=0) / len(router_probs)
    return float(n_experts * f.dot(P))
"""),
]
