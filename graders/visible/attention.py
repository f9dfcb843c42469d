"""Visible checks of attention (shipped to students): expected values only through t.ref and t.data.

Shapes and small values, on inputs each check makes itself (literals and seeded generators), so that a
student's kernel answers them from the check data the release carries. Every named mistake's output
(`candidates`) comes from a generator in graders.hidden.attention through `t.data`, and every gradient is
held to centered differences of the reference through `t.backward_check`: this module holds no code that
computes an exercise's output, right or wrong.
"""
import copy
import time

import numpy as np

from ..checks.registry import checks_for

visible, _ = checks_for("04_attention")

MHA_KEYS = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")
FFN_KEYS = ("W1", "b1", "W2", "b2")
BLOCK_KEYS = ("ln1_gamma", "ln1_beta") + MHA_KEYS + ("ln2_gamma", "ln2_beta") + FFN_KEYS


# -- helpers: inputs -----------------------------------------------------------------------------------------

def _mha_params(rng, D, scale=0.6):
    """Random multi-head attention parameters.

    Inputs:
      rng: np.random.Generator; D: model width; scale: std of the weight matrices.
    Returns:
      params: dict with Wq, Wk, Wv, Wo of shape (D, D) and bq, bk, bv, bo of shape (D,).
    """
    params = {k: rng.normal(size=(D, D)) * scale for k in ("Wq", "Wk", "Wv", "Wo")}
    params.update({k: rng.normal(size=D) * 0.3 for k in ("bq", "bk", "bv", "bo")})
    return params


def _ffn_params(rng, D, F, scale=0.6):
    """Random feed-forward parameters.

    Inputs:
      rng: np.random.Generator; D: model width; F: hidden width; scale: std of the weight matrices.
    Returns:
      params: dict with W1 (D, F), b1 (F,), W2 (F, D), b2 (D,).
    """
    return {"W1": rng.normal(size=(D, F)) * scale, "b1": rng.normal(size=F) * 0.3,
            "W2": rng.normal(size=(F, D)) * scale, "b2": rng.normal(size=D) * 0.3}


def _block_params(rng, D, F):
    """Random pre-LN transformer block parameters.

    Inputs:
      rng: np.random.Generator; D: model width; F: hidden width of the feed-forward network.
    Returns:
      params: dict with the sixteen keys of BLOCK_KEYS, in that order: ln1/ln2 gamma and beta (D,), the
        attention parameters of `_mha_params` and the feed-forward parameters of `_ffn_params`.
    """
    params = {**_mha_params(rng, D), **_ffn_params(rng, D, F)}
    for name in ("ln1", "ln2"):
        params[name + "_gamma"] = 1.0 + 0.5 * rng.normal(size=D)
        params[name + "_beta"] = 0.5 * rng.normal(size=D)
    return {k: params[k] for k in BLOCK_KEYS}


def _reversal(rng, n, T, vocab):
    """The reversal task of Part 6.

    Inputs:
      rng: np.random.Generator; n: number of sequences; T: their length; vocab: number of distinct tokens.
    Returns:
      X: int array (n, T) of token ids in [0, vocab); Y: X reversed along the time axis, (n, T).
    """
    X = rng.integers(0, vocab, size=(n, T))
    return X, X[:, ::-1].copy()


# -- helpers: what to compare, and messages --------------------------------------------------------------------

PARAM_HINT = ("a parameter's gradient has the parameter's shape: sum over every leading axis, e.g. "
              "(dout * x_hat).reshape(-1, D).sum(axis=0).")


def _out(result):
    """The `out` of a layer's `(out, cache)` result: the cache is the student's business."""
    return result[0]


def _grads_unpack(prefix_keys):
    """An `unpack` for t.backward_check of a backward returning (dX, grads): {"dX": dX, "d<key>": grads[key]}."""
    def unpack(result):
        dX, grads = result
        return {"dX": dX, **{"d" + k: grads[k] for k in prefix_keys}}
    return unpack


