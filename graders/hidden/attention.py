"""Checks for assignment 04_attention.

Visible checks: shapes and small values. Hidden checks: several batch axes, distinct dimensions (Tq != Tk,
d != dv), (T, T) and (N, 1, 1, T) masks, fully masked rows, huge scores, future-token invariance under a causal
mask, gradient checks with random upstream gradients, N = 1, and the training exercise re-trained on fresh data.
Each `candidates` entry names a classic mistake by the output it would produce.
"""
import copy
import time

import numpy as np

from ..checks.gradcheck import input_at, numerical_gradient, with_input
from ..checks.failures import Failure
from ..checks.registry import checks_for

visible, hidden = checks_for("04_attention")

MHA_KEYS = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")
FFN_KEYS = ("W1", "b1", "W2", "b2")
BLOCK_KEYS = ("ln1_gamma", "ln1_beta") + MHA_KEYS + ("ln2_gamma", "ln2_beta") + FFN_KEYS


# -- helpers: inputs -----------------------------------------------------------------------------------------

def _mha_params(rng, D, scale=0.6):
    params = {k: rng.normal(size=(D, D)) * scale for k in ("Wq", "Wk", "Wv", "Wo")}
    params.update({k: rng.normal(size=D) * 0.3 for k in ("bq", "bk", "bv", "bo")})
    return params


def _ffn_params(rng, D, F, scale=0.6):
    return {"W1": rng.normal(size=(D, F)) * scale, "b1": rng.normal(size=F) * 0.3,
            "W2": rng.normal(size=(F, D)) * scale, "b2": rng.normal(size=D) * 0.3}


def _block_params(rng, D, F):
    params = {**_mha_params(rng, D), **_ffn_params(rng, D, F)}
    for name in ("ln1", "ln2"):
        params[name + "_gamma"] = 1.0 + 0.5 * rng.normal(size=D)
        params[name + "_beta"] = 0.5 * rng.normal(size=D)
    return {k: params[k] for k in BLOCK_KEYS}


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


def _sdpa_candidates(Q, K, V, mask, *, with_mask_mistakes=True, with_leak=True):
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
        d = Q.shape[-1]
        added = Q @ np.swapaxes(K, -1, -2) / np.sqrt(d) + np.where(mask, 0.0, -1e9)
        out["masking by adding a finite number (-1e9) to masked scores leaks weight: masked weights must be exactly 0 "
            "(use np.where(mask, scores, -np.inf), and give a query with nothing to attend all-zero weights)."] = \
            (_stable_softmax(added) @ V, _stable_softmax(added))
    return out


def _compare_attention(t, Q, K, V, mask=None, candidates=None, what="scaled_dot_product_attention"):
    """Call the student's scaled_dot_product_attention and compare weights, then out, with the reference."""
    args = (Q, K, V) if mask is None else (Q, K, V, mask)
    ref_out, ref_w = t.ref("scaled_dot_product_attention")(*copy.deepcopy(args))
    result = t.call("scaled_dot_product_attention", *args)
    inputs = t.describe_args(t.ref("scaled_dot_product_attention"), args, {})
    candidates = candidates or {}
    weights = t.close(t.part(result, lambda r: r[1], what), ref_w, f"the weights returned by {what}",
                      inputs=inputs, candidates={k: v[1] for k, v in candidates.items()})
    t.close(t.part(result, lambda r: r[0], what), ref_out, f"the output of {what}", inputs=inputs,
            candidates={k: v[0] for k, v in candidates.items()})
    return weights


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


PARAM_HINT = ("a parameter's gradient has the parameter's shape: sum over every leading axis, e.g. "
              "(dout * x_hat).reshape(-1, D).sum(axis=0).")


def _layer_check(t, forward, backward, args, wrt, unpack, *, kwargs=None, candidates=None, batch=None):
    """Forward values, then every gradient of the backward against centered differences of the reference forward,
    with a random upstream gradient. `candidates(dout)` -> {grad name: {mistake: array}}."""
    kwargs = kwargs or {}
    ref_forward = t.ref(forward)
    result = t.agrees(forward, *args, pick=lambda r: r[0], what=f"the output of {forward}", batch=batch, **kwargs)
    out = t.array(t.part(result, lambda r: r[0], forward), f"the output of {forward}")
    cache = t.part(result, lambda r: r[1], forward)
    dout = t.rng.normal(size=np.shape(out))
    grads = t.part(t.call(backward, dout, cache), unpack, backward)
    suspects = candidates(dout) if candidates else {}
    inputs = f"{forward} inputs: " + t.describe_args(ref_forward, args, kwargs) + "; dout random"
    for name, where in wrt.items():
        original = input_at(args, where)
        loss = lambda value, where=where: float(np.sum(  # noqa: E731
            np.asarray(ref_forward(*with_input(args, where, value), **kwargs)[0]) * dout))
        numerical = numerical_gradient(loss, np.asarray(original, dtype=np.float64))
        if name not in grads:
            raise Failure(f"`{backward}` did not return {name}.", hint=f"return every gradient the docstring of `{backward}` lists.")
        t.gradient(grads[name], numerical, f"{name} from {backward}", batch=batch, inputs=inputs,
                   candidates=suspects.get(name), hint=PARAM_HINT if isinstance(where, tuple) or name in ("dgamma", "dbeta") else None)
    return grads


