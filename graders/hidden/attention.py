"""Checks for assignment 04_attention.

Visible checks (graders.visible.attention): shapes and small values. Hidden checks: several batch axes,
distinct dimensions (Tq != Tk, d != dv), (T, T) and (N, 1, 1, T) masks, fully masked rows, huge scores,
future-token invariance under a causal mask, gradient checks with random upstream gradients, N = 1, and the
training exercise re-trained on fresh data.
Each `candidates` entry names a classic mistake by the output it would produce; the generators below
(`@generates`) compute those outputs for the visible and the hidden checks alike.
"""
import copy
import math

import numpy as np

from ..checks.registry import checks_for
from ..visible.attention import (
    MEMORISED,
    MHA_KEYS,
    SAMPLING_ROW,
    BigramModel,
    _attention_grad_check,
    _block_grad_check,
    _block_params,
    _compare_attention,
    _ffn_grad_check,
    _ffn_params,
    _frequencies_check,
    _greedy_check,
    _ln_grad_check,
    _mha_grad_check,
    _mha_params,
    _out,
    _phrase_ids,
    _require_bool_mask,
    _reversal,
    _sees_no_future,
    _text_loss,
    _train_and_measure,
    _train_char_lm,
    _windows,
    SAMPLING_FROM_RNG,
)
from . import generates
from .backprop import TRAINING_FROM_RNG, _losses_of

_, hidden = checks_for("04_attention")


# -- helpers: inputs -----------------------------------------------------------------------------------------

def _padding_mask(rng, N, T, empty=None):
    """(N, 1, 1, T) bool padding mask; sequence `empty` (if given) is all padding."""
    lengths = rng.integers(1, T + 1, size=N)
    mask = (np.arange(T)[None, :] < lengths[:, None])[:, None, None, :]
    if empty is not None:
        mask[empty] = False
    return mask


# -- helpers: the mistakes, as outputs -----------------------------------------------------------------------

def _stable_softmax(s, axis=-1):
    s = s - np.max(s, axis=axis, keepdims=True)
    e = np.exp(s)
    return e / np.sum(e, axis=axis, keepdims=True)


def _attention_variant(Q, K, V, mask=None, *, scale=None, axis=-1, fill=None, ignore_mask=False, invert=False):
    """Attention as a (possibly mistaken) student would write it. fill: a finite number for masked scores
    (None: -inf, with all-zero weights for a query that has nothing to attend)."""
    d = Q.shape[-1]
    s = Q @ np.swapaxes(K, -1, -2) * (1.0 / np.sqrt(d) if scale is None else scale)
    if mask is None or ignore_mask:
        return _stable_softmax(s, axis) @ V, _stable_softmax(s, axis)
    allowed = np.broadcast_to(~np.asarray(mask) if invert else mask, np.broadcast_shapes(s.shape, np.shape(mask)))
    if fill is not None:
        w = _stable_softmax(np.where(allowed, s, fill), axis)
        return w @ V, w
    s = np.where(allowed, s, -np.inf)
    with np.errstate(all="ignore"):
        top = np.max(s, axis=-1, keepdims=True)
        e = np.exp(s - np.where(np.isfinite(top), top, 0.0))
        total = e.sum(axis=-1, keepdims=True)
        w = e / np.where(total > 0, total, 1.0)
    return w @ V, w


def _mha_variant(X, params, H, mask=None, *, split_wrong=False, scale_full=False, ignore_mask=False):
    N, T, D = X.shape

    def split(Y):
        return Y.reshape(N, H, T, D // H) if split_wrong else Y.reshape(N, T, H, D // H).swapaxes(1, 2)

    def merge(Y):
        return Y.reshape(N, T, D) if split_wrong else Y.swapaxes(1, 2).reshape(N, T, D)
    Q, K, V = (split(X @ params["W" + c] + params["b" + c]) for c in "qkv")
    out, _ = _attention_variant(Q, K, V, None if ignore_mask else mask,
                                scale=1.0 / np.sqrt(D) if scale_full else None)
    return merge(out) @ params["Wo"] + params["bo"]


def _ln(X, gamma, beta, eps=1e-5, axis=-1, ddof=0, eps_outside=False):
    mu = X.mean(axis=axis, keepdims=True)
    var = X.var(axis=axis, keepdims=True, ddof=ddof)
    return gamma * (X - mu) / ((np.sqrt(var) + eps) if eps_outside else np.sqrt(var + eps)) + beta


def _gelu_tanh(z):
    """The tanh GELU of the contract, elementwise: z (any shape) -> same shape."""
    return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))


_erf = np.vectorize(math.erf)


def _ffn_variant(X, params, act):
    return act(X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]


def _block_variant(X, params, H, mask, kind):
    ln = _ln
    mha = lambda Z: _mha_variant(Z, {k: params[k] for k in MHA_KEYS}, H, mask)
    ffn = lambda Z: _ffn_variant(Z, params, _gelu_tanh)
    g1, b1, g2, b2 = params["ln1_gamma"], params["ln1_beta"], params["ln2_gamma"], params["ln2_beta"]
    if kind == "pre":
        Hs = X + mha(ln(X, g1, b1))
        return Hs + ffn(ln(Hs, g2, b2))
    if kind == "post":
        Hs = ln(X + mha(X), g1, b1)
        return ln(Hs + ffn(Hs), g2, b2)
    if kind == "no_attention_residual":
        Hs = mha(ln(X, g1, b1))
        return Hs + ffn(ln(Hs, g2, b2))
    if kind == "no_ffn_residual":
        Hs = X + mha(ln(X, g1, b1))
        return ffn(ln(Hs, g2, b2))
    if kind == "parallel":
        return X + mha(ln(X, g1, b1)) + ffn(ln(X, g2, b2))
    if kind == "normalized_residual":
        A = ln(X, g1, b1)
        Hs = A + mha(A)
        B = ln(Hs, g2, b2)
        return B + ffn(B)
    raise ValueError(kind)


def _pe_variant(T, D, kind):
    t = np.arange(T)[:, None] + (1 if kind == "from_one" else 0)
    i = np.arange(D // 2)[None, :]
    angle = t / 10000.0 ** ((i if kind == "exponent" else 2 * i) / D)
    pe = np.zeros((T, D))
    if kind == "halves":
        return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)
    first, second = (np.cos, np.sin) if kind == "swapped" else (np.sin, np.cos)
    pe[:, 0::2], pe[:, 1::2] = first(angle), second(angle)
    return pe


# -- generators: the outputs of named mistakes (t.data asks them; students get only their outputs) ----------------