def _param_hints(wrt):
    """Where to look for each parameter gradient of `wrt` (gradient name -> input): PARAM_HINT."""
    return {name: PARAM_HINT for name, where in wrt.items() if isinstance(where, tuple) or name in ("dgamma", "dbeta")}


def _suspects_for_dout(t, generator, *args):
    """`candidates` for t.backward_check: the named mistakes that `generator` gives for these inputs and the
    random upstream gradient, asked through t.data (so a student's kernel reads them from the check data)."""
    return lambda douts: t.data(generator, *args, douts[0])


def _require_bool_mask(t, m, T):
    """causal_mask(T) returned `m`: it must be a bool ndarray (a float mask would multiply, not select)."""
    t.require(type(m) is np.ndarray and m.dtype == np.bool_,
              f"causal_mask({T}) must return a bool array, got {type(m).__name__}"
              + (f" of dtype {m.dtype}" if isinstance(m, np.ndarray) else "") + ".",
              hint="np.tril(np.ones((T, T), dtype=bool)).")


def _dbk_is_zero(t, grads, what):
    """dbk from `what` (grads: the student's gradients by name) must be 0: the softmax ignores a shift of every score."""
    dbk = t.array(grads["dbk"], f"dbk from {what}")
    t.require(np.shape(dbk) == np.shape(grads["dbq"]) if "dbq" in grads else True, f"dbk from {what} has shape {np.shape(dbk)}.")
    t.require(np.all(np.isfinite(dbk)) and np.max(np.abs(dbk), initial=0.0) < 1e-8,
              f"dbk from {what} should be 0 (up to rounding): got entries as large as {np.max(np.abs(dbk)):.3g}.",
              cause="adding bk to every key shifts all scores of a query's row by the same q·bk, which the softmax "
                    "ignores; a nonzero dbk means dK is wrong (its rows must sum to 0 over the keys).",
              hint="dbk = dK summed over N and T, with dK = dS^T Q / sqrt(d) and dS from the softmax Jacobian.")


# -- shared check bodies (the hidden checks call them on other inputs) -------------------------------------------

def _compare_attention(t, Q, K, V, mask=None, candidates=None, what="scaled_dot_product_attention"):
    """Call the student's scaled_dot_product_attention and compare weights, then out, with the reference.

    candidates: {mistake: (out, weights)}, from the generator "attention_sdpa_suspects".
    Returns the student's weights as a float array.
    """
    args = (Q, K, V) if mask is None else (Q, K, V, mask)
    ref_out, ref_w = t.ref("scaled_dot_product_attention")(*copy.deepcopy(args))
    result = t.call("scaled_dot_product_attention", *args)
    inputs = t.describe_args(t.student("scaled_dot_product_attention"), args, {})
    candidates = candidates or {}
    weights = t.close(t.part(result, lambda r: r[1], what), ref_w, f"the weights returned by {what}",
                      inputs=inputs, candidates={k: v[1] for k, v in candidates.items()})
    t.close(t.part(result, _out, what), ref_out, f"the output of {what}", inputs=inputs,
            candidates={k: v[0] for k, v in candidates.items()})
    return weights


def _attention_grad_check(t, Q, K, V, mask=None):
    """dQ, dK, dV of attention_backward against centered differences of the reference attention_forward."""
    args = [Q, K, V] if mask is None else [Q, K, V, mask]
    t.backward_check("attention_forward", "attention_backward", args, {"dQ": 0, "dK": 1, "dV": 2},
                     unpack=lambda r: {"dQ": r[0], "dK": r[1], "dV": r[2]},
                     candidates=_suspects_for_dout(t, "attention_backward_suspects", Q, K, V, mask))


def _mha_grad_check(t, N, T, D, H, mask=None, keys=("Wq", "bq", "Wk", "Wv", "bv", "Wo", "bo")):
    """dX and the parameter gradients of mha_backward on random (N, T, D) inputs with H heads; dbk = 0."""
    X, params = t.rng.normal(size=(N, T, D)), _mha_params(t.rng, D)
    args = [X, params, H] if mask is None else [X, params, H, mask]
    wrt = {"dX": 0, **{"d" + k: (1, k) for k in keys}}
    grads = t.backward_check("mha_forward", "mha_backward", args, wrt, unpack=_grads_unpack(MHA_KEYS),
                             candidates=_suspects_for_dout(t, "attention_mha_backward_suspects", X, params, H, mask),
                             hints=_param_hints(wrt))
    _dbk_is_zero(t, grads, "mha_backward")