def _grads_unpack(prefix_keys):
    def unpack(result):
        dX, grads = result
        return {"dX": dX, **{"d" + k: grads[k] for k in prefix_keys}}
    return unpack


def _dbk_is_zero(t, grads, what):
    dbk = t.array(grads["dbk"], f"dbk from {what}")
    t.require(np.shape(dbk) == np.shape(grads["dbq"]) if "dbq" in grads else True, f"dbk from {what} has shape {np.shape(dbk)}.")
    t.require(np.all(np.isfinite(dbk)) and np.max(np.abs(dbk), initial=0.0) < 1e-8,
              f"dbk from {what} should be 0 (up to rounding): got entries as large as {np.max(np.abs(dbk)):.3g}.",
              cause="adding bk to every key shifts all scores of a query's row by the same q·bk, which the softmax "
                    "ignores; a nonzero dbk means dK is wrong (its rows must sum to 0 over the keys).",
              hint="dbk = dK summed over N and T, with dK = dS^T Q / sqrt(d) and dS from the softmax Jacobian.")


# -- Part 1: scaled dot-product attention ---------------------------------------------------------------------

@visible("scaled_dot_product_attention")
def the_worked_example_and_a_causal_mask(t):
    Q = np.array([[1.0, 0.0]])
    K = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    V = np.array([[10.0, 0.0], [0.0, 10.0], [5.0, 5.0]])
    _compare_attention(t, Q, K, V, candidates=_sdpa_candidates(Q, K, V, None))
    rng = np.random.default_rng(0)
    Q, K, V = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 5))
    _compare_attention(t, Q, K, V, np.tril(np.ones((4, 4), dtype=bool)), candidates=_sdpa_candidates(Q, K, V, np.tril(np.ones((4, 4), dtype=bool))))


@hidden("scaled_dot_product_attention")
def batch_axes_and_distinct_sizes(t):
    """batch axes (2, 3), Tq = 5, Tk = 4, d = 3, dv = 6: the 1/sqrt(d) and the softmax over the keys"""
    Q, K, V = t.rng.normal(size=(2, 3, 5, 3)) * 2, t.rng.normal(size=(2, 3, 4, 3)) * 2, t.rng.normal(size=(2, 3, 4, 6))
    weights = _compare_attention(t, Q, K, V, candidates=_sdpa_candidates(Q, K, V, None))
    t.require(np.allclose(weights.sum(axis=-1), 1.0), "the weights of a query do not sum to 1 over the keys.",
              hint="softmax over the last axis (the keys).")
    Q1, K1, V1 = t.rng.normal(size=(1, 7)) * 3, t.rng.normal(size=(3, 7)) * 3, t.rng.normal(size=(3, 2))
    _compare_attention(t, Q1, K1, V1, candidates=_sdpa_candidates(Q1, K1, V1, None))


@hidden("scaled_dot_product_attention")
def causal_and_padding_masks_broadcast(t):
    """a (T, T) causal mask and an (N, 1, 1, T) padding mask broadcast over (N, H, T, T)"""
    N, H, T, d, dv = 2, 3, 5, 4, 6
    Q, K, V = (t.rng.normal(size=(N, H, T, d)) * 1.5, t.rng.normal(size=(N, H, T, d)) * 1.5,
               t.rng.normal(size=(N, H, T, dv)))
    causal = np.tril(np.ones((T, T), dtype=bool))
    _compare_attention(t, Q, K, V, causal, candidates=_sdpa_candidates(Q, K, V, causal))
    padding = np.ones((N, 1, 1, T), dtype=bool)
    padding[0, ..., 3:] = False
    padding[1, ..., 4:] = False
    _compare_attention(t, Q, K, V, padding, candidates=_sdpa_candidates(Q, K, V, padding))