@generates("attention_sdpa_suspects")
def sdpa_suspects(source, Q, K, V, mask=None, *, with_mask_mistakes=True, with_leak=True):
    """Mistaken scaled dot-product attentions.

    Inputs:
      Q (..., Tq, d), K (..., Tk, d), V (..., Tk, dv); mask: None or bool broadcastable to (..., Tq, Tk);
      with_mask_mistakes: include the ignored and inverted mask; with_leak: include the finite -1e9 masks.
    Returns:
      {mistake: (out (..., Tq, dv), weights (..., Tq, Tk))}.
    """
    d = Q.shape[-1]
    out = {"no 1/sqrt(d) scaling: divide the scores Q K^T by np.sqrt(d), d = Q.shape[-1].":
               _attention_variant(Q, K, V, mask, scale=1.0),
           "scores divided by d instead of sqrt(d): divide by np.sqrt(d).": _attention_variant(Q, K, V, mask, scale=1.0 / d),
           "softmax over the query axis (axis=-2): each query's weights must sum to 1 over the keys (axis=-1).":
               _attention_variant(Q, K, V, None if mask is None else mask, axis=-2, fill=-1e9)}
    if mask is not None and with_mask_mistakes:
        out["the mask is ignored: set the scores of masked keys to -inf (np.where(mask, scores, -np.inf))."] = \
            _attention_variant(Q, K, V, mask, ignore_mask=True)
        out["the mask is inverted: True means the query MAY attend to that key."] = \
            _attention_variant(Q, K, V, mask, invert=True, fill=-1e9)
    if mask is not None and with_leak:
        out["masking with a finite number (-1e9) leaks weight: masked weights must be exactly 0 (use -np.inf, "
            "and give a query with nothing to attend all-zero weights)."] = _attention_variant(Q, K, V, mask, fill=-1e9)
        added = Q @ np.swapaxes(K, -1, -2) / np.sqrt(d) + np.where(mask, 0.0, -1e9)
        out["masking by adding a finite number (-1e9) to masked scores leaks weight: masked weights must be exactly 0 "
            "(use np.where(mask, scores, -np.inf), and give a query with nothing to attend all-zero weights)."] = \
            (_stable_softmax(added) @ V, _stable_softmax(added))
    return out


@generates("attention_causal_mask_suspects")
def causal_mask_suspects(source, T):
    """Mistaken causal masks of T positions: {mistake: (T, T) array of 0/1}."""
    ones = np.ones((T, T))
    return {"np.triu: position i sees the future (j >= i); position i may attend to j <= i: np.tril.": np.triu(ones),
            "the diagonal is missing: a position may attend to itself (np.tril with k=0).": np.tril(ones, -1),
            "one step of the future is visible (np.tril with k=1): use k=0.": np.tril(ones, 1)}


@generates("attention_backward_suspects")
def attention_backward_suspects(source, Q, K, V, mask, dout):
    """Mistaken gradients of attention for the upstream gradient dout.

    Inputs:
      Q (..., Tq, d), K (..., Tk, d), V (..., Tk, dv); mask: None or bool broadcastable to (..., Tq, Tk);
      dout: upstream gradient (..., Tq, dv).
    Returns:
      {"dQ": {mistake: (..., Tq, d)}, "dK": {mistake: (..., Tk, d)}, "dV": {mistake: (..., Tk, dv)}}.
    """
    ref_w = _attention_variant(Q, K, V, mask)[1]
    scale = 1.0 / np.sqrt(Q.shape[-1])
    dW = dout @ np.swapaxes(V, -1, -2)
    dS_plain = ref_w * dW
    dS = ref_w * (dW - np.sum(dW * ref_w, axis=-1, keepdims=True))
    return {"dQ": {"the softmax Jacobian's subtracted term is missing: dS = W * (dW - sum(dW * W, axis=-1, keepdims=True)).":
                   dS_plain @ K * scale,
                   "the 1/sqrt(d) is missing from dQ (the scores were Q K^T / sqrt(d)).": dS @ K},
            "dK": {"the softmax Jacobian's subtracted term is missing: dS = W * (dW - sum(dW * W, axis=-1, keepdims=True)).":
                   np.swapaxes(dS_plain, -1, -2) @ Q * scale,
                   "the 1/sqrt(d) is missing from dK (the scores were Q K^T / sqrt(d)).": np.swapaxes(dS, -1, -2) @ Q},
            "dV": ({"dV = W @ dout: transpose the weights (np.swapaxes(W, -1, -2) @ dout).": ref_w @ dout}
                   if ref_w.shape[-1] == ref_w.shape[-2] else {})}


