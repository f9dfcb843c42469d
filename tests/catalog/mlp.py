"""Realistic implementations of 02_mlp's functions: mistakes students make, and other valid ways."""
from tests.catalog import Right, Wrong

ASSIGNMENT = "02_mlp"

WRONG = [
    # -- initialization ------------------------------------------------------------------------------------
    Wrong("init_dense", "Xavier without the 2", """
def init_dense(fan_in, fan_out, rng, scheme="he"):
    if scheme == "he":
        std = np.sqrt(2.0 / fan_in)
    elif scheme == "xavier":
        std = np.sqrt(1.0 / (fan_in + fan_out))
    else:
        raise ValueError(scheme)
    return rng.normal(0.0, std, size=(fan_in, fan_out)), np.zeros(fan_out)
""", expect=r"Xavier without the 2"),
    Wrong("init_dense", "Xavier uniform bound used as the normal std", """
def init_dense(fan_in, fan_out, rng, scheme="he"):
    if scheme == "he":
        std = np.sqrt(2.0 / fan_in)
    elif scheme == "xavier":
        std = np.sqrt(6.0 / (fan_in + fan_out))
    else:
        raise ValueError(scheme)
    return rng.normal(0.0, std, size=(fan_in, fan_out)), np.zeros(fan_out)
""", expect=r"uniform\* bound"),
    Wrong("init_dense", "He using fan_out", """
def init_dense(fan_in, fan_out, rng, scheme="he"):
    if scheme == "he":
        std = np.sqrt(2.0 / fan_out)
    elif scheme == "xavier":
        std = np.sqrt(2.0 / (fan_in + fan_out))
    else:
        raise ValueError(scheme)
    return rng.normal(0.0, std, size=(fan_in, fan_out)), np.zeros(fan_out)
""", expect=r"He computed with fan_out"),
    Wrong("init_dense", "variance used as the std", """
def init_dense(fan_in, fan_out, rng, scheme="he"):
    if scheme == "he":
        var = 2.0 / fan_in
    elif scheme == "xavier":
        var = 2.0 / (fan_in + fan_out)
    else:
        raise ValueError(scheme)
    return rng.normal(0.0, var, size=(fan_in, fan_out)), np.zeros(fan_out)
""", expect=r"variance .* used as the std"),
    Wrong("init_dense", "global np.random state instead of rng", """
def init_dense(fan_in, fan_out, rng, scheme="he"):
    if scheme == "he":
        std = np.sqrt(2.0 / fan_in)
    elif scheme == "xavier":
        std = np.sqrt(2.0 / (fan_in + fan_out))
    else:
        raise ValueError(scheme)
    return np.random.randn(fan_in, fan_out) * std, np.zeros(fan_out)
""", expect=r"global state|seeded alike"),
    Wrong("init_dense", "a fixed seed inside", """
def init_dense(fan_in, fan_out, rng, scheme="he"):
    if scheme == "he":
        std = np.sqrt(2.0 / fan_in)
    elif scheme == "xavier":
        std = np.sqrt(2.0 / (fan_in + fan_out))
    else:
        raise ValueError(scheme)
    return np.random.default_rng(0).normal(0.0, std, size=(fan_in, fan_out)), np.zeros(fan_out)
""", expect=r"ignores rng"),
    Wrong("init_dense", "unknown scheme falls back to He", """
def init_dense(fan_in, fan_out, rng, scheme="he"):
    if scheme == "xavier":
        std = np.sqrt(2.0 / (fan_in + fan_out))
    else:
        std = np.sqrt(2.0 / fan_in)
    return rng.normal(0.0, std, size=(fan_in, fan_out)), np.zeros(fan_out)
""", expect=r"must raise ValueError"),
    Wrong("init_dense", "uniform draws with the right std", """
def init_dense(fan_in, fan_out, rng, scheme="he"):
    if scheme == "he":
        std = np.sqrt(2.0 / fan_in)
    elif scheme == "xavier":
        std = np.sqrt(2.0 / (fan_in + fan_out))
    else:
        raise ValueError(scheme)
    limit = np.sqrt(3.0) * std
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)), np.zeros(fan_out)
""", expect=r"do not look normal"),
    Wrong("init_dense", "zero weights", """
def init_dense(fan_in, fan_out, rng, scheme="he"):
    if scheme not in ("he", "xavier"):
        raise ValueError(scheme)
    return np.zeros((fan_in, fan_out)), np.zeros(fan_out)
""", expect=r"all weights equal"),
    Wrong("init_dense", "random biases", """
def init_dense(fan_in, fan_out, rng, scheme="he"):
    if scheme == "he":
        std = np.sqrt(2.0 / fan_in)
    elif scheme == "xavier":
        std = np.sqrt(2.0 / (fan_in + fan_out))
    else:
        raise ValueError(scheme)
    return rng.normal(0.0, std, size=(fan_in, fan_out)), rng.normal(0.0, std, size=fan_out)
""", expect=r"biases start at exactly zero"),
    Wrong("init_mlp", "scheme not passed on", """
def init_mlp(layer_sizes, rng, scheme="he"):
    params = {}
    for i in range(1, len(layer_sizes)):
        params[f"W{i}"], params[f"b{i}"] = init_dense(layer_sizes[i - 1], layer_sizes[i], rng)
    return params
""", expect=r"pass scheme on"),
    Wrong("init_mlp", "one layer too many", """
def init_mlp(layer_sizes, rng, scheme="he"):
    params = {}
    sizes = list(layer_sizes) + [layer_sizes[-1]]
    for i in range(1, len(sizes)):
        params[f"W{i}"], params[f"b{i}"] = init_dense(sizes[i - 1], sizes[i], rng, scheme)
    return params
""", expect=r"make \d+ layers"),
    Wrong("init_mlp", "layers numbered from 0", """
def init_mlp(layer_sizes, rng, scheme="he"):
    params = {}
    for i in range(len(layer_sizes) - 1):
        params[f"W{i}"], params[f"b{i}"] = init_dense(layer_sizes[i], layer_sizes[i + 1], rng, scheme)
    return params
""", expect=r"number the layers from 1"),
    Wrong("init_mlp", "a fresh generator per layer", """
def init_mlp(layer_sizes, rng, scheme="he"):
    params = {}
    seed = int(rng.integers(1 << 30))
    for i in range(1, len(layer_sizes)):
        params[f"W{i}"], params[f"b{i}"] = init_dense(layer_sizes[i - 1], layer_sizes[i],
                                                      np.random.default_rng(seed), scheme)
    return params
""", expect=r"identical weights"),
    # -- layers --------------------------------------------------------------------------------------------
    Wrong("dense_forward", "bias broadcast along the rows", """
def dense_forward(X, W, b):
    return X @ W + b.reshape(-1, 1), (X, W)
""", expect=r"wrong axis"),
    Wrong("dense_forward", "bias added to W before the product", """
def dense_forward(X, W, b):
    return X @ (W + b), (X, W)
""", expect=r"X @ \(W \+ b\)"),
    Wrong("dense_forward", "no bias", """
def dense_forward(X, W, b):
    return X @ W, (X, W)
""", expect=r"bias is missing"),
    Wrong("dense_forward", "bias added into X in place", """
def dense_forward(X, W, b):
    out = X @ W
    out += b
    X *= 1.0 + 1e-3
    return out, (X, W)
""", expect=r"changed its input `X` in place"),
    Wrong("relu_forward", "ReLU in place", """
def relu_forward(X):
    X[X < 0] = 0.0
    return X, X
""", expect=r"changed its input `X` in place"),
    Wrong("relu_forward", "returns the mask", """
def relu_forward(X):
    mask = X > 0
    return mask.astype(float), X
""", expect=r"on/off mask"),
    Wrong("mlp_forward", "ReLU after the last layer", """
def mlp_forward(X, params):
    h, caches = X, []
    for i in range(1, len(params) // 2 + 1):
        h, c1 = dense_forward(h, params[f"W{i}"], params[f"b{i}"])
        h, c2 = relu_forward(h)
        caches.append((c1, c2))
    return h, caches
""", expect=r"ReLU after the last layer"),
    Wrong("mlp_forward", "two layers hard-coded", """
def mlp_forward(X, params):
    h, c1 = dense_forward(X, params["W1"], params["b1"])
    h, c2 = relu_forward(h)
    out, c3 = dense_forward(h, params["W2"], params["b2"])
    return out, (c1, c2, c3)
""", expect=r"len\(params\) // 2"),
    Wrong("mlp_forward", "layers in string order", """
def mlp_forward(X, params):
    keys = sorted(k for k in params if k.startswith("W"))
    h, caches = X, []
    for n, key in enumerate(keys):
        h, c1 = dense_forward(h, params[key], params["b" + key[1:]])
        c2 = None
        if n < len(keys) - 1:
            h, c2 = relu_forward(h)
        caches.append((c1, c2))
    return h, caches
""", expect=r"string order"),
    Wrong("mlp_forward", "no ReLU between layers", """
def mlp_forward(X, params):
    h, caches = X, []
    for i in range(1, len(params) // 2 + 1):
        h, c = dense_forward(h, params[f"W{i}"], params[f"b{i}"])
        caches.append(c)
    return h, caches
""", expect=r"no ReLU between the layers"),
    # -- softmax and losses --------------------------------------------------------------------------------
    Wrong("softmax", "no max shift", """
def softmax(logits):
    e = np.exp(logits)
    return e / np.sum(e, axis=-1, keepdims=True)
""", expect=r"overflow.*subtract each row's max"),
    Wrong("softmax", "over axis 0", """
def softmax(logits):
    e = np.exp(logits - np.max(logits, axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True)
""", expect=r"over axis 0"),
    Wrong("softmax", "over axis 1", """
def softmax(logits):
    e = np.exp(logits - np.max(logits, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)
""", expect=r"last axis"),
    Wrong("softmax", "the global max", """
def softmax(logits):
    e = np.exp(logits - np.max(logits))
    return e / np.sum(e, axis=-1, keepdims=True)
""", expect=r"each row's own max"),
    Wrong("softmax", "max without keepdims", """
def softmax(logits):
    e = np.exp(logits - np.max(logits, axis=-1))
    return e / np.sum(e, axis=-1, keepdims=True)
""", expect=r"keepdims"),
    Wrong("softmax", "shift in place", """
def softmax(logits):
    logits -= np.max(logits, axis=-1, keepdims=True)
    e = np.exp(logits)
    return e / np.sum(e, axis=-1, keepdims=True)
""", expect=r"changed its input `logits` in place"),
    Wrong("log_softmax", "log of the softmax", """
def log_softmax(logits):
    return np.log(softmax(logits))
""", expect=r"np\.log\(softmax\(z\)\).*log-sum-exp"),
    Wrong("log_softmax", "log of the softmax with warnings silenced", """
def log_softmax(logits):
    with np.errstate(all="ignore"):
        return np.log(softmax(logits))
""", expect=r"np\.log\(softmax\(z\)\)"),
    Wrong("log_softmax", "log-sum-exp without the shift", """
def log_softmax(logits):
    return logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))
""", expect=r"overflow|log-sum-exp"),
    Wrong("log_softmax", "log_softmax over axis 0", """
def log_softmax(logits):
    m = np.max(logits, axis=0, keepdims=True)
    return logits - m - np.log(np.sum(np.exp(logits - m), axis=0, keepdims=True))
""", expect=r"axis 0"),
    Wrong("cross_entropy", "summed instead of averaged", """
def cross_entropy(logits, y):
    n = logits.shape[0]
    return float(-np.sum(log_softmax(logits)[np.arange(n), y]))
""", expect=r"the sum over the batch|N = \d+ times too large"),
    Wrong("cross_entropy", "indices swapped", """
def cross_entropy(logits, y):
    n = logits.shape[0]
    return float(-np.mean(log_softmax(logits)[y, np.arange(n)]))
""", expect=r"indices are swapped"),
    Wrong("cross_entropy", "columns indexed with y only", """
def cross_entropy(logits, y):
    return float(-np.mean(log_softmax(logits)[:, y]))
""", expect=r"\(N, N\) table"),
    Wrong("cross_entropy", "y used as one-hot", """
def cross_entropy(logits, y):
    return float(-np.mean(np.sum(y * log_softmax(logits), axis=1)))
""", expect=r"one-hot"),
    Wrong("cross_entropy", "log of the softmax probabilities", """
def cross_entropy(logits, y):
    p = softmax(logits)
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))
""", expect=r"log\(0\)|log_softmax"),
    Wrong("mse_loss", "sum of squared errors", """
def mse_loss(pred, target):
    return float(np.sum((pred - target) ** 2))
""", expect=r"the sum of the squared errors"),
    Wrong("mse_loss", "averaged over one axis only", """
def mse_loss(pred, target):
    return float(np.sum(np.mean((pred - target) ** 2, axis=0)))
""", expect=r"one axis only"),
    Wrong("mse_loss", "mean over N of the row sums", """
def mse_loss(pred, target):
    sq = (pred - target) ** 2
    return float(np.mean(sq.sum(axis=-1))) if sq.ndim > 1 else float(np.mean(sq))
""", expect=r"one axis only"),
    Wrong("mse_loss", "with a 1/2", """
def mse_loss(pred, target):
    return float(0.5 * np.mean((pred - target) ** 2))
""", expect=r"no 1/2"),
    Wrong("mse_loss", "array per output", """
def mse_loss(pred, target):
    return np.mean((pred - target) ** 2, axis=0)
""", expect=r"single number"),
    # -- decisions -----------------------------------------------------------------------------------------
    Wrong("predict", "returns probabilities", """
def predict(X, params):
    return softmax(mlp_forward(X, params)[0])
""", expect=r"logits or the probabilities"),
    Wrong("predict", "returns float labels", """
def predict(X, params):
    return np.argmax(mlp_forward(X, params)[0], axis=1).astype(float)
""", expect=r"integer class labels"),
    Wrong("predict", "argmax over the batch", """
def predict(X, params):
    return np.argmax(mlp_forward(X, params)[0], axis=0)
""", expect=r"argmax over axis 0"),
    Wrong("predict", "returns a list", """
def predict(X, params):
    return list(np.argmax(mlp_forward(X, params)[0], axis=1))
""", expect=r"returned a list"),
    Wrong("predict", "argmin", """
def predict(X, params):
    return np.argmin(mlp_forward(X, params)[0], axis=1)
""", expect=r"argmin"),
    Wrong("accuracy", "a count", """
def accuracy(pred, y):
    return float(np.sum(pred == y))
""", expect=r"count of correct predictions"),
    Wrong("accuracy", "a percentage", """
def accuracy(pred, y):
    return 100.0 * float(np.mean(pred == y))
""", expect=r"percentage"),
    Wrong("accuracy", "the error rate", """
def accuracy(pred, y):
    return float(np.mean(pred != y))
""", expect=r"error rate"),
    # -- issue 11: feedback that names the mistake every time
    Wrong("cross_entropy", "probabilities clipped at 1e-7 before the log", """
def cross_entropy(logits, y):
    p = softmax(logits)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0))))
""", expect=r"clipped at eps = 1e-07 before the log"),
    Wrong("init_dense", "xavier branch left unwritten", """
def init_dense(fan_in, fan_out, rng, scheme="he"):
    if scheme == "he":
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out)), np.zeros(fan_out)
    if scheme == "xavier":
        raise NotImplementedError("TODO: xavier")
    raise ValueError(f"unknown scheme {scheme!r}")
""", expect=r"[1-9] of \d+ hidden checks passed.*when called with scheme = 'xavier': that option is not written yet"),
]