@hidden("scaled_dot_product_attention")
def causal_mask_keeps_the_future_out(t):
    """with a causal mask, changing future keys and values does not move earlier outputs"""
    N, T, d = 2, 6, 3
    Q = t.rng.normal(size=(N, T, d))
    causal = np.tril(np.ones((T, T), dtype=bool))

    def run(KV):
        K, V = KV[..., :d], KV[..., d:]
        return t.array(t.part(t.call("scaled_dot_product_attention", Q, K, V, causal), lambda r: r[0],
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
    weights = _compare_attention(t, Q, K, V, mask, candidates=_sdpa_candidates(Q, K, V, mask))
    t.require(np.all(weights[0, 1] == 0) and np.all(weights[1, 3] == 0),
              "a fully masked query must get weights that are exactly 0.")
    everything = np.zeros((1, 5), dtype=bool)
    _compare_attention(t, Q, K, V, everything, candidates=_sdpa_candidates(Q, K, V, everything, with_mask_mistakes=False))


@hidden("scaled_dot_product_attention")
def huge_scores_do_not_leak_into_masked_keys(t):
    """scores around -1e11: a finite fill value such as -1e9 would hand masked keys all the weight"""
    Q = np.abs(t.rng.normal(size=(2, 3, 4))) * 1e6 + 1e5
    K = -(np.abs(t.rng.normal(size=(2, 5, 4))) * 1e6 + 1e5)
    V = t.rng.normal(size=(2, 5, 3))
    mask = np.ones((2, 3, 5), dtype=bool)
    mask[..., 3:] = False
    weights = _compare_attention(t, Q, K, V, mask,
                                 candidates=_sdpa_candidates(Q, K, V, mask, with_mask_mistakes=False))
    t.require(np.all(weights[..., 3:] == 0), "masked keys got weight.", hint="np.where(mask, scores, -np.inf)")


# -- causal_mask ----------------------------------------------------------------------------------------------

def _require_bool_mask(t, m, T):
    t.require(type(m) is np.ndarray and m.dtype == np.bool_,
              f"causal_mask({T}) must return a bool array, got {type(m).__name__}"
              + (f" of dtype {m.dtype}" if isinstance(m, np.ndarray) else "") + ".",
              hint="np.tril(np.ones((T, T), dtype=bool)).")


def _causal_candidates(T):
    ones = np.ones((T, T))
    return {"np.triu: position i sees the future (j >= i); position i may attend to j <= i: np.tril.": np.triu(ones),
            "the diagonal is missing: a position may attend to itself (np.tril with k=0).": np.tril(ones, -1),
            "one step of the future is visible (np.tril with k=1): use k=0.": np.tril(ones, 1)}


@visible("causal_mask")
def four_positions(t):
    m = t.call("causal_mask", 4)
    _require_bool_mask(t, m, 4)
    t.close(m, t.ref("causal_mask")(4), "causal_mask(4)", candidates=_causal_candidates(4))


@hidden("causal_mask")
def other_lengths(t):
    """T = 7 and T = 1, bool"""
    for T in (7, 1):
        m = t.call("causal_mask", T)
        _require_bool_mask(t, m, T)
        t.close(m, t.ref("causal_mask")(T), f"causal_mask({T})", candidates=_causal_candidates(T))


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

@visible("attention_forward")
def shapes_and_values(t):
    rng = np.random.default_rng(1)
    Q, K, V = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4, 6))
    t.agrees("attention_forward", Q, K, V, pick=lambda r: r[0], what="the output of attention_forward")


@hidden("attention_forward")
def batch_axes_with_a_mask(t):
    """batch axes (2, 3) with a padding mask and a fully masked sequence"""
    Q, K, V = t.rng.normal(size=(2, 3, 4, 5)), t.rng.normal(size=(2, 3, 6, 5)), t.rng.normal(size=(2, 3, 6, 2))
    mask = np.ones((2, 1, 1, 6), dtype=bool)
    mask[0, ..., 2:] = False
    mask[1] = False
    t.agrees("attention_forward", Q, K, V, mask, pick=lambda r: r[0], what="the output of attention_forward",
             candidates={k: (lambda *a, v=v: v) for k, v in _sdpa_candidates(Q, K, V, mask).items()})


def _attention_backward_candidates(Q, K, V, mask):
    ref_w = _attention_variant(Q, K, V, mask)[1]
    def candidates(dout):
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
    return candidates


def _attention_grad_check(t, Q, K, V, mask=None):
    args = [Q, K, V] if mask is None else [Q, K, V, mask]
    _layer_check(t, "attention_forward", "attention_backward", args, {"dQ": 0, "dK": 1, "dV": 2},
                 unpack=lambda r: {"dQ": r[0], "dK": r[1], "dV": r[2]},
                 candidates=_attention_backward_candidates(Q, K, V, mask))


@visible("attention_backward")
def gradient_check_2d(t):
    rng = np.random.default_rng(2)
    _attention_grad_check(t, rng.normal(size=(3, 2)), rng.normal(size=(4, 2)), rng.normal(size=(4, 5)))


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
def gradient_check_single_sequence(t):
    """N = 1, a single query"""
    _attention_grad_check(t, t.rng.normal(size=(1, 1, 4)), t.rng.normal(size=(1, 3, 4)), t.rng.normal(size=(1, 3, 3)))


# -- Part 2: heads ----------------------------------------------------------------------------------------------