def _ln_grad_check(t, X, gamma, beta):
    """dX, dgamma, dbeta of layernorm_backward against centered differences of the reference."""
    wrt = {"dX": 0, "dgamma": 1, "dbeta": 2}
    t.backward_check("layernorm_forward", "layernorm_backward", [X, gamma, beta], wrt,
                     unpack=lambda r: {"dX": r[0], "dgamma": r[1], "dbeta": r[2]},
                     candidates=_suspects_for_dout(t, "attention_layernorm_backward_suspects", X, gamma, beta),
                     hints=_param_hints(wrt))


def _ffn_grad_check(t, X, params):
    """dX and the four parameter gradients of ffn_backward against centered differences of the reference."""
    wrt = {"dX": 0, **{"d" + k: (1, k) for k in FFN_KEYS}}
    t.backward_check("ffn_forward", "ffn_backward", [X, params], wrt, unpack=_grads_unpack(FFN_KEYS),
                     candidates=_suspects_for_dout(t, "attention_ffn_backward_suspects", X, params),
                     hints=_param_hints(wrt))


def _block_grad_check(t, N, T, D, H, F, mask=None):
    """dX and every parameter gradient but dbk of transformer_block_backward on random (N, T, D) inputs; dbk = 0."""
    X, params = t.rng.normal(size=(N, T, D)), _block_params(t.rng, D, F)
    args = [X, params, H] if mask is None else [X, params, H, mask]
    wrt = {"dX": 0, **{"d" + k: (1, k) for k in BLOCK_KEYS if k != "bk"}}
    grads = t.backward_check("transformer_block_forward", "transformer_block_backward", args, wrt,
                             unpack=_grads_unpack(BLOCK_KEYS),
                             candidates=_suspects_for_dout(t, "attention_block_backward_suspects", X, params, H, mask),
                             hints=_param_hints(wrt))
    _dbk_is_zero(t, grads, "transformer_block_backward")


def _train_and_measure(t, T, vocab, seed, n_train=2000, n_val=500, budget=30.0, need=0.95):
    """Train the student's model on fresh reversal data; returns (validation token accuracy, seconds, need, budget)."""
    data_rng = np.random.default_rng(seed)
    X_train, Y_train = _reversal(data_rng, n_train, T, vocab)
    X_val, Y_val = _reversal(data_rng, n_val, T, vocab)
    start = time.perf_counter()
    result = t.call("train_sequence_model", X_train, Y_train, X_val, Y_val, np.random.default_rng(seed + 1))
    seconds = time.perf_counter() - start
    predict = t.part(result, _out, "train_sequence_model")
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
    predicted = t.array(t.call_returned(predict, X_val, name="predict"), "predict(X_val)")
    t.require(predicted.shape == Y_val.shape, f"predict(X_val) has shape {predicted.shape}, expected {Y_val.shape}.",
              hint="return the argmax over the vocabulary of the logits (N, T, V): shape (N, T).")
    accuracy = float(np.mean(predicted == Y_val))
    return accuracy, seconds, need, budget


# -- Part 1: scaled dot-product attention ---------------------------------------------------------------------

@visible("scaled_dot_product_attention")
def the_worked_example_and_a_causal_mask(t):
    Q = np.array([[1.0, 0.0]])
    K = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    V = np.array([[10.0, 0.0], [0.0, 10.0], [5.0, 5.0]])
    _compare_attention(t, Q, K, V, candidates=t.data("attention_sdpa_suspects", Q, K, V, None))
    rng = np.random.default_rng(0)
    Q, K, V = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 5))
    causal = np.tril(np.ones((4, 4), dtype=bool))
    _compare_attention(t, Q, K, V, causal, candidates=t.data("attention_sdpa_suspects", Q, K, V, causal))


