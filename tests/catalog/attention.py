"""Realistic implementations of 04_attention's functions: mistakes students make, and other valid ways."""
from tests.catalog import Right, Wrong

ASSIGNMENT = "04_attention"

WRONG = [
    # -- scaled dot-product attention
    Wrong("scaled_dot_product_attention", "no 1/sqrt(d) scaling", """
def scaled_dot_product_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    m = np.max(scores, axis=-1, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(m), m, 0.0))
    s = e.sum(axis=-1, keepdims=True)
    w = e / np.where(s > 0, s, 1.0)
    return w @ V, w
""", expect=r"no 1/sqrt\(d\) scaling"),
    Wrong("scaled_dot_product_attention", "softmax over the query axis", """
def scaled_dot_product_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -1e9)
    e = np.exp(scores - scores.max(axis=-2, keepdims=True))
    w = e / e.sum(axis=-2, keepdims=True)
    return w @ V, w
""", expect=r"softmax over the query axis"),
    Wrong("scaled_dot_product_attention", "masks with a finite -1e9", """
def scaled_dot_product_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -1e9)
    w = softmax(scores)
    return w @ V, w
""", expect=r"finite number \(-1e9\) leaks"),
    Wrong("scaled_dot_product_attention", "adds -1e9 to the masked scores", """
def scaled_dot_product_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
    if mask is not None:
        scores = scores + (1.0 - mask) * -1e9
    w = softmax(scores)
    return w @ V, w
""", expect=r"leaks|exactly 0"),
    Wrong("scaled_dot_product_attention", "-inf without a guard gives NaN on a fully masked row", """
def scaled_dot_product_attention(Q, K, V, mask=None):
    scores = Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    w = softmax(scores)
    return w @ V, w
""", expect=r"warning|NaN"),
    Wrong("scaled_dot_product_attention", "K.T reverses every axis", """
def scaled_dot_product_attention(Q, K, V, mask=None):
    scores = Q @ K.T / np.sqrt(Q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    m = np.max(scores, axis=-1, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(m), m, 0.0))
    s = e.sum(axis=-1, keepdims=True)
    w = e / np.where(s > 0, s, 1.0)
    return w @ V, w
""", expect=r"raised|shape"),
    Wrong("scaled_dot_product_attention", "mask applied after the softmax without renormalizing", """
def scaled_dot_product_attention(Q, K, V, mask=None):
    w = softmax(Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1]))
    if mask is not None:
        w = w * mask
    return w @ V, w
""", expect=r"not what the reference computes"),
    # -- causal mask
    Wrong("causal_mask", "np.triu lets a position see the future", """
def causal_mask(T):
    return np.triu(np.ones((T, T), dtype=bool))
""", expect=r"sees the future|see the future"),
    Wrong("causal_mask", "one step of the future visible", """
def causal_mask(T):
    return np.tril(np.ones((T, T), dtype=bool), k=1)
""", expect=r"future"),
    Wrong("causal_mask", "float mask", """
def causal_mask(T):
    return np.tril(np.ones((T, T)))
""", expect=r"must return a bool array"),
    # -- attention backward
    Wrong("attention_backward", "softmax Jacobian without the subtracted term", """
def attention_backward(dout, cache):
    Q, K, V, w = cache
    scale = 1 / np.sqrt(Q.shape[-1])
    dV = np.swapaxes(w, -1, -2) @ dout
    dS = w * (dout @ np.swapaxes(V, -1, -2))
    return dS @ K * scale, np.swapaxes(dS, -1, -2) @ Q * scale, dV
""", expect=r"subtracted term is missing"),
    Wrong("attention_backward", "forgets the 1/sqrt(d) in the backward", """
def attention_backward(dout, cache):
    Q, K, V, w = cache
    dV = np.swapaxes(w, -1, -2) @ dout
    dW = dout @ np.swapaxes(V, -1, -2)
    dS = w * (dW - np.sum(dW * w, axis=-1, keepdims=True))
    return dS @ K, np.swapaxes(dS, -1, -2) @ Q, dV
""", expect=r"1/sqrt\(d\) is missing"),
    # -- heads
    Wrong("split_heads", "reshape(N, H, T, D/H) in the wrong order", """
def split_heads(X, n_heads):
    N, T, D = X.shape
    return X.reshape(N, n_heads, T, D // n_heads)
""", expect=r"reshape\(N, H, T, D/H\) in the wrong order"),
    Wrong("split_heads", "strided columns per head", """
def split_heads(X, n_heads):
    N, T, D = X.shape
    return X.reshape(N, T, D // n_heads, n_heads).transpose(0, 3, 1, 2)
""", expect=r"every H-th column"),
    Wrong("merge_heads", "reshape without swapping back", """
def merge_heads(X):
    N, H, T, Dh = X.shape
    return X.reshape(N, T, H * Dh)
""", expect=r"without swapping axes 1 and 2 back"),
    Wrong("mha_forward", "heads split in the wrong order inside mha", """
def mha_forward(X, params, n_heads, mask=None):
    N, T, D = X.shape
    split = lambda Y: Y.reshape(N, n_heads, T, D // n_heads)
    Q, K, V = (split(X @ params["W" + c] + params["b" + c]) for c in "qkv")
    heads, cache = attention_forward(Q, K, V, mask)
    A = heads.reshape(N, T, D)
    return A @ params["Wo"] + params["bo"], (X, params, n_heads, A, cache)
""", expect=r"heads split by reshape\(N, H, T, D/H\)"),
    Wrong("mha_forward", "scales by sqrt(D) instead of the head width", """
def mha_forward(X, params, n_heads, mask=None):
    D = X.shape[-1]
    Q = split_heads(X @ params["Wq"] + params["bq"], n_heads) * np.sqrt(D // n_heads) / np.sqrt(D)
    K = split_heads(X @ params["Wk"] + params["bk"], n_heads)
    V = split_heads(X @ params["Wv"] + params["bv"], n_heads)
    heads, cache = attention_forward(Q, K, V, mask)
    A = merge_heads(heads)
    return A @ params["Wo"] + params["bo"], (X, params, n_heads, A, cache)
""", expect=r"1/sqrt\(D\) instead of each head's width"),
    Wrong("mha_forward", "mask not passed to the attention", """
def mha_forward(X, params, n_heads, mask=None):
    Q = split_heads(X @ params["Wq"] + params["bq"], n_heads)
    K = split_heads(X @ params["Wk"] + params["bk"], n_heads)
    V = split_heads(X @ params["Wv"] + params["bv"], n_heads)
    heads, cache = attention_forward(Q, K, V)
    A = merge_heads(heads)
    return A @ params["Wo"] + params["bo"], (X, params, n_heads, A, cache)
""", expect=r"mask is ignored|see the future"),
    Wrong("mha_backward", "dX from the query path only", """
_reference_mha_backward = mha_backward
def mha_backward(dout, cache):
    X, params, n_heads, A, attention_cache = cache
    dX, grads = _reference_mha_backward(dout, cache)
    dQ, dK, dV = attention_backward(split_heads(dout @ params["Wo"].T, n_heads), attention_cache)
    return merge_heads(dQ) @ params["Wq"].T, grads
""", expect=r"dX from the query path only"),
    # -- layer norm
    Wrong("layernorm_forward", "normalizes over the batch axis", """
def layernorm_forward(X, gamma, beta, eps=1e-5):
    mu = X.mean(axis=0, keepdims=True)
    var = X.var(axis=0, keepdims=True)
    Xh = (X - mu) / np.sqrt(var + eps)
    return gamma * Xh + beta, (Xh, 1 / np.sqrt(var + eps), gamma)
""", expect=r"normalized over axis 0"),
    Wrong("layernorm_forward", "unbiased variance", """
def layernorm_forward(X, gamma, beta, eps=1e-5):
    mu = X.mean(axis=-1, keepdims=True)
    var = X.var(axis=-1, keepdims=True, ddof=1)
    Xh = (X - mu) / np.sqrt(var + eps)
    return gamma * Xh + beta, (Xh, 1 / np.sqrt(var + eps), gamma)
""", expect=r"unbiased variance"),
    Wrong("layernorm_forward", "eps outside the square root", """
def layernorm_forward(X, gamma, beta, eps=1e-5):
    mu = X.mean(axis=-1, keepdims=True)
    std = X.std(axis=-1, keepdims=True)
    Xh = (X - mu) / (std + eps)
    return gamma * Xh + beta, (Xh, 1 / (std + eps), gamma)
""", expect=r"eps added outside the square root"),
    Wrong("layernorm_backward", "mean and variance treated as constants", """
def layernorm_backward(dout, cache):
    Xh, inv_std, gamma = cache
    D = Xh.shape[-1]
    return dout * gamma * inv_std, (dout * Xh).reshape(-1, D).sum(0), dout.reshape(-1, D).sum(0)
""", expect=r"treated as constants"),
    Wrong("layernorm_backward", "dgamma summed over axis 0 only", """
_reference_layernorm_backward = layernorm_backward
def layernorm_backward(dout, cache):
    dX, _, _ = _reference_layernorm_backward(dout, cache)
    Xh = cache[0]
    return dX, (dout * Xh).sum(axis=0), dout.sum(axis=0)
""", expect=r"dgamma .*shape"),
    # -- feed-forward
    Wrong("ffn_forward", "ReLU instead of GELU", """
def ffn_forward(X, params):
    pre = X @ params["W1"] + params["b1"]
    act = np.maximum(pre, 0)
    return act @ params["W2"] + params["b2"], (X, params, pre, act)
""", expect=r"ReLU instead of GELU"),
    Wrong("ffn_backward", "forgets the GELU derivative", """
def ffn_backward(dout, cache):
    X, params, pre, act = cache
    D, F = params["W1"].shape
    dact = dout @ params["W2"].T
    grads = {"W2": act.reshape(-1, F).T @ dout.reshape(-1, D), "b2": dout.reshape(-1, D).sum(0),
             "W1": X.reshape(-1, D).T @ dact.reshape(-1, F), "b1": dact.reshape(-1, F).sum(0)}
    return dact @ params["W1"].T, grads
""", expect=r"GELU derivative is missing"),
    # -- the block
    Wrong("transformer_block_forward", "post-LN", """
def transformer_block_forward(X, params, n_heads, mask=None):
    a, c1 = mha_forward(X, {k: params[k] for k in MHA_KEYS}, n_heads, mask)
    H, c2 = layernorm_forward(X + a, params["ln1_gamma"], params["ln1_beta"])
    f, c3 = ffn_forward(H, {k: params[k] for k in FFN_KEYS})
    out, c4 = layernorm_forward(H + f, params["ln2_gamma"], params["ln2_beta"])
    return out, (c1, c2, c3, c4)
""", expect=r"post-LN"),
    Wrong("transformer_block_forward", "no residual around attention", """
def transformer_block_forward(X, params, n_heads, mask=None):
    n1, c1 = layernorm_forward(X, params["ln1_gamma"], params["ln1_beta"])
    H, c2 = mha_forward(n1, {k: params[k] for k in MHA_KEYS}, n_heads, mask)
    n2, c3 = layernorm_forward(H, params["ln2_gamma"], params["ln2_beta"])
    f, c4 = ffn_forward(n2, {k: params[k] for k in FFN_KEYS})
    return H + f, (c1, c2, c3, c4)
""", expect=r"residual around attention is missing"),
    Wrong("transformer_block_forward", "no residual around the feed-forward network", """
def transformer_block_forward(X, params, n_heads, mask=None):
    n1, c1 = layernorm_forward(X, params["ln1_gamma"], params["ln1_beta"])
    a, c2 = mha_forward(n1, {k: params[k] for k in MHA_KEYS}, n_heads, mask)
    n2, c3 = layernorm_forward(X + a, params["ln2_gamma"], params["ln2_beta"])
    f, c4 = ffn_forward(n2, {k: params[k] for k in FFN_KEYS})
    return f, (c1, c2, c3, c4)
""", expect=r"residual around the feed-forward network is missing"),
    Wrong("transformer_block_forward", "residual adds the normalized input", """
def transformer_block_forward(X, params, n_heads, mask=None):
    n1, c1 = layernorm_forward(X, params["ln1_gamma"], params["ln1_beta"])
    a, c2 = mha_forward(n1, {k: params[k] for k in MHA_KEYS}, n_heads, mask)
    n2, c3 = layernorm_forward(n1 + a, params["ln2_gamma"], params["ln2_beta"])
    f, c4 = ffn_forward(n2, {k: params[k] for k in FFN_KEYS})
    return n2 + f, (c1, c2, c3, c4)
""", expect=r"residual adds the normalized input"),
    Wrong("transformer_block_forward", "mask dropped inside the block", """
def transformer_block_forward(X, params, n_heads, mask=None):
    n1, c1 = layernorm_forward(X, params["ln1_gamma"], params["ln1_beta"])
    a, c2 = mha_forward(n1, {k: params[k] for k in MHA_KEYS}, n_heads)
    H = X + a
    n2, c3 = layernorm_forward(H, params["ln2_gamma"], params["ln2_beta"])
    f, c4 = ffn_forward(n2, {k: params[k] for k in FFN_KEYS})
    return H + f, (c1, c2, c3, c4)
""", expect=r"see the future|not what the reference computes"),
    Wrong("transformer_block_backward", "drops the bypass in the backward", """
def transformer_block_backward(dout, cache):
    ln1_cache, mha_cache, ln2_cache, ffn_cache = cache
    d2, grads = ffn_backward(dout, ffn_cache)
    dH_branch, grads["ln2_gamma"], grads["ln2_beta"] = layernorm_backward(d2, ln2_cache)
    dH = dout + dH_branch
    d1, g = mha_backward(dH, mha_cache)
    grads.update(g)
    dX, grads["ln1_gamma"], grads["ln1_beta"] = layernorm_backward(d1, ln1_cache)
    return dX, grads
""", expect=r"bypass is missing from dX"),
    # -- positions and embeddings
    Wrong("positional_encoding", "sin and cos in two halves", """
def positional_encoding(T, D):
    t = np.arange(T)[:, None]
    angle = t / 10000 ** (np.arange(0, D, 2)[None, :] / D)
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)
""", expect=r"two halves"),
    Wrong("positional_encoding", "exponent i/D", """
def positional_encoding(T, D):
    angle = np.arange(T)[:, None] / 10000 ** (np.arange(D // 2)[None, :] / D)
    pe = np.zeros((T, D))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angle), np.cos(angle)
    return pe
""", expect=r"exponent is i/D"),
    Wrong("embedding_backward", "dE[ids] += dout overwrites repeated ids", """
def embedding_backward(dout, cache):
    ids, shape = cache
    dE = np.zeros(shape)
    dE[ids] += dout
    return dE
""", expect=r"np\.add\.at"),
    Wrong("embedding_forward", "indexes the feature axis", """
def embedding_forward(ids, E):
    return E[:, ids].T, (ids, E.shape)
""", expect=r"shape|raised"),
    # -- training
    Wrong("train_sequence_model", "no positional encoding", """
def train_sequence_model(X_train, Y_train, X_val, Y_val, rng, **config):
    D, H, F, vocab = 32, 2, 64, int(max(X_train.max(), Y_train.max())) + 1
    p = {"E": rng.normal(size=(vocab, D)), "ln1_gamma": np.ones(D), "ln1_beta": np.zeros(D),
         "ln2_gamma": np.ones(D), "ln2_beta": np.zeros(D), "W1": rng.normal(size=(D, F)) / np.sqrt(D),
         "b1": np.zeros(F), "W2": rng.normal(size=(F, D)) / np.sqrt(F), "b2": np.zeros(D),
         "W_out": rng.normal(size=(D, vocab)) / np.sqrt(D), "b_out": np.zeros(vocab)}
    for c in "qkvo":
        p["W" + c], p["b" + c] = rng.normal(size=(D, D)) / np.sqrt(D), np.zeros(D)
    block = lambda q: {k: q[k] for k in q if k not in ("E", "W_out", "b_out")}
    def forward(ids, q):
        x, ce = embedding_forward(ids, q["E"])          # no positions added: the block cannot tell them apart
        h, cb = transformer_block_forward(x, block(q), H)
        return h @ q["W_out"] + q["b_out"], (ce, cb, h)
    history, state = {"loss": []}, None
    for step in range(200):
        idx = rng.integers(0, len(X_train), size=32)
        logits, (ce, cb, h) = forward(X_train[idx], p)
        loss, dl = softmax_cross_entropy(logits, Y_train[idx])
        history["loss"].append(loss)
        g = {"W_out": h.reshape(-1, D).T @ dl.reshape(-1, vocab), "b_out": dl.reshape(-1, vocab).sum(0)}
        dx, gb = transformer_block_backward(dl @ p["W_out"].T, cb)
        g.update(gb)
        g["E"] = embedding_backward(dx, ce)
        p, state = adam_step(p, g, state, lr=5e-3)
    return (lambda X: np.argmax(forward(X, p)[0], axis=-1)), history
""", expect=r"validation token accuracy .* at least 95%"),
    # -- issue 11: feedback that names the mistake every time
    Wrong("mha_backward", "dWo from the first sequence only and dX without the key path", """
_reference_mha_backward = mha_backward
def mha_backward(dout, cache):
    X, params, n_heads, A, attention_cache = cache
    _, grads = _reference_mha_backward(dout, cache)
    dQ, dK, dV = (merge_heads(g) for g in attention_backward(split_heads(dout @ params["Wo"].T, n_heads),
                                                             attention_cache))
    grads = dict(grads, Wo=A[0].T @ dout[0])
    return dQ @ params["Wq"].T + dV @ params["Wv"].T, grads
""", expect=r"2 of the 8 gradients from mha_backward are wrong: dX, dWo.*dX misses the key path.*dWo from"),
    Wrong("positional_encoding", "*args signature with sin and cos swapped", """
def positional_encoding(*args):
    T, D = args
    angle = np.arange(T)[:, None] / 10000 ** (np.arange(0, D, 2)[None, :] / D)
    pe = np.zeros((T, D))
    pe[:, 0::2], pe[:, 1::2] = np.cos(angle), np.sin(angle)
    return pe
""", expect=r"inputs:\s+args\[0\] = 3; args\[1\] = 4.*sin and cos swapped"),
    Wrong("train_sequence_model", "a fixed-seed generator made inside", """
_reference_train_sequence_model = train_sequence_model
def train_sequence_model(X_train, Y_train, X_val, Y_val, rng, **config):
    rng = np.random.default_rng(1234)  # "reproducible": the same run whatever rng is passed
    return _reference_train_sequence_model(X_train, Y_train, X_val, Y_val, rng, **config)
""", expect=r"the rng argument is ignored"),
    # -- issue 11: a tiny GPT (train_char_lm, generate_greedy, sample)
    Wrong('generate_greedy', 'argmax over the sequences (axis 0) instead of the vocabulary', """
def generate_greedy(logits_fn, prompt, n_new, context=None):
    ids = np.array(prompt)
    for _ in range(n_new):
        window = ids if context is None else ids[:, -context:]
        next_ids = np.argmax(logits_fn(window)[:, -1, :], axis=0)
        ids = np.concatenate([ids, next_ids[:, None]], axis=1)
    return ids
""", expect=r"argmax over the sequences \(axis=0\)"),
    Wrong('generate_greedy', 'the whole sequence fed to a model with a fixed context', """
def generate_greedy(logits_fn, prompt, n_new, context=None):
    ids = np.array(prompt)
    for _ in range(n_new):
        window = ids
        next_ids = np.argmax(logits_fn(window)[:, -1, :], axis=-1)
        ids = np.concatenate([ids, next_ids[:, None]], axis=1)
    return ids
""", expect=r"reads at most 3 tokens"),
    Wrong('sample', 'temperature applied after the softmax', """
def sample(logits_fn, prompt, n_new, rng, temperature=1.0, top_k=None, context=None):
    ids = np.array(prompt)
    for _ in range(n_new):
        window = ids if context is None else ids[:, -context:]
        logits = logits_fn(window)[:, -1, :]
        if top_k is not None:
            kth = np.sort(logits, axis=-1)[:, -top_k][:, None]
            logits = np.where(logits >= kth, logits, -np.inf)
        p = softmax(logits) / temperature
        p = p / p.sum(axis=-1, keepdims=True)
        next_ids = np.array([rng.choice(p.shape[-1], p=row) for row in p])
        ids = np.concatenate([ids, next_ids[:, None]], axis=1)
    return ids
""", expect=r"temperature has no effect"),
    Wrong('sample', 'top-k keeps k + 1 tokens', """
def sample(logits_fn, prompt, n_new, rng, temperature=1.0, top_k=None, context=None):
    ids = np.array(prompt)
    for _ in range(n_new):
        window = ids if context is None else ids[:, -context:]
        logits = logits_fn(window)[:, -1, :] / temperature
        if top_k is not None:
            kth = np.sort(logits, axis=-1)[:, -top_k - 1][:, None]
            logits = np.where(logits >= kth, logits, -np.inf)
        p = softmax(logits)
        next_ids = np.array([rng.choice(p.shape[-1], p=row) for row in p])
        ids = np.concatenate([ids, next_ids[:, None]], axis=1)
    return ids
""", expect=r"keeps k \+ 1 tokens"),
    Wrong('sample', 'top-k keeps the k least likely', """
def sample(logits_fn, prompt, n_new, rng, temperature=1.0, top_k=None, context=None):
    ids = np.array(prompt)
    for _ in range(n_new):
        window = ids if context is None else ids[:, -context:]
        logits = logits_fn(window)[:, -1, :] / temperature
        if top_k is not None:
            smallest = np.argsort(logits, axis=-1)[:, :top_k]
            kept = np.full_like(logits, -np.inf)
            np.put_along_axis(kept, smallest, np.take_along_axis(logits, smallest, axis=-1), axis=-1)
            logits = kept
        p = softmax(logits)
        next_ids = np.array([rng.choice(p.shape[-1], p=row) for row in p])
        ids = np.concatenate([ids, next_ids[:, None]], axis=1)
    return ids
""", expect=r"k LEAST likely"),
    Wrong('sample', 'draws with np.random instead of the rng', """
def sample(logits_fn, prompt, n_new, rng, temperature=1.0, top_k=None, context=None):
    ids = np.array(prompt)
    for _ in range(n_new):
        window = ids if context is None else ids[:, -context:]
        logits = logits_fn(window)[:, -1, :] / temperature
        if top_k is not None:
            kth = np.sort(logits, axis=-1)[:, -top_k][:, None]
            logits = np.where(logits >= kth, logits, -np.inf)
        p = softmax(logits)
        next_ids = np.array([np.random.choice(p.shape[-1], p=row) for row in p])
        ids = np.concatenate([ids, next_ids[:, None]], axis=1)
    return ids
""", expect=r"draws from np\.random"),
    Wrong('sample', 'a fixed-seed generator made inside sample', """
def sample(logits_fn, prompt, n_new, rng, temperature=1.0, top_k=None, context=None):
    ids = np.array(prompt)
    fixed = np.random.default_rng(0)  # "reproducible"
    for _ in range(n_new):
        window = ids if context is None else ids[:, -context:]
        logits = logits_fn(window)[:, -1, :] / temperature
        if top_k is not None:
            kth = np.sort(logits, axis=-1)[:, -top_k][:, None]
            logits = np.where(logits >= kth, logits, -np.inf)
        p = softmax(logits)
        next_ids = np.array([fixed.choice(p.shape[-1], p=row) for row in p])
        ids = np.concatenate([ids, next_ids[:, None]], axis=1)
    return ids
""", expect=r"the rng argument is ignored"),
    Wrong('train_char_lm', 'no causal mask in the model', """
def train_char_lm(ids, vocab_size, rng, context=16, steps=200, **config):
    D, H, F, V = 32, 2, 64, int(vocab_size)
    p = {"E": rng.normal(size=(V, D)), "ln1_gamma": np.ones(D), "ln1_beta": np.zeros(D),
         "ln2_gamma": np.ones(D), "ln2_beta": np.zeros(D), "W1": rng.normal(size=(D, F)) / np.sqrt(D),
         "b1": np.zeros(F), "W2": rng.normal(size=(F, D)) / np.sqrt(F), "b2": np.zeros(D),
         "W_out": rng.normal(size=(D, V)) / np.sqrt(D), "b_out": np.zeros(V)}
    for c in "qkvo":
        p["W" + c], p["b" + c] = rng.normal(size=(D, D)) / np.sqrt(D), np.zeros(D)
    block = lambda q: {k: q[k] for k in q if k not in ("E", "W_out", "b_out")}
    def forward(x, q):
        T = x.shape[1]
        e, ce = embedding_forward(x, q["E"])
        h, cb = transformer_block_forward(e + positional_encoding(T, D), block(q), H)
        return h @ q["W_out"] + q["b_out"], (ce, cb, h)
    history, state = {"loss": []}, None
    for step in range(steps):
        w = ids[rng.integers(0, len(ids) - context, size=32)[:, None] + np.arange(context + 1)]
        logits, (ce, cb, h) = forward(w[:, :-1], p)
        loss, dl = softmax_cross_entropy(logits, w[:, 1:])
        history["loss"].append(loss)
        g = {"W_out": h.reshape(-1, D).T @ dl.reshape(-1, V), "b_out": dl.reshape(-1, V).sum(0)}
        dx, gb = transformer_block_backward(dl @ p["W_out"].T, cb)
        g.update(gb)
        g["E"] = embedding_backward(dx, ce)
        p, state = adam_step(p, g, state, lr=1e-2)
    return (lambda x: forward(np.asarray(x), p)[0]), history
""", expect=r"causal mask is missing"),
    Wrong('train_char_lm', 'targets not shifted: the model predicts the character it reads', """
def train_char_lm(ids, vocab_size, rng, context=16, steps=200, **config):
    D, H, F, V = 32, 2, 64, int(vocab_size)
    p = {"E": rng.normal(size=(V, D)), "ln1_gamma": np.ones(D), "ln1_beta": np.zeros(D),
         "ln2_gamma": np.ones(D), "ln2_beta": np.zeros(D), "W1": rng.normal(size=(D, F)) / np.sqrt(D),
         "b1": np.zeros(F), "W2": rng.normal(size=(F, D)) / np.sqrt(F), "b2": np.zeros(D),
         "W_out": rng.normal(size=(D, V)) / np.sqrt(D), "b_out": np.zeros(V)}
    for c in "qkvo":
        p["W" + c], p["b" + c] = rng.normal(size=(D, D)) / np.sqrt(D), np.zeros(D)
    block = lambda q: {k: q[k] for k in q if k not in ("E", "W_out", "b_out")}
    def forward(x, q):
        T = x.shape[1]
        e, ce = embedding_forward(x, q["E"])
        h, cb = transformer_block_forward(e + positional_encoding(T, D), block(q), H, causal_mask(T))
        return h @ q["W_out"] + q["b_out"], (ce, cb, h)
    history, state = {"loss": []}, None
    for step in range(steps):
        w = ids[rng.integers(0, len(ids) - context, size=32)[:, None] + np.arange(context + 1)]
        logits, (ce, cb, h) = forward(w[:, :-1], p)
        loss, dl = softmax_cross_entropy(logits, w[:, :-1])
        history["loss"].append(loss)
        g = {"W_out": h.reshape(-1, D).T @ dl.reshape(-1, V), "b_out": dl.reshape(-1, V).sum(0)}
        dx, gb = transformer_block_backward(dl @ p["W_out"].T, cb)
        g.update(gb)
        g["E"] = embedding_backward(dx, ce)
        p, state = adam_step(p, g, state, lr=1e-2)
    return (lambda x: forward(np.asarray(x), p)[0]), history
""", expect=r"shifted by one"),
]