def _split_candidates(X, H):
    N, T, D = X.shape
    return {"reshape(N, H, T, D/H) in the wrong order: reshape(N, T, H, D/H) first, then swap axes 1 and 2.":
                X.reshape(N, H, T, D // H),
            "heads take every H-th column (reshape(N, T, D/H, H)): head h owns the contiguous columns h*D/H:(h+1)*D/H.":
                X.reshape(N, T, D // H, H).transpose(0, 3, 1, 2)}


@visible("split_heads")
def two_tokens_two_heads(t):
    X = np.arange(8.0).reshape(1, 2, 4)
    t.agrees("split_heads", X, 2, candidates=_split_candidates(X, 2))


@hidden("split_heads")
def random_inputs_several_head_counts(t):
    """(2, 5, 8) with H = 2, 4 and 1"""
    X = t.rng.normal(size=(2, 5, 8))
    for H in (2, 4, 1):
        t.agrees("split_heads", X, H, candidates=_split_candidates(X, H) if H > 1 else None)


def _merge_candidates(X):
    N, H, T, Dh = X.shape
    return {"reshape(N, T, D) without swapping axes 1 and 2 back first: X.swapaxes(1, 2).reshape(N, T, H*Dh).":
                X.reshape(N, T, H * Dh),
            "the heads are interleaved column by column: head h must occupy the contiguous columns h*Dh:(h+1)*Dh.":
                X.transpose(0, 2, 3, 1).reshape(N, T, H * Dh)}


@visible("merge_heads")
def two_heads_back_together(t):
    X = np.arange(8.0).reshape(1, 2, 2, 2)
    t.agrees("merge_heads", X, candidates=_merge_candidates(X))


@hidden("merge_heads")
def random_inputs_and_the_round_trip(t):
    """random (2, 4, 5, 3); merge_heads(split_heads(X)) == X"""
    X = t.rng.normal(size=(2, 4, 5, 3))
    t.agrees("merge_heads", X, candidates=_merge_candidates(X))
    Y = t.rng.normal(size=(3, 2, 12))
    split = t.ref("split_heads")(Y, 3)
    t.close(t.call("merge_heads", split), Y, "merge_heads(split_heads(X, 3))",
            candidates={"merge_heads does not undo split_heads: swap axes 1 and 2 back, then reshape.": split.reshape(3, 2, 12)})


# -- mha ----------------------------------------------------------------------------------------------------------

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


def _mha_candidates(X, params, H, mask=None):
    out = {"heads split by reshape(N, H, T, D/H): reshape(N, T, H, D/H) then swap axes 1 and 2 (and the mirror to merge).":
               _mha_variant(X, params, H, mask, split_wrong=True),
           "scaled by 1/sqrt(D) instead of each head's width 1/sqrt(D/H).": _mha_variant(X, params, H, mask, scale_full=True)}
    if mask is not None:
        out["the mask is ignored: pass it to the attention of every head."] = _mha_variant(X, params, H, mask, ignore_mask=True)
    return out


@visible("mha_forward")
def small_shapes_and_values(t):
    rng = np.random.default_rng(3)
    X, params = rng.normal(size=(2, 3, 4)), _mha_params(rng, 4)
    t.agrees("mha_forward", X, params, 2, pick=lambda r: r[0], what="the output of mha_forward",
             candidates=_mha_candidates(X, params, 2))


@hidden("mha_forward")
def random_weights_several_heads(t):
    """(2, 5, 8) with H = 2 and H = 4, no mask"""
    X, params = t.rng.normal(size=(2, 5, 8)), _mha_params(t.rng, 8)
    for H in (2, 4):
        t.agrees("mha_forward", X, params, H, pick=lambda r: r[0], what=f"the output of mha_forward (H = {H})",
                 candidates=_mha_candidates(X, params, H))


@hidden("mha_forward")
def causal_mask_and_future_tokens(t):
    """a (T, T) causal mask; changing future tokens leaves earlier outputs unchanged"""
    N, T, D, H = 2, 5, 8, 2
    X, params = t.rng.normal(size=(N, T, D)), _mha_params(t.rng, D)
    causal = np.tril(np.ones((T, T), dtype=bool))
    t.agrees("mha_forward", X, params, H, causal, pick=lambda r: r[0], what="the output of mha_forward (causal mask)",
             candidates=_mha_candidates(X, params, H, causal))

    def run(Z):
        return t.array(t.part(t.call("mha_forward", Z, params, H, causal), lambda r: r[0], "mha_forward"),
                       "the output of mha_forward")
    _future_invariance(t, run, X, t.rng, "mha_forward with a causal mask", "the mask is not passed to every head.")


@hidden("mha_forward")
def padding_mask_and_an_empty_sequence(t):
    """an (N, 1, 1, T) padding mask; a sequence with every key masked outputs bo"""
    N, T, D, H = 3, 4, 6, 3
    X, params = t.rng.normal(size=(N, T, D)), _mha_params(t.rng, D)
    mask = _padding_mask(t.rng, N, T, empty=1)
    result = t.agrees("mha_forward", X, params, H, mask, pick=lambda r: r[0],
                      what="the output of mha_forward (padding mask)", candidates=_mha_candidates(X, params, H, mask))
    out = t.array(t.part(result, lambda r: r[0], "mha_forward"), "the output of mha_forward")
    t.require(np.allclose(out[1], params["bo"]), "a query with nothing to attend must output exactly bo.")


def _mha_grad_check(t, N, T, D, H, mask=None, keys=("Wq", "bq", "Wk", "Wv", "bv", "Wo", "bo")):
    X, params = t.rng.normal(size=(N, T, D)), _mha_params(t.rng, D)
    args = [X, params, H] if mask is None else [X, params, H, mask]
    wrt = {"dX": 0, **{"d" + k: (1, k) for k in keys}}

    def candidates(dout):
        _, (_, _, _, _, attention_cache) = t.ref("mha_forward")(*copy.deepcopy(args))
        dQ, dK, dV = (t.ref("merge_heads")(g) for g in t.ref("attention_backward")(
            t.ref("split_heads")(dout @ params["Wo"].T, H), attention_cache))
        paths = {"q": dQ @ params["Wq"].T, "k": dK @ params["Wk"].T, "v": dV @ params["Wv"].T}
        return {"dX": {"dX from the query path only: X feeds Q, K and V, so dX is the sum of three paths.": paths["q"],
                       "dX from the value path only: X feeds Q, K and V, so dX is the sum of three paths.": paths["v"],
                       "dX misses the key path: add dK @ Wk.T.": paths["q"] + paths["v"],
                       "dX misses the query path: add dQ @ Wq.T.": paths["k"] + paths["v"]}}
    grads = _layer_check(t, "mha_forward", "mha_backward", args, wrt, unpack=_grads_unpack(MHA_KEYS),
                         candidates=candidates)
    _dbk_is_zero(t, grads, "mha_backward")


@visible("mha_backward")
def gradient_check_small(t):
    _mha_grad_check(t, 1, 3, 4, 2)


@hidden("mha_backward")
def gradient_check_with_a_causal_mask(t):
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

def _ln(X, gamma, beta, eps=1e-5, axis=-1, ddof=0, eps_outside=False):
    mu = X.mean(axis=axis, keepdims=True)
    var = X.var(axis=axis, keepdims=True, ddof=ddof)
    return gamma * (X - mu) / ((np.sqrt(var) + eps) if eps_outside else np.sqrt(var + eps)) + beta


def _ln_candidates(X, gamma, beta, eps=1e-5):
    out = {"normalized over the unbiased variance (ddof=1): layer norm divides by D (np.mean((X - mu)**2)).":
               _ln(X, gamma, beta, eps, ddof=1),
           "eps added outside the square root: divide by np.sqrt(var + eps).": _ln(X, gamma, beta, eps, eps_outside=True)}
    for axis in range(X.ndim - 1):
        out[f"normalized over axis {axis} (that is batch norm): layer norm normalizes each token over its features, "
            "the last axis."] = _ln(X, gamma, beta, eps, axis=axis)
    if eps != 1e-5:
        out["the eps argument is ignored: use the eps you are given."] = _ln(X, gamma, beta, 1e-5)
    return out


@visible("layernorm_forward")
def the_worked_example(t):
    X = np.array([[1.0, 2.0, 3.0, 6.0], [0.5, -0.5, 1.5, 2.5]])
    gamma, beta = np.array([1.0, 1.0, 1.0, 1.0]), np.zeros(4)
    t.agrees("layernorm_forward", X, gamma, beta, pick=lambda r: r[0], what="the output of layernorm_forward",
             candidates=_ln_candidates(X, gamma, beta))


@hidden("layernorm_forward")
def three_dimensional_input(t):
    """(2, 3, 5) with random gamma and beta: the last axis, the biased variance"""
    X = t.rng.normal(size=(2, 3, 5)) * 3 + 1
    gamma, beta = t.rng.normal(size=5), t.rng.normal(size=5)
    t.agrees("layernorm_forward", X, gamma, beta, pick=lambda r: r[0], what="the output of layernorm_forward",
             candidates=_ln_candidates(X, gamma, beta))
    X4 = t.rng.normal(size=(4, 4)) * 2
    t.agrees("layernorm_forward", X4, gamma[:4], beta[:4], pick=lambda r: r[0], what="the output of layernorm_forward",
             candidates=_ln_candidates(X4, gamma[:4], beta[:4]))


@hidden("layernorm_forward")
def eps_is_inside_the_root_and_respected(t):
    """eps = 0.5 on small-variance rows"""
    X = t.rng.normal(size=(3, 6)) * 0.4
    gamma, beta = t.rng.normal(size=6), t.rng.normal(size=6)
    t.agrees("layernorm_forward", X, gamma, beta, 0.5, pick=lambda r: r[0], what="the output of layernorm_forward",
             candidates=_ln_candidates(X, gamma, beta, 0.5))


@hidden("layernorm_forward")
def constant_rows_and_large_offsets(t):
    """a constant token outputs beta without warnings; an offset of 1e4 is removed"""
    gamma, beta = t.rng.normal(size=4), t.rng.normal(size=4)
    X = np.vstack([np.full(4, 3.0), 1e4 + t.rng.normal(size=4), t.rng.normal(size=4)])
    t.agrees("layernorm_forward", X, gamma, beta, pick=lambda r: r[0], what="the output of layernorm_forward",
             rtol=1e-5, hint="eps inside the square root keeps a zero variance finite: np.sqrt(var + eps).")


def _ln_grad_check(t, X, gamma, beta):
    def candidates(dout):
        mu = X.mean(axis=-1, keepdims=True)
        inv = 1 / np.sqrt(X.var(axis=-1, keepdims=True) + 1e-5)
        return {"dX": {"mean and variance treated as constants: dX needs the two subtracted mean terms "
                       "(dX = (g - mean(g) - x_hat * mean(g * x_hat)) / sigma, g = dout * gamma).": dout * gamma * inv,
                       "only the mean(g) term: the variance also depends on X (subtract x_hat * mean(g * x_hat) too).":
                           (dout * gamma - np.mean(dout * gamma, axis=-1, keepdims=True)) * inv}}
    _layer_check(t, "layernorm_forward", "layernorm_backward", [X, gamma, beta], {"dX": 0, "dgamma": 1, "dbeta": 2},
                 unpack=lambda r: {"dX": r[0], "dgamma": r[1], "dbeta": r[2]}, candidates=candidates)


@visible("layernorm_backward")
def gradient_check_2d(t):
    rng = np.random.default_rng(4)
    _ln_grad_check(t, rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=4))


@hidden("layernorm_backward")
def gradient_check_3d(t):
    """(2, 3, 5): dgamma and dbeta summed over both leading axes"""
    _ln_grad_check(t, t.rng.normal(size=(2, 3, 5)) * 2, t.rng.normal(size=5), t.rng.normal(size=5))


@hidden("layernorm_backward")
def gradient_check_single_token(t):
    """N = 1: one token of width 6"""
    _ln_grad_check(t, t.rng.normal(size=(1, 6)), t.rng.normal(size=6), t.rng.normal(size=6))


# -- ffn ---------------------------------------------------------------------------------------------------------

def _ffn_variant(X, params, act):
    return act(X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]


def _ffn_candidates(X, params):
    import math
    erf = np.vectorize(math.erf)
    return {"ReLU instead of GELU: use the given gelu.": _ffn_variant(X, params, lambda z: np.maximum(z, 0)),
            "the exact erf GELU: the contract uses the tanh approximation (the given gelu).":
                _ffn_variant(X, params, lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2)))),
            "b2 is missing: out = gelu(X @ W1 + b1) @ W2 + b2.":
                _ffn_variant(X, params, lambda z: 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))) - params["b2"]}