@visible("causal_mask")
def four_positions(t):
    m = t.call("causal_mask", 4)
    _require_bool_mask(t, m, 4)
    t.close(m, t.ref("causal_mask")(4), "causal_mask(4)", candidates=t.data("attention_causal_mask_suspects", 4))


@visible("attention_forward")
def shapes_and_values(t):
    rng = np.random.default_rng(1)
    Q, K, V = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4, 6))
    t.agrees("attention_forward", Q, K, V, pick=_out, what="the output of attention_forward")


@visible("attention_backward")
def attention_gradient_check_2d(t):
    """gradient check 2d"""
    rng = np.random.default_rng(2)
    _attention_grad_check(t, rng.normal(size=(3, 2)), rng.normal(size=(4, 2)), rng.normal(size=(4, 5)))


# -- Part 2: heads ----------------------------------------------------------------------------------------------

@visible("split_heads")
def two_tokens_two_heads(t):
    X = np.arange(8.0).reshape(1, 2, 4)
    t.agrees("split_heads", X, 2, candidates=t.data("attention_split_heads_suspects", X, 2))


@visible("merge_heads")
def two_heads_back_together(t):
    X = np.arange(8.0).reshape(1, 2, 2, 2)
    t.agrees("merge_heads", X, candidates=t.data("attention_merge_heads_suspects", X))


@visible("mha_forward")
def small_shapes_and_values(t):
    rng = np.random.default_rng(3)
    X, params = rng.normal(size=(2, 3, 4)), _mha_params(rng, 4)
    t.agrees("mha_forward", X, params, 2, pick=_out, what="the output of mha_forward",
             candidates=t.data("attention_mha_suspects", X, params, 2, None))


@visible("mha_backward")
def mha_gradient_check_small(t):
    """gradient check small"""
    _mha_grad_check(t, 1, 3, 4, 2)


# -- Part 3: layer norm and the feed-forward network --------------------------------------------------------------

@visible("layernorm_forward")
def layernorm_worked_example(t):
    """the worked example"""
    X = np.array([[1.0, 2.0, 3.0, 6.0], [0.5, -0.5, 1.5, 2.5]])
    gamma, beta = np.array([1.0, 1.0, 1.0, 1.0]), np.zeros(4)
    t.agrees("layernorm_forward", X, gamma, beta, pick=_out, what="the output of layernorm_forward",
             candidates=t.data("attention_layernorm_suspects", X, gamma, beta))


@visible("layernorm_backward")
def layernorm_gradient_check_2d(t):
    """gradient check 2d"""
    rng = np.random.default_rng(4)
    _ln_grad_check(t, rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=4))


@visible("ffn_forward")
def the_worked_example_and_shapes(t):
    params = {"W1": np.array([[1.0, -1.0]]), "b1": np.zeros(2), "W2": np.array([[1.0], [1.0]]), "b2": np.zeros(1)}
    X = np.array([[2.0]])
    t.agrees("ffn_forward", X, params, pick=_out, what="the output of ffn_forward",
             candidates=t.data("attention_ffn_suspects", X, params))
    rng = np.random.default_rng(5)
    X, params = rng.normal(size=(3, 4)), _ffn_params(rng, 4, 6)
    t.agrees("ffn_forward", X, params, pick=_out, what="the output of ffn_forward",
             candidates=t.data("attention_ffn_suspects", X, params))


@visible("ffn_backward")
def ffn_gradient_check_2d(t):
    """gradient check 2d"""
    rng = np.random.default_rng(6)
    _ffn_grad_check(t, rng.normal(size=(3, 4)), _ffn_params(rng, 4, 5))


# -- Part 4: the block ----------------------------------------------------------------------------------------------

@visible("transformer_block_forward")
def small_block(t):
    rng = np.random.default_rng(7)
    X, params = rng.normal(size=(1, 3, 4)), _block_params(rng, 4, 8)
    t.agrees("transformer_block_forward", X, params, 2, pick=_out, what="the output of transformer_block_forward",
             candidates=t.data("attention_block_suspects", X, params, 2, None))