CORRECT = [
    Right("the reference itself", ""),
    Right("einsum attention with a multiplicative mask, transpose-based heads, np.var layer norm", """
def scaled_dot_product_attention(Q, K, V, mask=None):
    scores = np.einsum("...qd,...kd->...qk", Q, K) / np.sqrt(Q.shape[-1])
    if mask is None:
        keep = np.ones(scores.shape, dtype=bool)
    else:
        keep = np.broadcast_to(mask, np.broadcast_shapes(scores.shape, np.shape(mask)))
    shift = np.max(np.where(keep, scores, -np.inf), axis=-1, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    e = np.exp(np.where(keep, scores - shift, -np.inf)) * keep
    total = e.sum(axis=-1, keepdims=True)
    weights = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    return np.einsum("...qk,...kv->...qv", weights, V), weights

def attention_backward(dout, cache):
    Q, K, V, w = cache
    s = 1.0 / np.sqrt(Q.shape[-1])
    dV = np.einsum("...qk,...qv->...kv", w, dout)
    dW = np.einsum("...qv,...kv->...qk", dout, V)
    dS = w * dW - w * np.einsum("...qk,...qk->...q", w, dW)[..., None]
    return np.einsum("...qk,...kd->...qd", dS, K) * s, np.einsum("...qk,...qd->...kd", dS, Q) * s, dV

def split_heads(X, n_heads):
    N, T, D = X.shape
    return np.transpose(X.reshape(N, T, n_heads, -1), (0, 2, 1, 3))

def merge_heads(X):
    N, H, T, Dh = X.shape
    return np.transpose(X, (0, 2, 1, 3)).reshape(N, T, -1)

def layernorm_forward(X, gamma, beta, eps=1e-5):
    mu = X.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(X.var(axis=-1, keepdims=True) + eps)
    Xh = (X - mu) / sigma
    return Xh * gamma + beta, (X, mu, sigma, gamma)

def layernorm_backward(dout, cache):
    X, mu, sigma, gamma = cache
    D = X.shape[-1]
    Xh = (X - mu) / sigma
    g = dout * gamma
    dvar = np.sum(g * (X - mu), axis=-1, keepdims=True) * -0.5 * sigma ** -3
    dmu = -np.sum(g, axis=-1, keepdims=True) / sigma
    dX = g / sigma + dvar * 2 * (X - mu) / D + dmu / D
    flat = lambda a: a.reshape(-1, D)
    return dX, np.sum(flat(dout * Xh), axis=0), np.sum(flat(dout), axis=0)

def causal_mask(T):
    i = np.arange(T)
    return i[:, None] >= i[None, :]
"""),
    Right("loops over heads, one-hot embeddings, explicit positional loops", """
def mha_forward(X, params, n_heads, mask=None):
    N, T, D = X.shape
    Dh = D // n_heads
    Q = X @ params["Wq"] + params["bq"]
    K = X @ params["Wk"] + params["bk"]
    V = X @ params["Wv"] + params["bv"]
    head_outputs, caches = [], []
    for h in range(n_heads):
        cols = slice(h * Dh, (h + 1) * Dh)
        m = None
        if mask is not None:
            m = np.broadcast_to(mask, (N, n_heads, T, T))[:, h]
        out_h, c = attention_forward(Q[..., cols], K[..., cols], V[..., cols], m)
        head_outputs.append(out_h)
        caches.append(c)
    A = np.concatenate(head_outputs, axis=-1)
    return A @ params["Wo"] + params["bo"], (X, params, n_heads, A, caches)

def mha_backward(dout, cache):
    X, params, n_heads, A, caches = cache
    N, T, D = X.shape
    Dh = D // n_heads
    grads = {"Wo": np.einsum("ntd,nte->de", A, dout), "bo": dout.sum(axis=(0, 1))}
    dA = dout @ params["Wo"].T
    dQ, dK, dV = np.zeros_like(X), np.zeros_like(X), np.zeros_like(X)
    for h, c in enumerate(caches):
        cols = slice(h * Dh, (h + 1) * Dh)
        dQ[..., cols], dK[..., cols], dV[..., cols] = attention_backward(dA[..., cols], c)
    dX = np.zeros_like(X)
    for name, d in (("q", dQ), ("k", dK), ("v", dV)):
        grads["W" + name] = np.einsum("ntd,nte->de", X, d)
        grads["b" + name] = d.sum(axis=(0, 1))
        dX += d @ params["W" + name].T
    return dX, grads

def embedding_forward(ids, E):
    one_hot = (np.asarray(ids)[..., None] == np.arange(E.shape[0])).astype(float)
    return one_hot @ E, one_hot

def embedding_backward(dout, cache):
    one_hot = cache
    V, D = one_hot.shape[-1], dout.shape[-1]
    return one_hot.reshape(-1, V).T @ dout.reshape(-1, D)

def positional_encoding(T, D):
    pe = np.empty((T, D))
    for t in range(T):
        for i in range(0, D, 2):
            angle = t / (10000.0 ** (i / D))
            pe[t, i] = np.sin(angle)
            pe[t, i + 1] = np.cos(angle)
    return pe
"""),
    Right("erf-free GELU via sigmoid identity, einsum FFN, a block built from explicit pieces", """
def ffn_forward(X, params):
    pre = np.einsum("...d,df->...f", X, params["W1"]) + params["b1"]
    u = np.sqrt(2 / np.pi) * (pre + 0.044715 * pre ** 3)
    act = pre / (1.0 + np.exp(-2.0 * np.clip(u, -350, 350)))
    return np.einsum("...f,fd->...d", act, params["W2"]) + params["b2"], (X, pre, act, params)

def ffn_backward(dout, cache):
    X, pre, act, params = cache
    dact = np.einsum("...d,fd->...f", dout, params["W2"])
    dpre = dact * gelu_grad(pre)
    lead = tuple(range(X.ndim - 1))
    grads = {"W2": np.tensordot(act, dout, axes=(lead, lead)), "b2": dout.sum(axis=lead),
             "W1": np.tensordot(X, dpre, axes=(lead, lead)), "b1": dpre.sum(axis=lead)}
    return np.einsum("...f,df->...d", dpre, params["W1"]), grads

def transformer_block_forward(X, params, n_heads, mask=None):
    p = params
    a_in, c_ln1 = layernorm_forward(X, p["ln1_gamma"], p["ln1_beta"])
    a_out, c_mha = mha_forward(a_in, {"Wq": p["Wq"], "bq": p["bq"], "Wk": p["Wk"], "bk": p["bk"],
                                      "Wv": p["Wv"], "bv": p["bv"], "Wo": p["Wo"], "bo": p["bo"]}, n_heads, mask)
    stream = X + a_out
    f_in, c_ln2 = layernorm_forward(stream, p["ln2_gamma"], p["ln2_beta"])
    f_out, c_ffn = ffn_forward(f_in, {"W1": p["W1"], "b1": p["b1"], "W2": p["W2"], "b2": p["b2"]})
    return stream + f_out, {"ln1": c_ln1, "mha": c_mha, "ln2": c_ln2, "ffn": c_ffn}

def transformer_block_backward(dout, cache):
    grads = {}
    d_f_in, g_ffn = ffn_backward(dout, cache["ffn"])
    d_stream_branch, dg2, db2 = layernorm_backward(d_f_in, cache["ln2"])
    d_stream = dout + d_stream_branch
    d_a_in, g_mha = mha_backward(d_stream, cache["mha"])
    dX_branch, dg1, db1 = layernorm_backward(d_a_in, cache["ln1"])
    grads.update(g_ffn)
    grads.update(g_mha)
    grads.update({"ln1_gamma": dg1, "ln1_beta": db1, "ln2_gamma": dg2, "ln2_beta": db2})
    return d_stream + dX_branch, grads
"""),
    Right("greedy and top-k with argpartition, temperature on the log-probabilities, rng.choice per row; a char LM of width 24 with 3 heads on sliding windows drawn without replacement", """
def generate_greedy(logits_fn, prompt, n_new, context=None):
    ids = np.array(prompt)
    for _ in range(n_new):
        window = ids[:, -context:] if context else ids
        next_ids = np.argmax(logits_fn(window)[:, -1, :], axis=-1)
        ids = np.concatenate([ids, next_ids[:, None]], axis=1)
    return ids

def sample(logits_fn, prompt, n_new, rng, temperature=1.0, top_k=None, context=None):
    ids = np.array(prompt)
    for _ in range(n_new):
        window = ids if context is None else ids[:, -context:]
        logits = logits_fn(window)[:, -1, :]
        if top_k is not None:
            drop = np.argpartition(logits, -top_k, axis=-1)[:, :-top_k]
            logits = logits.copy()
            np.put_along_axis(logits, drop, -np.inf, axis=-1)
        log_p = logits - logits.max(axis=-1, keepdims=True)
        log_p = log_p - np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
        p = softmax(log_p / temperature)  # p ** (1/T) renormalized, in log space: softmax(logits / T)
        next_ids = np.array([rng.choice(p.shape[-1], p=row) for row in p])
        ids = np.concatenate([ids, next_ids[:, None]], axis=1)
    return ids

def train_char_lm(ids, vocab_size, rng, context=16, steps=200, **config):
    D, H, F, V = 24, 3, 96, int(vocab_size)
    p = {"E": rng.normal(size=(V, D)), "ln1_gamma": np.ones(D), "ln1_beta": np.zeros(D),
         "ln2_gamma": np.ones(D), "ln2_beta": np.zeros(D), "W1": rng.normal(size=(D, F)) / np.sqrt(D),
         "b1": np.zeros(F), "W2": rng.normal(size=(F, D)) / np.sqrt(F), "b2": np.zeros(D),
         "W_out": rng.normal(size=(D, V)) / np.sqrt(D), "b_out": np.zeros(V)}
    for c in "qkvo":
        p["W" + c], p["b" + c] = rng.normal(size=(D, D)) / np.sqrt(D), np.zeros(D)
    block = lambda q: {k: q[k] for k in q if k not in ("E", "W_out", "b_out")}
    def forward(x, q):
        T = x.shape[1]
        e, ce = embedding_forward(x, q["E"])
        h, cb = transformer_block_forward(e + positional_encoding(T, D), block(q), H, causal_mask(T))
        return h @ q["W_out"] + q["b_out"], (ce, cb, h)
    history, state = {"loss": []}, None
    for step in range(steps):
        w = np.lib.stride_tricks.sliding_window_view(ids, context + 1)[rng.choice(len(ids) - context, size=24, replace=False)]
        logits, (ce, cb, h) = forward(w[:, :-1], p)
        loss, dl = softmax_cross_entropy(logits, w[:, 1:])
        history["loss"].append(loss)
        g = {"W_out": h.reshape(-1, D).T @ dl.reshape(-1, V), "b_out": dl.reshape(-1, V).sum(0)}
        dx, gb = transformer_block_backward(dl @ p["W_out"].T, cb)
        g.update(gb)
        g["E"] = embedding_backward(dx, ce)
        p, state = adam_step(p, g, state, lr=1e-2)
    return (lambda x: forward(np.asarray(x), p)[0]), history
"""),
]