@visible("ffn_forward")
def the_worked_example_and_shapes(t):
    params = {"W1": np.array([[1.0, -1.0]]), "b1": np.zeros(2), "W2": np.array([[1.0], [1.0]]), "b2": np.zeros(1)}
    t.agrees("ffn_forward", np.array([[2.0]]), params, pick=lambda r: r[0], what="the output of ffn_forward",
             candidates=_ffn_candidates(np.array([[2.0]]), params))
    rng = np.random.default_rng(5)
    X, params = rng.normal(size=(3, 4)), _ffn_params(rng, 4, 6)
    t.agrees("ffn_forward", X, params, pick=lambda r: r[0], what="the output of ffn_forward",
             candidates=_ffn_candidates(X, params))


@hidden("ffn_forward")
def three_dimensional_input(t):
    """(2, 3, 4) with F = 7: the tanh GELU and both biases"""
    X, params = t.rng.normal(size=(2, 3, 4)) * 2, _ffn_params(t.rng, 4, 7)
    t.agrees("ffn_forward", X, params, pick=lambda r: r[0], what="the output of ffn_forward",
             candidates=_ffn_candidates(X, params))


def _ffn_grad_check(t, X, params):
    def candidates(dout):
        pre = X @ params["W1"] + params["b1"]
        gelu = t.ref("gelu")
        return {"dX": {"the GELU derivative is missing (gelu(h) used instead of gelu_grad(h)).":
                       ((dout @ params["W2"].T) * gelu(pre)) @ params["W1"].T,
                       "the GELU derivative is missing: multiply by gelu_grad(X @ W1 + b1).":
                       (dout @ params["W2"].T) @ params["W1"].T}}
    _layer_check(t, "ffn_forward", "ffn_backward", [X, params],
                 {"dX": 0, **{"d" + k: (1, k) for k in FFN_KEYS}}, unpack=_grads_unpack(FFN_KEYS), candidates=candidates)