@visible("transformer_block_backward")
def block_gradient_check_small(t):
    """gradient check small"""
    _block_grad_check(t, 1, 3, 4, 2, 6)


# -- Part 5: positions and embeddings -----------------------------------------------------------------------------

@visible("positional_encoding")
def three_positions_width_four(t):
    t.agrees("positional_encoding", 3, 4, candidates=t.data("attention_positional_encoding_suspects", 3, 4))


@visible("embedding_forward")
def embedding_worked_example(t):
    """the worked example"""
    E = np.array([[0.1, 0.2], [1.0, -1.0], [3.0, 4.0], [-2.0, 0.5]])
    t.agrees("embedding_forward", np.array([2, 0, 2]), E, pick=_out, what="the output of embedding_forward")


@visible("embedding_backward")
def the_worked_example_with_a_repeated_id(t):
    E = np.array([[0.1, 0.2], [1.0, -1.0], [3.0, 4.0], [-2.0, 0.5]])
    ids = np.array([2, 0, 2])
    _, cache = t.call("embedding_forward", ids, E)
    dout = np.array([[1.0, 1.0], [5.0, 5.0], [3.0, -1.0]])
    # the expected dE: the reference's backward on the reference's own cache of the same inputs
    t.close(t.call("embedding_backward", dout, cache), t.ref("embedding_backward")(dout, t.ref("embedding_forward")(ids, E)[1]),
            "embedding_backward(...)", candidates=t.data("attention_embedding_backward_suspects", ids, E, dout))


# -- Part 6: training --------------------------------------------------------------------------------------------

@visible("train_sequence_model")
def learns_to_reverse_a_small_task(t):
    accuracy, _, _, _ = _train_and_measure(t, 8, 10, 11, n_train=1000, n_val=200)
    # no training time in the note: the report must be the same on every run (the time limit is a hidden check)
    t.note(f"reversal, T = 8, 10 tokens: validation token accuracy {accuracy:.1%}")


# -- Part 7: a tiny GPT -----------------------------------------------------------------------------------------

class BigramModel:
    """A stand-in language model for the generation checks: the logits at a position depend only on its token.

    Inputs (to build one):
      table: (V, V) array; row v holds the logits of the token that follows token v
      max_context: None, or the most tokens one call may read (more raises ValueError, as a model trained on a
        fixed context would be asked to read positions it never saw)
    Calling it:
      ids: int array (N, t) -> logits (N, t, V), with logits[n, i] = table[ids[n, i]]
    """

    def __init__(self, table, max_context=None):
        self.table = np.asarray(table, dtype=np.float64)
        self.max_context = max_context

    def __call__(self, ids):
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"logits_fn reads ids of shape (N, t); got shape {ids.shape}")
        if self.max_context is not None and ids.shape[1] > self.max_context:
            raise ValueError(f"this model reads at most {self.max_context} tokens (its context), got {ids.shape[1]}: "
                             "feed only the last `context` tokens, ids[:, -context:]")
        return self.table[ids]


#: A model that has memorised the cycle 0 -> 2 -> 1 -> 3 -> 0: the largest logit of row v is its successor,
#: every other logit at least 0.4 below it, no two equal.
MEMORISED = np.array([[0.1, -0.5, 1.0, 0.4],
                      [-0.2, 0.3, 0.0, 1.0],
                      [0.2, 1.0, -0.7, 0.5],
                      [1.0, 0.0, 0.6, -0.3]])
#: One row of next-token logits for the sampling checks: no two equal, every token likely enough to be drawn.
SAMPLING_ROW = np.array([1.2, 0.2, -0.4, 0.8, -1.0])
#: The repeated phrase the visible check of train_char_lm memorises (3 characters determine the next one).
PHRASE = "one hundred and twelve stairs. "