@generates("attention_split_heads_suspects")
def split_heads_suspects(source, X, H):
    """Mistaken split_heads of X (N, T, D) into H heads: {mistake: (N, H, T, D/H)}."""
    N, T, D = X.shape
    return {"reshape(N, H, T, D/H) in the wrong order: reshape(N, T, H, D/H) first, then swap axes 1 and 2.":
                X.reshape(N, H, T, D // H),
            "heads take every H-th column (reshape(N, T, D/H, H)): head h owns the contiguous columns h*D/H:(h+1)*D/H.":
                X.reshape(N, T, D // H, H).transpose(0, 3, 1, 2)}


@generates("attention_merge_heads_suspects")
def merge_heads_suspects(source, X):
    """Mistaken merge_heads of X (N, H, T, Dh): {mistake: (N, T, H*Dh)}."""
    N, H, T, Dh = X.shape
    return {"reshape(N, T, D) without swapping axes 1 and 2 back first: X.swapaxes(1, 2).reshape(N, T, H*Dh).":
                X.reshape(N, T, H * Dh),
            "the heads are interleaved column by column: head h must occupy the contiguous columns h*Dh:(h+1)*Dh.":
                X.transpose(0, 2, 3, 1).reshape(N, T, H * Dh)}


@generates("attention_mha_suspects")
def mha_suspects(source, X, params, H, mask=None):
    """Mistaken multi-head attentions of X (N, T, D) with H heads: {mistake: out (N, T, D)}."""
    out = {"heads split by reshape(N, H, T, D/H): reshape(N, T, H, D/H) then swap axes 1 and 2 (and the mirror to merge).":
               _mha_variant(X, params, H, mask, split_wrong=True),
           "scaled by 1/sqrt(D) instead of each head's width 1/sqrt(D/H).": _mha_variant(X, params, H, mask, scale_full=True)}
    if mask is not None:
        out["the mask is ignored: pass it to the attention of every head."] = _mha_variant(X, params, H, mask, ignore_mask=True)
    return out


@generates("attention_mha_backward_suspects")
def mha_backward_suspects(source, X, params, H, mask, dout):
    """Mistaken dX of multi-head attention (one path of Q, K, V missing) for the upstream gradient dout.

    Inputs:
      X (N, T, D); params: as for mha_forward; H: heads; mask: None or bool; dout: (N, T, D).
    Returns:
      {"dX": {mistake: (N, T, D)}}.
    """
    args = [X, params, H] if mask is None else [X, params, H, mask]
    _, (_, _, _, _, attention_cache) = source.function("mha_forward")(*copy.deepcopy(args))
    dQ, dK, dV = (source.function("merge_heads")(g) for g in source.function("attention_backward")(
        source.function("split_heads")(dout @ params["Wo"].T, H), attention_cache))
    paths = {"q": dQ @ params["Wq"].T, "k": dK @ params["Wk"].T, "v": dV @ params["Wv"].T}
    return {"dX": {"dX from the query path only: X feeds Q, K and V, so dX is the sum of three paths.": paths["q"],
                   "dX from the value path only: X feeds Q, K and V, so dX is the sum of three paths.": paths["v"],
                   "dX misses the key path: add dK @ Wk.T.": paths["q"] + paths["v"],
                   "dX misses the query path: add dQ @ Wq.T.": paths["k"] + paths["v"]}}


@generates("attention_layernorm_suspects")
def layernorm_suspects(source, X, gamma, beta, eps=1e-5):
    """Mistaken layer norms of X (..., D) with gamma, beta (D,): {mistake: (..., D)}."""
    out = {"normalized over the unbiased variance (ddof=1): layer norm divides by D (np.mean((X - mu)**2)).":
               _ln(X, gamma, beta, eps, ddof=1),
           "eps added outside the square root: divide by np.sqrt(var + eps).": _ln(X, gamma, beta, eps, eps_outside=True)}
    for axis in range(X.ndim - 1):
        out[f"normalized over axis {axis} (that is batch norm): layer norm normalizes each token over its features, "
            "the last axis."] = _ln(X, gamma, beta, eps, axis=axis)
    if eps != 1e-5:
        out["the eps argument is ignored: use the eps you are given."] = _ln(X, gamma, beta, 1e-5)
    return out


@generates("attention_layernorm_backward_suspects")
def layernorm_backward_suspects(source, X, gamma, beta, dout):
    """Mistaken dX of layer norm (eps = 1e-5) for the upstream gradient dout (..., D): {"dX": {mistake: (..., D)}}."""
    inv = 1 / np.sqrt(X.var(axis=-1, keepdims=True) + 1e-5)
    return {"dX": {"mean and variance treated as constants: dX needs the two subtracted mean terms "
                   "(dX = (g - mean(g) - x_hat * mean(g * x_hat)) / sigma, g = dout * gamma).": dout * gamma * inv,
                   "only the mean(g) term: the variance also depends on X (subtract x_hat * mean(g * x_hat) too).":
                       (dout * gamma - np.mean(dout * gamma, axis=-1, keepdims=True)) * inv}}


@generates("attention_ffn_suspects")
def ffn_suspects(source, X, params):
    """Mistaken feed-forward networks of X (..., D): {mistake: (..., D)}."""
    return {"ReLU instead of GELU: use the given gelu.": _ffn_variant(X, params, lambda z: np.maximum(z, 0)),
            "the exact erf GELU: the contract uses the tanh approximation (the given gelu).":
                _ffn_variant(X, params, lambda z: 0.5 * z * (1 + _erf(z / np.sqrt(2)))),
            "b2 is missing: out = gelu(X @ W1 + b1) @ W2 + b2.": _ffn_variant(X, params, _gelu_tanh) - params["b2"]}


@generates("attention_ffn_backward_suspects")
def ffn_backward_suspects(source, X, params, dout):
    """Mistaken dX of the feed-forward network (the GELU derivative missing) for dout (..., D): {"dX": {...}}."""
    pre = X @ params["W1"] + params["b1"]
    gelu = source.function("gelu")
    return {"dX": {"the GELU derivative is missing (gelu(h) used instead of gelu_grad(h)).":
                   ((dout @ params["W2"].T) * gelu(pre)) @ params["W1"].T,
                   "the GELU derivative is missing: multiply by gelu_grad(X @ W1 + b1).":
                   (dout @ params["W2"].T) @ params["W1"].T}}


@generates("attention_block_suspects")
def block_suspects(source, X, params, H, mask=None):
    """Mistaken transformer blocks of X (N, T, D): {mistake: out (N, T, D)}."""
    return {"post-LN (LayerNorm after the residual sum): the block is pre-LN, H = X + mha(ln1(X)), out = H + ffn(ln2(H)).":
                _block_variant(X, params, H, mask, "post"),
            "the residual around attention is missing: H = X + mha(ln1(X)).": _block_variant(X, params, H, mask, "no_attention_residual"),
            "the residual around the feed-forward network is missing: out = H + ffn(ln2(H)).":
                _block_variant(X, params, H, mask, "no_ffn_residual"),
            "ln2 is applied to X instead of H: the feed-forward network reads the stream after attention, ln2(H).":
                _block_variant(X, params, H, mask, "parallel"),
            "the residual adds the normalized input: add the sublayer's output to X itself (X + mha(ln1(X))), not to ln1(X).":
                _block_variant(X, params, H, mask, "normalized_residual"),
            **({"the mask is not passed on to mha_forward.": _block_variant(X, params, H, None, "pre")}
               if mask is not None else {})}


@generates("attention_block_backward_suspects")
def block_backward_suspects(source, X, params, H, mask, dout):
    """Mistaken dX of the transformer block (a residual bypass missing) for dout (N, T, D): {"dX": {...}}."""
    ref = source.function
    args = [X, params, H] if mask is None else [X, params, H, mask]
    _, (ln1_c, mha_c, ln2_c, ffn_c) = ref("transformer_block_forward")(*copy.deepcopy(args))
    d2, _ = ref("ffn_backward")(dout, ffn_c)
    dH_branch = ref("layernorm_backward")(d2, ln2_c)[0]
    dH = dout + dH_branch
    d1, _ = ref("mha_backward")(dH, mha_c)
    dX_branch = ref("layernorm_backward")(d1, ln1_c)[0]
    d1_short, _ = ref("mha_backward")(dH_branch, mha_c)
    return {"dX": {"the bypass is missing from dX: dX = dH + (the gradient through mha and ln1).": dX_branch,
                   "the bypass is missing from dH: dH = dout + (the gradient through ffn and ln2).":
                       dH_branch + ref("layernorm_backward")(d1_short, ln1_c)[0]}}


@generates("attention_positional_encoding_suspects")
def positional_encoding_suspects(source, T, D):
    """Mistaken sinusoidal positional encodings: {mistake: (T, D)}."""
    return {"sin and cos swapped: column 2i is the sin, column 2i+1 the cos.": _pe_variant(T, D, "swapped"),
            "[sin | cos] in two halves: interleave them (pe[:, 0::2] = sin, pe[:, 1::2] = cos).": _pe_variant(T, D, "halves"),
            "the exponent is i/D: it is 2i/D, with 2i the even column index (10000 ** (2i / D)).": _pe_variant(T, D, "exponent"),
            "positions start at 1: t runs from 0 to T-1.": _pe_variant(T, D, "from_one")}


@generates("attention_embedding_backward_suspects")
def embedding_backward_suspects(source, ids, E, dout):
    """Mistaken dE of an embedding lookup of ids (S) in E (V, D) for dout (S + (D,)): {mistake: (V, D)}."""
    dE = np.zeros(E.shape)
    dE[ids] += dout
    return {"dE[ids] += dout overwrites repeated ids instead of accumulating them: use np.add.at(dE, ids, dout).": dE}


# -- helpers: hidden check bodies ----------------------------------------------------------------------------------

def _future_invariance(t, run, X, rng, what, mistake):
    """Changing the tokens at positions >= cut must leave every output before cut unchanged."""
    T = X.shape[1]
    base = run(X)
    for cut in (1, T // 2, T - 1):
        X2 = X.copy()
        X2[:, cut:] = rng.normal(size=X2[:, cut:].shape) * 2
        changed = run(X2)
        moved = np.max(np.abs(changed[:, :cut] - base[:, :cut]))
        t.require(moved <= 1e-10 * (1 + np.max(np.abs(base))),
                  f"{what}: the output at positions < {cut} moved (by {moved:.3g}) when only the tokens at positions "
                  f">= {cut} changed: a position can see the future.",
                  cause=mistake,
                  hint="position i may attend to j <= i only: np.tril(np.ones((T, T), dtype=bool)), and masked scores "
                       "must become -inf before the softmax.")


def _embedding_check(t, ids, E):
    """dE of embedding_backward against centered differences of the reference embedding_forward."""
    t.backward_check("embedding_forward", "embedding_backward", [ids, E], {"dE": 1}, unpack=lambda r: {"dE": r},
                     candidates=lambda douts: {"dE": t.data("attention_embedding_backward_suspects", ids, E, douts[0])})


# -- Part 1: scaled dot-product attention ---------------------------------------------------------------------

@hidden("scaled_dot_product_attention")
def batch_axes_and_distinct_sizes(t):
    """batch axes (2, 3), Tq = 5, Tk = 4, d = 3, dv = 6: the 1/sqrt(d) and the softmax over the keys"""
    Q, K, V = t.rng.normal(size=(2, 3, 5, 3)) * 2, t.rng.normal(size=(2, 3, 4, 3)) * 2, t.rng.normal(size=(2, 3, 4, 6))
    weights = _compare_attention(t, Q, K, V, candidates=t.data("attention_sdpa_suspects", Q, K, V, None))
    t.require(np.allclose(weights.sum(axis=-1), 1.0), "the weights of a query do not sum to 1 over the keys.",
              hint="softmax over the last axis (the keys).")
    Q1, K1, V1 = t.rng.normal(size=(1, 7)) * 3, t.rng.normal(size=(3, 7)) * 3, t.rng.normal(size=(3, 2))
    _compare_attention(t, Q1, K1, V1, candidates=t.data("attention_sdpa_suspects", Q1, K1, V1, None))


@hidden("scaled_dot_product_attention")
def causal_and_padding_masks_broadcast(t):
    """a (T, T) causal mask and an (N, 1, 1, T) padding mask broadcast over (N, H, T, T)"""
    N, H, T, d, dv = 2, 3, 5, 4, 6
    Q, K, V = (t.rng.normal(size=(N, H, T, d)) * 1.5, t.rng.normal(size=(N, H, T, d)) * 1.5,
               t.rng.normal(size=(N, H, T, dv)))
    causal = np.tril(np.ones((T, T), dtype=bool))
    _compare_attention(t, Q, K, V, causal, candidates=t.data("attention_sdpa_suspects", Q, K, V, causal))
    padding = np.ones((N, 1, 1, T), dtype=bool)
    padding[0, ..., 3:] = False
    padding[1, ..., 4:] = False
    _compare_attention(t, Q, K, V, padding, candidates=t.data("attention_sdpa_suspects", Q, K, V, padding))


@hidden("scaled_dot_product_attention")
def causal_mask_keeps_the_future_out(t):
    """with a causal mask, changing future keys and values does not move earlier outputs"""
    N, T, d = 2, 6, 3
    Q = t.rng.normal(size=(N, T, d))
    causal = np.tril(np.ones((T, T), dtype=bool))

    def run(KV):
        K, V = KV[..., :d], KV[..., d:]
        return t.array(t.part(t.call("scaled_dot_product_attention", Q, K, V, causal), _out,
                              "scaled_dot_product_attention"), "the output of scaled_dot_product_attention")
    _future_invariance(t, run, t.rng.normal(size=(N, T, 2 * d)), t.rng, "scaled_dot_product_attention",
                       "the mask is not applied (or applied after the softmax, or inverted).")


@hidden("scaled_dot_product_attention")
def fully_masked_row_is_all_zero(t):
    """a query with nothing to attend: all-zero weights and output, no NaN, no warning"""
    Q, K, V = t.rng.normal(size=(2, 4, 3)), t.rng.normal(size=(2, 5, 3)), t.rng.normal(size=(2, 5, 6))
    mask = t.rng.random(size=(2, 4, 5)) < 0.6
    mask[0, 1] = False
    mask[1, 3] = False
    mask[1, 0] = True
    weights = _compare_attention(t, Q, K, V, mask, candidates=t.data("attention_sdpa_suspects", Q, K, V, mask))
    t.require(np.all(weights[0, 1] == 0) and np.all(weights[1, 3] == 0),
              "a fully masked query must get weights that are exactly 0.")
    everything = np.zeros((1, 5), dtype=bool)
    _compare_attention(t, Q, K, V, everything,
                       candidates=t.data("attention_sdpa_suspects", Q, K, V, everything, with_mask_mistakes=False))


@hidden("scaled_dot_product_attention")
def huge_scores_do_not_leak_into_masked_keys(t):
    """scores around -1e11: a finite fill value such as -1e9 would hand masked keys all the weight"""
    Q = np.abs(t.rng.normal(size=(2, 3, 4))) * 1e6 + 1e5
    K = -(np.abs(t.rng.normal(size=(2, 5, 4))) * 1e6 + 1e5)
    V = t.rng.normal(size=(2, 5, 3))
    mask = np.ones((2, 3, 5), dtype=bool)
    mask[..., 3:] = False
    weights = _compare_attention(t, Q, K, V, mask,
                                 candidates=t.data("attention_sdpa_suspects", Q, K, V, mask, with_mask_mistakes=False))
    t.require(np.all(weights[..., 3:] == 0), "masked keys got weight.", hint="np.where(mask, scores, -np.inf)")


# -- causal_mask ----------------------------------------------------------------------------------------------

@hidden("causal_mask")
def other_lengths(t):
    """T = 7 and T = 1, bool"""
    for T in (7, 1):
        m = t.call("causal_mask", T)
        _require_bool_mask(t, m, T)
        t.close(m, t.ref("causal_mask")(T), f"causal_mask({T})", candidates=t.data("attention_causal_mask_suspects", T))


@hidden("causal_mask")
def future_tokens_do_not_move_earlier_outputs(t):
    """multi-head attention with your mask: changing future tokens leaves earlier outputs unchanged"""
    N, T, D, H = 2, 6, 8, 2
    m = t.call("causal_mask", T)
    _require_bool_mask(t, m, T)
    params = _mha_params(t.rng, D)
    mha = t.ref("mha_forward")
    _future_invariance(t, lambda X: mha(X, params, H, m)[0], t.rng.normal(size=(N, T, D)), t.rng,
                       "multi-head attention with causal_mask(T)", "the mask lets position i see positions j > i.")


# -- attention_forward / attention_backward ----------------------------------------------------------------------

@hidden("attention_forward")
def batch_axes_with_a_mask(t):
    """batch axes (2, 3) with a padding mask and a fully masked sequence"""
    Q, K, V = t.rng.normal(size=(2, 3, 4, 5)), t.rng.normal(size=(2, 3, 6, 5)), t.rng.normal(size=(2, 3, 6, 2))
    mask = np.ones((2, 1, 1, 6), dtype=bool)
    mask[0, ..., 2:] = False
    mask[1] = False
    t.agrees("attention_forward", Q, K, V, mask, pick=_out, what="the output of attention_forward",
             candidates={k: out for k, (out, _) in t.data("attention_sdpa_suspects", Q, K, V, mask).items()})


@hidden("attention_backward")
def gradient_check_with_batch_axes(t):
    """dQ, dK, dV with batch axes (2, 3), Tq = 4, Tk = 5, d = 3, dv = 2"""
    _attention_grad_check(t, t.rng.normal(size=(2, 3, 4, 3)), t.rng.normal(size=(2, 3, 5, 3)),
                          t.rng.normal(size=(2, 3, 5, 2)))


@hidden("attention_backward")
def gradient_check_with_masks(t):
    """a padding mask with a fully masked sequence, and a causal mask"""
    mask = np.ones((2, 1, 1, 5), dtype=bool)
    mask[0, ..., 3:] = False
    mask[1] = False
    _attention_grad_check(t, t.rng.normal(size=(2, 2, 4, 3)), t.rng.normal(size=(2, 2, 5, 3)),
                          t.rng.normal(size=(2, 2, 5, 2)), mask)
    _attention_grad_check(t, t.rng.normal(size=(2, 4, 3)), t.rng.normal(size=(2, 4, 3)),
                          t.rng.normal(size=(2, 4, 6)), np.tril(np.ones((4, 4), dtype=bool)))


@hidden("attention_backward")
def attention_gradient_check_single_sequence(t):
    """N = 1, a single query"""
    _attention_grad_check(t, t.rng.normal(size=(1, 1, 4)), t.rng.normal(size=(1, 3, 4)), t.rng.normal(size=(1, 3, 3)))


# -- Part 2: heads ----------------------------------------------------------------------------------------------

@hidden("split_heads")
def random_inputs_several_head_counts(t):
    """(2, 5, 8) with H = 2, 4 and 1"""
    X = t.rng.normal(size=(2, 5, 8))
    for H in (2, 4, 1):
        t.agrees("split_heads", X, H, candidates=t.data("attention_split_heads_suspects", X, H) if H > 1 else None)


@hidden("merge_heads")
def random_inputs_and_the_round_trip(t):
    """random (2, 4, 5, 3); merge_heads(split_heads(X)) == X"""
    X = t.rng.normal(size=(2, 4, 5, 3))
    t.agrees("merge_heads", X, candidates=t.data("attention_merge_heads_suspects", X))
    Y = t.rng.normal(size=(3, 2, 12))
    split = t.ref("split_heads")(Y, 3)
    t.close(t.call("merge_heads", split), Y, "merge_heads(split_heads(X, 3))",
            candidates={"merge_heads does not undo split_heads: swap axes 1 and 2 back, then reshape.": split.reshape(3, 2, 12)})


# -- mha ----------------------------------------------------------------------------------------------------------

@hidden("mha_forward")
def random_weights_several_heads(t):
    """(2, 5, 8) with H = 2 and H = 4, no mask"""
    X, params = t.rng.normal(size=(2, 5, 8)), _mha_params(t.rng, 8)
    for H in (2, 4):
        t.agrees("mha_forward", X, params, H, pick=_out, what=f"the output of mha_forward (H = {H})",
                 candidates=t.data("attention_mha_suspects", X, params, H, None))


@hidden("mha_forward")
def mha_causal_mask_and_future_tokens(t):
    """a (T, T) causal mask; changing future tokens leaves earlier outputs unchanged"""
    N, T, D, H = 2, 5, 8, 2
    X, params = t.rng.normal(size=(N, T, D)), _mha_params(t.rng, D)
    causal = np.tril(np.ones((T, T), dtype=bool))
    t.agrees("mha_forward", X, params, H, causal, pick=_out, what="the output of mha_forward (causal mask)",
             candidates=t.data("attention_mha_suspects", X, params, H, causal))

    def run(Z):
        return t.array(t.part(t.call("mha_forward", Z, params, H, causal), _out, "mha_forward"),
                       "the output of mha_forward")
    _future_invariance(t, run, X, t.rng, "mha_forward with a causal mask", "the mask is not passed to every head.")


@hidden("mha_forward")
def padding_mask_and_an_empty_sequence(t):
    """an (N, 1, 1, T) padding mask; a sequence with every key masked outputs bo"""
    N, T, D, H = 3, 4, 6, 3
    X, params = t.rng.normal(size=(N, T, D)), _mha_params(t.rng, D)
    mask = _padding_mask(t.rng, N, T, empty=1)
    result = t.agrees("mha_forward", X, params, H, mask, pick=_out,
                      what="the output of mha_forward (padding mask)",
                      candidates=t.data("attention_mha_suspects", X, params, H, mask))
    out = t.array(t.part(result, _out, "mha_forward"), "the output of mha_forward")
    t.require(np.allclose(out[1], params["bo"]), "a query with nothing to attend must output exactly bo.")


@hidden("mha_backward")
def mha_gradient_check_with_a_causal_mask(t):
    """dX and all parameter gradients, (2, 4, 6), H = 2, causal mask; dbk = 0"""
    _mha_grad_check(t, 2, 4, 6, 2, np.tril(np.ones((4, 4), dtype=bool)))


@hidden("mha_backward")
def gradient_check_with_padding(t):
    """(3, 3, 4), H = 2, a padding mask with an empty sequence"""
    _mha_grad_check(t, 3, 3, 4, 2, _padding_mask(t.rng, 3, 3, empty=2))


@hidden("mha_backward")
def gradient_check_single_sequence_more_heads(t):
    """N = 1, (1, 5, 6), H = 3, no mask"""
    _mha_grad_check(t, 1, 5, 6, 3)


# -- Part 3: layer norm -------------------------------------------------------------------------------------------

@hidden("layernorm_forward")
def layernorm_three_dimensional_input(t):
    """(2, 3, 5) with random gamma and beta: the last axis, the biased variance"""
    X = t.rng.normal(size=(2, 3, 5)) * 3 + 1
    gamma, beta = t.rng.normal(size=5), t.rng.normal(size=5)
    t.agrees("layernorm_forward", X, gamma, beta, pick=_out, what="the output of layernorm_forward",
             candidates=t.data("attention_layernorm_suspects", X, gamma, beta))
    X4 = t.rng.normal(size=(4, 4)) * 2
    t.agrees("layernorm_forward", X4, gamma[:4], beta[:4], pick=_out, what="the output of layernorm_forward",
             candidates=t.data("attention_layernorm_suspects", X4, gamma[:4], beta[:4]))


@hidden("layernorm_forward")
def eps_is_inside_the_root_and_respected(t):
    """eps = 0.5 on small-variance rows"""
    X = t.rng.normal(size=(3, 6)) * 0.4
    gamma, beta = t.rng.normal(size=6), t.rng.normal(size=6)
    t.agrees("layernorm_forward", X, gamma, beta, 0.5, pick=_out, what="the output of layernorm_forward",
             candidates=t.data("attention_layernorm_suspects", X, gamma, beta, 0.5))


@hidden("layernorm_forward")
def constant_rows_and_large_offsets(t):
    """a constant token outputs beta without warnings; an offset of 1e4 is removed"""
    gamma, beta = t.rng.normal(size=4), t.rng.normal(size=4)
    X = np.vstack([np.full(4, 3.0), 1e4 + t.rng.normal(size=4), t.rng.normal(size=4)])
    t.agrees("layernorm_forward", X, gamma, beta, pick=_out, what="the output of layernorm_forward",
             rtol=1e-5, hint="eps inside the square root keeps a zero variance finite: np.sqrt(var + eps).")


@hidden("layernorm_backward")
def layernorm_gradient_check_3d(t):
    """(2, 3, 5): dgamma and dbeta summed over both leading axes"""
    _ln_grad_check(t, t.rng.normal(size=(2, 3, 5)) * 2, t.rng.normal(size=5), t.rng.normal(size=5))


@hidden("layernorm_backward")
def layernorm_gradient_check_single_token(t):
    """N = 1: one token of width 6"""
    _ln_grad_check(t, t.rng.normal(size=(1, 6)), t.rng.normal(size=6), t.rng.normal(size=6))


# -- ffn ---------------------------------------------------------------------------------------------------------

@hidden("ffn_forward")
def ffn_three_dimensional_input(t):
    """(2, 3, 4) with F = 7: the tanh GELU and both biases"""
    X, params = t.rng.normal(size=(2, 3, 4)) * 2, _ffn_params(t.rng, 4, 7)
    t.agrees("ffn_forward", X, params, pick=_out, what="the output of ffn_forward",
             candidates=t.data("attention_ffn_suspects", X, params))


@hidden("ffn_backward")
def ffn_gradient_check_3d(t):
    """(2, 3, 4) with F = 6: weight gradients summed over both leading axes"""
    _ffn_grad_check(t, t.rng.normal(size=(2, 3, 4)), _ffn_params(t.rng, 4, 6))


@hidden("ffn_backward")
def ffn_gradient_check_single_token(t):
    """N = 1, D = 3, F = 5"""
    _ffn_grad_check(t, t.rng.normal(size=(1, 3)), _ffn_params(t.rng, 3, 5))


# -- Part 4: the block ----------------------------------------------------------------------------------------------

@hidden("transformer_block_forward")
def random_parameters_pre_ln(t):
    """(2, 5, 8), H = 2, F = 12, no mask: pre-LN with both residuals"""
    X, params = t.rng.normal(size=(2, 5, 8)) * 2 + 1, _block_params(t.rng, 8, 12)
    t.agrees("transformer_block_forward", X, params, 2, pick=_out,
             what="the output of transformer_block_forward", candidates=t.data("attention_block_suspects", X, params, 2, None))


@hidden("transformer_block_forward")
def block_causal_mask_and_future_tokens(t):
    """(2, 6, 8), H = 4, causal mask; changing future tokens leaves earlier outputs unchanged"""
    T = 6
    X, params = t.rng.normal(size=(2, T, 8)), _block_params(t.rng, 8, 10)
    causal = np.tril(np.ones((T, T), dtype=bool))
    t.agrees("transformer_block_forward", X, params, 4, causal, pick=_out,
             what="the output of transformer_block_forward (causal mask)",
             candidates=t.data("attention_block_suspects", X, params, 4, causal))

    def run(Z):
        return t.array(t.part(t.call("transformer_block_forward", Z, params, 4, causal), _out,
                              "transformer_block_forward"), "the output of transformer_block_forward")
    _future_invariance(t, run, X, t.rng, "transformer_block_forward with a causal mask",
                       "the mask is not passed on to the attention.")


@hidden("transformer_block_forward")
def padding_mask(t):
    """(3, 4, 6), H = 2, an (N, 1, 1, T) padding mask"""
    X, params = t.rng.normal(size=(3, 4, 6)), _block_params(t.rng, 6, 9)
    mask = _padding_mask(t.rng, 3, 4)
    t.agrees("transformer_block_forward", X, params, 2, mask, pick=_out,
             what="the output of transformer_block_forward (padding mask)",
             candidates=t.data("attention_block_suspects", X, params, 2, mask))


@hidden("transformer_block_backward")
def block_gradient_check_with_a_causal_mask(t):
    """dX and all sixteen gradients, (2, 4, 6), H = 2, F = 5, causal mask; dbk = 0"""
    _block_grad_check(t, 2, 4, 6, 2, 5, np.tril(np.ones((4, 4), dtype=bool)))


@hidden("transformer_block_backward")
def block_gradient_check_single_sequence(t):
    """N = 1, (1, 3, 4), H = 1, F = 7, no mask"""
    _block_grad_check(t, 1, 3, 4, 1, 7)


# -- Part 5: positions and embeddings -----------------------------------------------------------------------------

@hidden("positional_encoding")
def other_sizes(t):
    """T = 7, D = 10 and T = 1, D = 6"""
    t.agrees("positional_encoding", 7, 10, candidates=t.data("attention_positional_encoding_suspects", 7, 10))
    t.agrees("positional_encoding", 1, 6)


@hidden("embedding_forward")
def two_dimensional_ids_with_repeats(t):
    """(2, 5) ids with repeats and unused rows; 1-D ids"""
    E = t.rng.normal(size=(7, 3))
    ids = np.array([[0, 3, 3, 6, 1], [6, 6, 2, 0, 3]])
    t.agrees("embedding_forward", ids, E, pick=_out, what="the output of embedding_forward")
    t.agrees("embedding_forward", np.array([4]), E, pick=_out, what="the output of embedding_forward")


@hidden("embedding_backward")
def repeated_ids_accumulate(t):
    """(2, 5) ids with repeats: a gradient check"""
    _embedding_check(t, np.array([[0, 3, 3, 6, 1], [6, 6, 2, 0, 3]]), t.rng.normal(size=(7, 3)))


@hidden("embedding_backward")
def every_id_the_same(t):
    """all eight positions hold the same id"""
    _embedding_check(t, np.full((2, 4), 2), t.rng.normal(size=(5, 4)))


# -- Part 6: training --------------------------------------------------------------------------------------------

@hidden("train_sequence_model")
def reaches_95_percent_within_the_budget(t):
    """fresh reversal data (T = 8, 10 tokens; T = 6, 7 tokens): >= 95% validation token accuracy within 30 s each"""
    for T, vocab, seed in ((8, 10, 2024_11), (6, 7, 77)):
        accuracy, seconds, need, budget = _train_and_measure(t, T, vocab, seed)
        t.require(accuracy >= need, f"validation token accuracy {accuracy:.1%} on reversal with T = {T} and {vocab} tokens; "
                  f"at least {need:.0%} is needed.",
                  cause="a wrong gradient, no positional encoding (the block alone cannot tell positions apart), "
                        "T or the vocabulary hard-coded, or too few steps.",
                  hint="run every hidden check above; add positional_encoding(T, D) to the embeddings; read T and "
                       "the vocabulary from the data.")
        t.require(seconds <= budget, f"training took {seconds:.1f} s on reversal with T = {T}; the budget is {budget:.0f} s.",
                  hint="vectorize over the batch and the heads; fewer steps or a smaller model.")


@hidden("train_sequence_model")
def randomness_only_from_the_rng_given(t):
    """a small reversal task, three runs: rngs seeded alike train alike, rngs seeded differently do not"""
    data_rng = np.random.default_rng(5)
    X_train, Y_train = _reversal(data_rng, 64, 5, 6)
    X_val, Y_val = _reversal(data_rng, 16, 5, 6)
    # 3 steps (config["steps"], which the contract names): every draw, the initialization's and the first batches',
    # is made by then, and the full default run three times over would only repeat them
    t.draws_only_from_rng("train_sequence_model", lambda rng: _losses_of(t, "train_sequence_model", t.call(
        "train_sequence_model", X_train, Y_train, X_val, Y_val, rng, steps=3)), hint=TRAINING_FROM_RNG)


# -- Part 7: a tiny GPT -----------------------------------------------------------------------------------------

#: A text the notebook never shows (self-written for the course): train_char_lm is re-trained on it.
HELD_OUT_TEXT = (
    'the baker of the village got up before the sun, every day of the year. she lit the oven, and while '
    "it grew hot she mixed flour, water, salt and a little of yesterday's dough in a wide wooden bowl. "
    'the dough was slow and patient. it rose in the warm corner by the oven, and the baker shaped it into'
    ' long loaves and round loaves and small rolls for the children. when the loaves went into the oven '
    'the smell of bread went out of the window and down the street, and one by one the windows of the '
    'village lit up. people said that they did not need a clock: they woke when the bread was baking. in '
    'the summer the baker made buns with raisins, and in the winter she made a dark heavy bread with '
    'seeds that kept for a week. she never wrote anything down. the recipes were in her hands, she said, '
    'and her hands remembered them even when she did not.'
)

#: The phrase the hidden check memorises and decodes greedily (3 characters determine the next one).
HIDDEN_PHRASE = "the lamp was old. it turned slowly. "
#: A short phrase for the three short runs of the rng check.
PHRASE_FOR_RNG = "the keeper counted the stairs. "
#: Training budget of train_char_lm with its default settings, seconds on one core, and the loss it must reach.
CHAR_LM_BUDGET, CHAR_LM_LOSS = 20.0, 2.0


def _greedy_variant(table, prompt, n_new, kind):
    """Greedy decoding with a BigramModel of table (V, V), as a mistaken student would write it.

    kind: "batch_axis" (argmax over the sequences), "position_axis" (argmax over the positions) or
    "first_position" (the logits of the first position instead of the last).
    Returns: ids (N, T0 + n_new).
    """
    ids = np.array(prompt)
    for _ in range(n_new):
        logits = np.asarray(table)[ids]
        if kind == "batch_axis":
            next_ids = np.argmax(logits[:, -1, :], axis=0)
        elif kind == "position_axis":
            next_ids = np.argmax(logits, axis=1)[:, -1]
        else:
            next_ids = np.argmax(logits[:, 0, :], axis=-1)
        ids = np.concatenate([ids, next_ids[:, None]], axis=1)
    return ids


@generates("attention_generate_greedy_expected")
def generate_greedy_expected(source, table, prompt, n_new, context):
    """The reference generate_greedy with a BigramModel of table (V, V) reading at most `context` tokens (None: all):
    ids (N, T0 + n_new)."""
    args = (BigramModel(table, context), prompt, n_new) + (() if context is None else (context,))
    return source.function("generate_greedy")(*args)


@generates("attention_generate_greedy_suspects")
def generate_greedy_suspects(source, table, prompt, n_new, context):
    """Mistaken greedy decodings with a BigramModel of table (V, V): {mistake: ids (N, T0 + n_new)}."""
    out = {"argmax over the positions (axis=1): the next token is the argmax over the vocabulary, the last axis, of "
           "the last position's logits, logits_fn(ids)[:, -1, :].": _greedy_variant(table, prompt, n_new, "position_axis"),
           "the logits of the first position: the next token comes from the last position, logits_fn(ids)[:, -1, :].":
               _greedy_variant(table, prompt, n_new, "first_position")}
    if len(prompt) == len(table):  # otherwise that argmax has the wrong shape, and the shape check says so
        out["argmax over the sequences (axis=0): take the argmax over the vocabulary, the last axis "
            "(np.argmax(logits[:, -1, :], axis=-1)), one token per sequence."] = \
            _greedy_variant(table, prompt, n_new, "batch_axis")
    return out


def _sampling_distribution(row, temperature, top_k, keep=None):
    """softmax(row / temperature) over the tokens `keep` (default: the top_k largest of row, or all): (V,)."""
    row = np.asarray(row, dtype=np.float64)
    if keep is None:
        keep = np.argsort(row)[::-1][:top_k] if top_k is not None else np.arange(len(row))
    scaled = np.full(len(row), -np.inf)
    scaled[keep] = row[keep] / temperature
    return _stable_softmax(scaled)


@generates("attention_sampling_probabilities")
def sampling_probabilities(source, row, temperature, top_k):
    """The distribution sample must draw from for one row of logits (V,), and those of named mistakes.

    Returns:
      {"expected": (V,) probabilities, "suspects": {mistake: (V,) probabilities}}, suspects that differ from it only.
    """
    expected = _sampling_distribution(row, temperature, top_k)
    order = np.argsort(row)[::-1]
    suspects = {"the temperature has no effect: it must divide the logits BEFORE the softmax (softmax(logits / "
                "temperature)); dividing the probabilities by it changes nothing once they are renormalized.":
                    _sampling_distribution(row, 1.0, top_k),
                "the logits are multiplied by the temperature: divide them, softmax(logits / temperature).":
                    _sampling_distribution(row, 1.0 / temperature, top_k)}
    if top_k is not None:
        suspects["top_k is ignored: set every logit below the k-th largest to -inf before the softmax."] = \
            _sampling_distribution(row, temperature, None)
        suspects["top-k keeps k + 1 tokens: the threshold is the k-th largest logit, np.sort(logits, axis=-1)[:, -top_k]."] = \
            _sampling_distribution(row, temperature, None, keep=order[:top_k + 1])
        suspects["top-k keeps the k LEAST likely tokens: keep the k largest logits."] = \
            _sampling_distribution(row, temperature, None, keep=order[::-1][:top_k])
    return {"expected": expected,
            "suspects": {k: v for k, v in suspects.items() if not np.allclose(v, expected, atol=0.02)}}


# -- train_char_lm --------------------------------------------------------------------------------------------------

def _held_out_ids():
    """HELD_OUT_TEXT as ids in its own sorted character vocabulary: (ids (n,), V, unigram entropy in nats)."""
    vocab = sorted(set(HELD_OUT_TEXT))
    ids = np.array([vocab.index(c) for c in HELD_OUT_TEXT], dtype=np.int64)
    shares = np.bincount(ids) / len(ids)
    return ids, len(vocab), float(-np.sum(shares * np.log(shares)))


@hidden("train_char_lm")
def learns_a_held_out_text_within_the_budget(t):
    """trained on a text the notebook never shows: a loss of at most 2.0 nats per character within 20 s, causal"""
    ids, V, unigram = _held_out_ids()
    logits_fn, _, seconds = _train_char_lm(t, ids, V, 2026)
    windows = _windows(ids, 17, 5)
    _sees_no_future(t, logits_fn, windows[:4, :-1], V, seed=1)
    loss = _text_loss(logits_fn(windows[:, :-1]), windows[:, 1:])
    t.require(loss <= CHAR_LM_LOSS,
              f"after training on a held-out text of {len(ids)} characters ({V} distinct), the model's loss on it is "
              f"{loss:.3f} nats per character; at most {CHAR_LM_LOSS} is needed (a model that ignores the context "
              f"cannot go below the text's unigram entropy, {unigram:.3f}).",
              cause="the targets are not the inputs shifted by one, a wrong gradient, no positional encoding, or too "
                    "few steps or too small a learning rate in the default settings.",
              hint="windows of context + 1 ids, inputs windows[:, :-1], targets windows[:, 1:]; run every hidden "
                   "check above first.")
    t.require(seconds <= CHAR_LM_BUDGET,
              f"training took {seconds:.1f} s; the budget is {CHAR_LM_BUDGET:.0f} s on one core.",
              hint="vectorize over the batch; fewer steps or a smaller model in the default settings.")


@hidden("train_char_lm")
def greedy_decoding_of_a_memorised_string(t):
    """trained on a repeated phrase: the reference's greedy decoding with the model writes the phrase on"""
    ids, V = _phrase_ids(HIDDEN_PHRASE, 6)
    logits_fn, _, _ = _train_char_lm(t, ids, V, 99)
    n_new = len(HIDDEN_PHRASE)
    got = t.ref("generate_greedy")(logits_fn, ids[None, :8], n_new, 16)[0]
    vocab = sorted(set(HIDDEN_PHRASE))
    t.require(np.array_equal(got, ids[:8 + n_new]),
              f"greedy decoding from {''.join(vocab[i] for i in ids[:8])!r} with the trained model wrote "
              f"{''.join(vocab[i] for i in got)!r}, not the phrase it was trained on "
              f"({(HIDDEN_PHRASE * 2)[:8 + n_new]!r}).",
              cause="the model does not memorise a short repeated phrase: the targets are not the inputs shifted by "
                    "one, or logits_fn does not run the trained parameters.",
              hint="logits_fn must use the parameters after the last step (a closure over the final params).")


@hidden("train_char_lm")
def randomness_only_from_the_rng_given_to_train_char_lm(t):
    """three runs of 3 steps: rngs seeded alike train alike, rngs seeded differently do not"""
    ids, V = _phrase_ids(PHRASE_FOR_RNG, 3)
    t.draws_only_from_rng("train_char_lm", lambda rng: _losses_of(t, "train_char_lm", t.call(
        "train_char_lm", ids, V, rng, steps=3)), hint=TRAINING_FROM_RNG)



# -- generate_greedy and sample -------------------------------------------------------------------------------------

def _random_table(rng, V, margin=0.3):
    """A (V, V) table of logits whose row maxima lead the rest by at least `margin` (so the argmax is clear)."""
    table = rng.normal(size=(V, V))
    runner_up = np.sort(table, axis=1)[:, -2]
    table[np.arange(V), np.argmax(table, axis=1)] = runner_up + margin + rng.random(V)
    return table


@hidden("generate_greedy")
def random_models_and_prompts(t):
    """V = 6 with six prompts of 3 tokens, then a single prompt: the last position's argmax at every step"""
    table = _random_table(t.rng, 6)
    _greedy_check(t, table, t.rng.integers(0, 6, size=(6, 3)), 8)
    _greedy_check(t, table, t.rng.integers(0, 6, size=(1, 2)), 4)


@hidden("generate_greedy")
def greedy_reads_only_the_last_context_tokens(t):
    """a model that reads at most 3 tokens, a prompt of 3 and 5 new tokens with context=3"""
    _greedy_check(t, _random_table(t.rng, 5), t.rng.integers(0, 5, size=(2, 3)), 5, context=3)


@hidden("sample")
def temperature_towards_zero_is_greedy(t):
    """temperature 1e-3 and top_k = 1 give the greedy decoding"""
    table = _random_table(t.rng, 5)
    prompt = t.rng.integers(0, 5, size=(5, 2))
    expected = t.data("attention_generate_greedy_expected", table, prompt, 6, None)
    for kwargs in ({"temperature": 1e-3}, {"top_k": 1}):
        what = "sample(..., " + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"
        got = t.call("sample", BigramModel(table), prompt, 6, np.random.default_rng(3), **kwargs)
        t.require(isinstance(got, np.ndarray) and got.shape == expected.shape and np.array_equal(got, expected),
                  f"{what} is not the greedy decoding: with the temperature near 0 (or a single token kept) every "
                  "draw must be the most likely token.",
                  expected=np.array2string(expected), got=np.array2string(np.asarray(got)),
                  cause="the temperature does not divide the logits before the softmax: near 0 it must make the "
                        "largest logit take all the probability." if "temperature" in kwargs else
                        "top_k = 1 must keep only the largest logit: the threshold is the k-th largest, "
                        "np.sort(logits, axis=-1)[:, -top_k].",
                  hint="p = softmax(logits / temperature) after setting the logits below the k-th largest to -inf.")


@hidden("sample")
def top_k_never_leaves_the_k_most_likely(t):
    """top_k = 3 at temperature 1 and top_k = 2 at temperature 2: only the k most likely, in their proportions"""
    row = np.array([0.3, 1.1, -0.6, 0.9, 0.0, -0.2])
    _frequencies_check(t, row, temperature=1.0, top_k=3, rng_seed=1)
    _frequencies_check(t, row, temperature=2.0, top_k=2, rng_seed=2)


@hidden("sample")
def temperature_flattens_and_sharpens(t):
    """temperature 2 and 0.7: frequencies of 4000 draws follow softmax(logits / temperature)"""
    _frequencies_check(t, SAMPLING_ROW, temperature=2.0, rng_seed=4)
    _frequencies_check(t, SAMPLING_ROW[::-1].copy(), temperature=0.7, rng_seed=5)


@hidden("sample")
def sampling_draws_from_the_rng_and_reads_the_context(t):
    """equal seeds agree, other seeds differ; with context=3 only the last 3 tokens reach the model"""
    prompt = t.rng.integers(0, 4, size=(100, 3))
    t.draws_only_from_rng("sample", lambda rng: t.call("sample", BigramModel(MEMORISED), prompt, 4, rng,
                                                       temperature=1.5, top_k=3), hint=SAMPLING_FROM_RNG)
    got = t.call("sample", BigramModel(MEMORISED, 3), prompt[:4], 5, np.random.default_rng(0), context=3)
    t.require(isinstance(got, np.ndarray) and got.shape == (4, 8) and np.array_equal(got[:, :3], prompt[:4]),
              "sample(..., context=3) must return the prompt (4, 3) followed by 5 new tokens, (4, 8).",
              hint="feed the model ids[:, -context:] when context is given.")