@visible("ffn_backward")
def gradient_check_2d(t):
    rng = np.random.default_rng(6)
    _ffn_grad_check(t, rng.normal(size=(3, 4)), _ffn_params(rng, 4, 5))


@hidden("ffn_backward")
def gradient_check_3d(t):
    """(2, 3, 4) with F = 6: weight gradients summed over both leading axes"""
    _ffn_grad_check(t, t.rng.normal(size=(2, 3, 4)), _ffn_params(t.rng, 4, 6))


@hidden("ffn_backward")
def gradient_check_single_token(t):
    """N = 1, D = 3, F = 5"""
    _ffn_grad_check(t, t.rng.normal(size=(1, 3)), _ffn_params(t.rng, 3, 5))


# -- Part 4: the block ----------------------------------------------------------------------------------------------

def _block_variant(X, params, H, mask, kind):
    ln = _ln
    mha = lambda Z: _mha_variant(Z, {k: params[k] for k in MHA_KEYS}, H, mask)  # noqa: E731
    ffn = lambda Z: _ffn_variant(Z, params, lambda z: 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3))))  # noqa: E731
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


def _block_candidates(X, params, H, mask=None):
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


@visible("transformer_block_forward")
def small_block(t):
    rng = np.random.default_rng(7)
    X, params = rng.normal(size=(1, 3, 4)), _block_params(rng, 4, 8)
    t.agrees("transformer_block_forward", X, params, 2, pick=lambda r: r[0],
             what="the output of transformer_block_forward", candidates=_block_candidates(X, params, 2))