def _token_ids(t, got, what: str) -> np.ndarray:
    """The ids a generation function returned, as an int64 array, or a failure saying why they are not ids."""
    t.require(isinstance(got, np.ndarray) and got.dtype.kind in "iu",
              f"{what} must return an int array of token ids, got "
              + (f"an array of dtype {got.dtype}." if isinstance(got, np.ndarray) else f"a {type(got).__name__}."),
              hint="np.concatenate([ids, next_ids[:, None]], axis=1) with ids = np.array(prompt) and next_ids from "
                   "np.argmax or rng: both are ints.")
    return got.astype(np.int64)


def _check_continuation(t, got, prompt, n_new, V, what: str) -> np.ndarray:
    """got (from a generation function) must be (N, T0 + n_new) ids in [0, V) that start with the prompt."""
    ids = _token_ids(t, got, what)
    N, T0 = prompt.shape
    t.require(ids.shape == (N, T0 + n_new), f"{what} has shape {ids.shape}, expected {(N, T0 + n_new)}: the prompt "
              f"(N, T0) = {prompt.shape} followed by {n_new} new tokens.",
              hint="return the whole sequence, prompt included: np.concatenate([ids, next_ids[:, None]], axis=1) at "
                   "every step, with next_ids of shape (N,).")
    t.require(np.array_equal(ids[:, :T0], prompt), f"{what} does not start with the prompt.",
              hint="start from ids = np.array(prompt) and only append.")
    t.require(ids.min() >= 0 and ids.max() < V, f"{what} holds ids outside [0, {V}).",
              cause="an argmax or a draw over the wrong axis gives indices of positions or sequences, not tokens.",
              hint="take the logits of the last position, logits_fn(ids)[:, -1, :] (N, V), and choose over the last axis.")
    return ids


def _greedy_check(t, table, prompt, n_new, context=None):
    """generate_greedy with a BigramModel of `table` against the reference, the named mistakes as candidates."""
    model = BigramModel(table, context)
    args = (model, prompt, n_new) if context is None else (model, prompt, n_new, context)
    what = f"generate_greedy(logits_fn, prompt, {n_new}" + ("" if context is None else f", context={context}") + ")"
    got = _check_continuation(t, t.call("generate_greedy", *args), prompt, n_new, len(table), what)
    t.close(got, t.data("attention_generate_greedy_expected", table, prompt, n_new, context), what,
            inputs=t.describe_args(t.student("generate_greedy"), args, {}),
            candidates=t.data("attention_generate_greedy_suspects", table, prompt, n_new, context))


def _draws(t, row, n, temperature=1.0, top_k=None, rng_seed=0):
    """n next tokens drawn by the student's sample from one row of logits (a BigramModel whose every row is `row`),
    one step from n one-token prompts. Returns an int array (n,)."""
    V = len(row)
    prompt = np.zeros((n, 1), dtype=np.int64)
    kwargs = {"temperature": temperature}
    if top_k is not None:
        kwargs["top_k"] = top_k
    what = f"sample(..., temperature={temperature}" + ("" if top_k is None else f", top_k={top_k}") + ")"
    got = t.call("sample", BigramModel(np.tile(row, (V, 1))), prompt, 1, np.random.default_rng(rng_seed), **kwargs)
    return _check_continuation(t, got, prompt, 1, V, what)[:, -1], what