CORRECT = [
    Right("the reference itself", ""),
    Right("loops everywhere", """
def init_dense(fan_in, fan_out, rng, scheme="he"):
    stds = {"he": (2.0 / fan_in) ** 0.5, "xavier": (2.0 / (fan_in + fan_out)) ** 0.5}
    if scheme not in stds:
        raise ValueError("scheme must be 'he' or 'xavier'")
    W = np.empty((fan_in, fan_out))
    for i in range(fan_in):
        W[i] = rng.standard_normal(fan_out) * stds[scheme]
    return W, np.zeros(fan_out)

def dense_forward(X, W, b):
    N, D = X.shape
    H = W.shape[1]
    out = np.zeros((N, H))
    for n in range(N):
        for j in range(H):
            total = b[j]
            for d in range(D):
                total += X[n, d] * W[d, j]
            out[n, j] = total
    return out, {"X": X, "W": W}

def relu_forward(X):
    out = np.array(X, dtype=float, copy=True)
    flat = out.reshape(-1)
    for k in range(flat.size):
        if flat[k] < 0:
            flat[k] = 0.0
    return out, out > 0

def softmax(logits):
    z = np.asarray(logits, dtype=float)
    rows = z.reshape(-1, z.shape[-1])
    out = np.empty_like(rows)
    for r in range(rows.shape[0]):
        e = np.exp(rows[r] - rows[r].max())
        out[r] = e / e.sum()
    return out.reshape(z.shape)

def cross_entropy(logits, y):
    total = 0.0
    for n in range(len(y)):
        row = logits[n]
        m = row.max()
        total += -(row[y[n]] - m - np.log(np.sum(np.exp(row - m))))
    return total / len(y)

def accuracy(pred, y):
    right = 0
    for p, t in zip(pred, y):
        right += int(p == t)
    return right / len(y)
"""),
    Right("einsum, logaddexp.reduce and take_along_axis", """
def dense_forward(X, W, b):
    return np.einsum("nd,dh->nh", X, W) + b[None, :], (X, W, b)

def log_softmax(logits):
    return logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)

def softmax(logits):
    return np.exp(log_softmax(logits))

def cross_entropy(logits, y):
    picked = np.take_along_axis(log_softmax(logits), np.asarray(y)[:, None], axis=1)
    return -float(picked.mean())

def mse_loss(pred, target):
    diff = np.ravel(pred) - np.ravel(target)
    return float(diff @ diff / diff.size)

def predict(X, params):
    return softmax(mlp_forward(X, params)[0]).argmax(axis=-1).astype(np.int32)

def relu_forward(X):
    return np.where(X > 0, X, 0.0), X > 0
"""),
    Right("dict comprehension init, recursion, Box-Muller draws from rng", """
def init_dense(fan_in, fan_out, rng, scheme="he"):
    if scheme == "he":
        scale = np.sqrt(2 / fan_in)
    elif scheme == "xavier":
        scale = np.sqrt(2 / (fan_in + fan_out))
    else:
        raise ValueError(f"bad scheme {scheme}")
    u1 = 1.0 - rng.random((fan_in, fan_out))
    u2 = rng.random((fan_in, fan_out))
    z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * np.pi * u2)
    return scale * z, np.zeros((fan_out,))

def init_mlp(layer_sizes, rng, scheme="he"):
    layers = [init_dense(a, c, rng, scheme) for a, c in zip(layer_sizes, layer_sizes[1:])]
    return {f"{name}{i}": value for i, pair in enumerate(layers, start=1) for name, value in zip("Wb", pair)}

def mlp_forward(X, params, _i=1):
    last = len(params) // 2
    z, cache = dense_forward(X, params[f"W{_i}"], params[f"b{_i}"])
    if _i == last:
        return z, [cache]
    h, relu_cache = relu_forward(z)
    logits, rest = mlp_forward(h, params, _i + 1)
    return logits, [(cache, relu_cache)] + rest

def mse_loss(pred, target):
    return float(np.square(np.subtract(pred, target)).sum() / np.size(pred))

def accuracy(pred, y):
    return np.count_nonzero(np.equal(pred, y)) / np.size(y)

def log_softmax(logits):
    m = logits.max(axis=-1, keepdims=True)
    return (logits - m) - np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))
"""),
]