@hidden("transformer_block_forward")
def random_parameters_pre_ln(t):
    """(2, 5, 8), H = 2, F = 12, no mask: pre-LN with both residuals"""
    X, params = t.rng.normal(size=(2, 5, 8)) * 2 + 1, _block_params(t.rng, 8, 12)
    t.agrees("transformer_block_forward", X, params, 2, pick=lambda r: r[0],
             what="the output of transformer_block_forward", candidates=_block_candidates(X, params, 2))


@hidden("transformer_block_forward")
def causal_mask_and_future_tokens(t):
    """(2, 6, 8), H = 4, causal mask; changing future tokens leaves earlier outputs unchanged"""
    T = 6
    X, params = t.rng.normal(size=(2, T, 8)), _block_params(t.rng, 8, 10)
    causal = np.tril(np.ones((T, T), dtype=bool))
    t.agrees("transformer_block_forward", X, params, 4, causal, pick=lambda r: r[0],
             what="the output of transformer_block_forward (causal mask)", candidates=_block_candidates(X, params, 4, causal))

    def run(Z):
        return t.array(t.part(t.call("transformer_block_forward", Z, params, 4, causal), lambda r: r[0],
                              "transformer_block_forward"), "the output of transformer_block_forward")
    _future_invariance(t, run, X, t.rng, "transformer_block_forward with a causal mask",
                       "the mask is not passed on to the attention.")


@hidden("transformer_block_forward")
def padding_mask(t):
    """(3, 4, 6), H = 2, an (N, 1, 1, T) padding mask"""
    X, params = t.rng.normal(size=(3, 4, 6)), _block_params(t.rng, 6, 9)
    mask = _padding_mask(t.rng, 3, 4)
    t.agrees("transformer_block_forward", X, params, 2, mask, pick=lambda r: r[0],
             what="the output of transformer_block_forward (padding mask)", candidates=_block_candidates(X, params, 2, mask))


def _block_grad_check(t, N, T, D, H, F, mask=None):
    X, params = t.rng.normal(size=(N, T, D)), _block_params(t.rng, D, F)
    args = [X, params, H] if mask is None else [X, params, H, mask]
    wrt = {"dX": 0, **{"d" + k: (1, k) for k in BLOCK_KEYS if k != "bk"}}

    def candidates(dout):
        ref = t.ref
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
    grads = _layer_check(t, "transformer_block_forward", "transformer_block_backward", args, wrt,
                         unpack=_grads_unpack(BLOCK_KEYS), candidates=candidates)
    _dbk_is_zero(t, grads, "transformer_block_backward")


@visible("transformer_block_backward")
def gradient_check_small(t):
    _block_grad_check(t, 1, 3, 4, 2, 6)


@hidden("transformer_block_backward")
def gradient_check_with_a_causal_mask(t):
    """dX and all sixteen gradients, (2, 4, 6), H = 2, F = 5, causal mask; dbk = 0"""
    _block_grad_check(t, 2, 4, 6, 2, 5, np.tril(np.ones((4, 4), dtype=bool)))


@hidden("transformer_block_backward")
def gradient_check_single_sequence(t):
    """N = 1, (1, 3, 4), H = 1, F = 7, no mask"""
    _block_grad_check(t, 1, 3, 4, 1, 7)


# -- Part 5: positions and embeddings -----------------------------------------------------------------------------

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


def _pe_candidates(T, D):
    return {"sin and cos swapped: column 2i is the sin, column 2i+1 the cos.": _pe_variant(T, D, "swapped"),
            "[sin | cos] in two halves: interleave them (pe[:, 0::2] = sin, pe[:, 1::2] = cos).": _pe_variant(T, D, "halves"),
            "the exponent is i/D: it is 2i/D, with 2i the even column index (10000 ** (2i / D)).": _pe_variant(T, D, "exponent"),
            "positions start at 1: t runs from 0 to T-1.": _pe_variant(T, D, "from_one")}


@visible("positional_encoding")
def three_positions_width_four(t):
    t.agrees("positional_encoding", 3, 4, candidates=_pe_candidates(3, 4))


@hidden("positional_encoding")
def other_sizes(t):
    """T = 7, D = 10 and T = 1, D = 6"""
    t.agrees("positional_encoding", 7, 10, candidates=_pe_candidates(7, 10))
    t.agrees("positional_encoding", 1, 6)


@visible("embedding_forward")
def the_worked_example(t):
    E = np.array([[0.1, 0.2], [1.0, -1.0], [3.0, 4.0], [-2.0, 0.5]])
    t.agrees("embedding_forward", np.array([2, 0, 2]), E, pick=lambda r: r[0], what="the output of embedding_forward")