def _frequencies_check(t, row, temperature=1.0, top_k=None, n=4000, rng_seed=0):
    """The tokens the student's sample draws follow softmax(row / temperature) restricted to the top_k largest.

    Draws n tokens; each frequency must be within 5 standard errors (+ 0.01) of its probability. A mistake
    whose distribution the frequencies do fit is named."""
    draws, what = _draws(t, row, n, temperature, top_k, rng_seed)
    freq = np.bincount(draws, minlength=len(row)) / n
    probs = t.data("attention_sampling_probabilities", row, temperature, top_k)
    expected = probs["expected"]
    if top_k is not None:
        kept = set(np.argsort(row)[::-1][:top_k].tolist())
        outside = sorted(set(draws.tolist()) - kept)
        if outside:
            least = set(np.argsort(row)[:top_k].tolist())
            k_plus_one = int(np.argsort(row)[::-1][top_k])
            cause = ("top-k keeps the k LEAST likely tokens: keep the k largest logits (np.sort(logits)[:, -top_k] is the "
                     "k-th largest) and set the others to -inf." if set(draws.tolist()) <= least else
                     "top-k keeps k + 1 tokens: the threshold is the k-th largest logit, np.sort(logits, axis=-1)[:, -top_k], "
                     "not the (k+1)-th (an off-by-one)." if outside == [k_plus_one] else
                     "tokens outside the k most likely are drawn: set every logit below the k-th largest to -inf before "
                     "the softmax.")
            t.require(False, f"{what} drew tokens {outside}, outside the {top_k} most likely {sorted(kept)}.",
                      cause=cause, hint="kth = np.sort(logits, axis=-1)[:, -top_k][:, None]; "
                                        "logits = np.where(logits >= kth, logits, -np.inf).")
    tolerance = 5 * np.sqrt(np.maximum(expected * (1 - expected), 1e-4) / n) + 0.01
    if np.all(np.abs(freq - expected) <= tolerance):
        return
    named = [mistake for mistake, q in probs["suspects"].items()
             if np.all(np.abs(freq - q) <= 5 * np.sqrt(np.maximum(q * (1 - q), 1e-4) / n) + 0.01)]
    t.require(False, f"the tokens {what} draws do not follow softmax(logits / temperature)"
              + ("" if top_k is None else " over the top_k largest logits") + f" ({n} draws).",
              inputs=f"logits of every row: {np.array2string(row, precision=2)}",
              expected="probabilities " + np.array2string(expected, precision=3),
              got="frequencies " + np.array2string(freq, precision=3),
              cause=named[0] if named else "the logits are not divided by the temperature before the softmax, or the "
                                           "draw does not follow the probabilities.",
              hint="p = softmax(logits / temperature), then rng.choice(V, p=p[n]) for each row n (or compare "
                   "rng.random() with np.cumsum(p)).")


#: where `sample` takes its randomness from, for the message of a check that it uses only its rng
SAMPLING_FROM_RNG = ("draw every random number from the rng argument: rng.choice(V, p=p), rng.random(...), "
                     "rng.integers(...).")


def _phrase_ids(phrase: str, repeats: int):
    """A phrase repeated `repeats` times, as ids in its own sorted character vocabulary: (ids (n,), V)."""
    vocab = sorted(set(phrase))
    return np.array([vocab.index(c) for c in phrase * repeats], dtype=np.int64), len(vocab)


def _train_char_lm(t, ids, V, seed, **kwargs):
    """Run the student's train_char_lm; check the form of what it returns.

    Returns:
      (logits_fn: the student's function, wrapped so that every call is guarded and returns float logits,
       history["loss"] as a float vector, seconds the training took).
    """
    start = time.perf_counter()
    result = t.call("train_char_lm", ids, V, np.random.default_rng(seed), **kwargs)
    seconds = time.perf_counter() - start
    logits_fn = t.part(result, _out, "train_char_lm")
    history = t.part(result, lambda r: r[1], "train_char_lm")
    t.require(callable(logits_fn), "train_char_lm must return (logits_fn, history) with logits_fn a function.",
              hint="return (logits_fn, history), logits_fn(ids) giving the logits (N, t, V) of ids (N, t).")
    t.require(isinstance(history, dict) and "loss" in history, 'history must be a dict with at least the key "loss".',
              hint='history = {"loss": [...]}: one training loss per step.')
    losses = t.array(t.part(history, lambda h: h["loss"], "train_char_lm's history"), 'history["loss"]')
    t.require(losses.ndim == 1 and losses.size >= 1 and np.all(np.isfinite(losses)),
              'history["loss"] must be a list of finite training losses, one per step.')

    def guarded(x):
        logits = t.array(t.call_returned(logits_fn, x, name="logits_fn"), "logits_fn(ids)")
        t.require(logits.shape == x.shape + (V,), f"logits_fn(ids) has shape {logits.shape} for ids of shape {x.shape}; "
                  f"expected {x.shape + (V,)}: one row of {V} logits per position.",
                  hint="the head maps every position's D features to V logits: hidden @ W_out + b_out.")
        return logits
    return guarded, losses, seconds