@hidden("embedding_forward")
def two_dimensional_ids_with_repeats(t):
    """(2, 5) ids with repeats and unused rows; 1-D ids"""
    E = t.rng.normal(size=(7, 3))
    ids = np.array([[0, 3, 3, 6, 1], [6, 6, 2, 0, 3]])
    t.agrees("embedding_forward", ids, E, pick=lambda r: r[0], what="the output of embedding_forward")
    t.agrees("embedding_forward", np.array([4]), E, pick=lambda r: r[0], what="the output of embedding_forward")


def _overwritten(ids, dout, shape):
    dE = np.zeros(shape)
    dE[ids] += dout
    return dE


def _embedding_check(t, ids, E):
    def candidates(dout):
        return {"dE": {"dE[ids] += dout overwrites repeated ids instead of accumulating them: use np.add.at(dE, ids, dout).":
                       _overwritten(ids, dout, E.shape)}}
    _layer_check(t, "embedding_forward", "embedding_backward", [ids, E], {"dE": 1},
                 unpack=lambda r: {"dE": r}, candidates=candidates)


@visible("embedding_backward")
def the_worked_example_with_a_repeated_id(t):
    E = np.array([[0.1, 0.2], [1.0, -1.0], [3.0, 4.0], [-2.0, 0.5]])
    ids = np.array([2, 0, 2])
    _, cache = t.call("embedding_forward", ids, E)
    dout = np.array([[1.0, 1.0], [5.0, 5.0], [3.0, -1.0]])
    t.close(t.call("embedding_backward", dout, cache), t.ref("embedding_backward")(dout, t.ref("embedding_forward")(ids, E)[1]),
            "embedding_backward(...)",
            candidates={"dE[ids] += dout overwrites repeated ids instead of accumulating them: use np.add.at(dE, ids, dout).":
                        _overwritten(ids, dout, E.shape)})


@hidden("embedding_backward")
def repeated_ids_accumulate(t):
    """(2, 5) ids with repeats: a gradient check"""
    _embedding_check(t, np.array([[0, 3, 3, 6, 1], [6, 6, 2, 0, 3]]), t.rng.normal(size=(7, 3)))


@hidden("embedding_backward")
def every_id_the_same(t):
    """all eight positions hold the same id"""
    _embedding_check(t, np.full((2, 4), 2), t.rng.normal(size=(5, 4)))


# -- Part 6: training --------------------------------------------------------------------------------------------

def _reversal(rng, n, T, vocab):
    X = rng.integers(0, vocab, size=(n, T))
    return X, X[:, ::-1].copy()


def _train_and_measure(t, T, vocab, seed, n_train=2000, n_val=500, budget=30.0, need=0.95):
    data_rng = np.random.default_rng(seed)
    X_train, Y_train = _reversal(data_rng, n_train, T, vocab)
    X_val, Y_val = _reversal(data_rng, n_val, T, vocab)
    start = time.perf_counter()
    result = t.call("train_sequence_model", X_train, Y_train, X_val, Y_val, np.random.default_rng(seed + 1))
    seconds = time.perf_counter() - start
    predict = t.part(result, lambda r: r[0], "train_sequence_model")
    history = t.part(result, lambda r: r[1], "train_sequence_model")
    t.require(callable(predict), "train_sequence_model must return (predict, history) with predict a function.",
              hint="return (predict, history), predict(X) giving the predicted ids (M, T).")
    t.require(isinstance(history, dict) and "loss" in history, 'history must be a dict with at least the key "loss".',
              hint='history = {"loss": [...]}: one training loss per step.')
    losses = t.array(t.part(history, lambda h: h["loss"], "train_sequence_model's history"), 'history["loss"]')
    t.require(losses.ndim == 1 and losses.size >= 2 and np.all(np.isfinite(losses)),
              'history["loss"] must be a list of finite training losses, one per step.')
    t.require(losses[-1] < losses[0], f'the training loss did not go down ({losses[0]:.4g} -> {losses[-1]:.4g}).',
              hint="run the gradient checks of every part first; then check the learning rate.")
    predicted = t.array(_call_predict(t, predict, X_val), "predict(X_val)")
    t.require(predicted.shape == Y_val.shape, f"predict(X_val) has shape {predicted.shape}, expected {Y_val.shape}.",
              hint="return the argmax over the vocabulary of the logits (N, T, V): shape (N, T).")
    accuracy = float(np.mean(predicted == Y_val))
    return accuracy, seconds, need, budget


def _call_predict(t, predict, X):
    """Call the predict function the student returned, through a Tester of its own (warnings, exceptions)."""
    inner = type(t)(t.assignment, t.exercise, {"predict": predict}, t.rng)
    return inner.call("predict", X)


@visible("train_sequence_model")
def learns_to_reverse_a_small_task(t):
    accuracy, seconds, _, _ = _train_and_measure(t, 8, 10, 11, n_train=1000, n_val=200)
    t.note(f"reversal, T = 8, 10 tokens: validation token accuracy {accuracy:.1%} after {seconds:.1f} s")


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