def _windows(ids, length, stride):
    """Every `stride`-th window of `length` consecutive ids: int array (M, length)."""
    starts = np.arange(0, len(ids) - length + 1, stride)
    return ids[starts[:, None] + np.arange(length)]


def _text_loss(logits, targets) -> float:
    """Mean cross-entropy (nats per token) of logits (..., V) against int targets (...)."""
    flat = logits.reshape(-1, logits.shape[-1])
    shifted = flat - flat.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probs[np.arange(len(flat)), targets.reshape(-1)]))


def _sees_no_future(t, logits_fn, x, V, seed=0):
    """Changing the ids at positions >= cut must leave the logits at every position before cut unchanged."""
    base = logits_fn(x)
    rng = np.random.default_rng(seed)
    T = x.shape[1]
    for cut in (1, T // 2, T - 1):
        changed = x.copy()
        changed[:, cut:] = (changed[:, cut:] + rng.integers(1, V, size=changed[:, cut:].shape)) % V
        moved = np.max(np.abs(logits_fn(changed)[:, :cut] - base[:, :cut]))
        t.require(moved <= 1e-9 * (1 + np.max(np.abs(base))),
                  f"the model's logits at positions < {cut} moved (by {moved:.3g}) when only the characters at positions "
                  f">= {cut} changed: a position can see the future, so it learns to copy the next character instead of "
                  "predicting it.",
                  cause="the causal mask is missing: transformer_block_forward is called without mask=causal_mask(T).",
                  hint="pass causal_mask(T) (T = the number of positions of the ids) to transformer_block_forward, "
                       "in training and in logits_fn.")


@visible("train_char_lm")
def memorises_a_repeated_phrase(t):
    ids, V = _phrase_ids(PHRASE, 6)
    logits_fn, losses, _ = _train_char_lm(t, ids, V, 12)
    t.require(losses[-1] < losses[0], f'the training loss did not go down ({losses[0]:.4g} -> {losses[-1]:.4g}).',
              hint="run the gradient checks of every part first; then check the learning rate.")
    windows = _windows(ids, 17, 3)
    _sees_no_future(t, logits_fn, windows[:4, :-1], V)
    predicted = np.argmax(logits_fn(windows[:, :-1]), axis=-1)
    # from the 4th character of a window on, the three before it determine the next one
    accuracy = float(np.mean(predicted[:, 3:] == windows[:, 4:]))
    t.require(accuracy >= 0.95, f"after training on {PHRASE!r} repeated 6 times, the most likely next character is right "
              f"at {accuracy:.0%} of the positions that follow 3 or more characters; at least 95% is needed.",
              cause="the targets are not the inputs shifted by one (inputs ids[:-1] of a window, targets ids[1:]), "
                    "a wrong gradient, or too few steps.",
              hint="draw windows of context + 1 ids; train on windows[:, :-1] -> windows[:, 1:].")
    t.note(f"memorised phrase: next character right at {accuracy:.0%} of the positions")


@visible("generate_greedy")
def a_memorised_cycle_comes_back(t):
    # four prompts, one per token: as many sequences as tokens, so an argmax over the wrong axis still has the
    # right shape, and its wrong tokens are named
    _greedy_check(t, MEMORISED, np.array([[0], [1], [2], [3]]), 5)


@visible("sample")
def temperature_top_k_and_the_rng(t):
    _frequencies_check(t, SAMPLING_ROW, temperature=0.5)
    _frequencies_check(t, SAMPLING_ROW, top_k=2, rng_seed=1)
    t.draws_only_from_rng("sample", lambda rng: t.call(
        "sample", BigramModel(MEMORISED), np.array([[0], [1], [2], [3]] * 50), 3, rng), hint=SAMPLING_FROM_RNG)
