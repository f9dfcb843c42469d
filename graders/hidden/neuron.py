"""Checks for assignment 01_neuron.

Visible checks: shapes and small hand-computable values. Hidden checks: random inputs, extreme inputs
(|z| up to 1e4), gradient checks against centered differences, unchanged inputs, N = 1.
Each `candidates` entry names a classic mistake by the output it would produce.
"""

import math
import numpy as np

from .gradients import elementwise_derivative, numerical_gradient
from ..checks.registry import checks_for
from ..visible.neuron import _toy_problem
from . import generates

_, hidden = checks_for("01_neuron")


EXTREMES = np.array([-1e4, -1000.0, -40.0, -1.5, 0.0, 1.5, 40.0, 1000.0, 1e4])


_erf = np.vectorize(math.erf)


def _away_from_zero(rng, shape, margin=0.05):
    """Random inputs kept away from a kink at 0, so finite differences do not straddle it."""
    z = rng.normal(size=shape) * 2
    return np.where(np.abs(z) < margin, z + np.sign(z + 1e-12) * 2 * margin, z)


def _one_sided(f, x, eps):
    x = np.array(x, dtype=float)
    grad = np.zeros_like(x)
    base = f(x)
    for i in np.ndindex(x.shape):
        x[i] += eps
        grad[i] = (f(x) - base) / eps
        x[i] -= eps
    return grad


def _bce_sum(z, y):
    return float(np.sum(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def _logreg_inputs(rng, n, d, scale=1.0):
    X = rng.normal(size=(n, d)) * scale
    return X, (rng.random(n) < 0.5).astype(float), rng.normal(size=d), float(rng.normal())


def _check_logistic(t, X, y, w, b):
    loss, dw, db = t.call("logistic_regression_loss_and_grad", X, y, w, b)
    ref = t.ref("logistic_regression_loss_and_grad")
    ref_loss, ref_dw, ref_db = ref(X, y, w, b)
    n = X.shape[0]
    inputs = f"X {X.shape}, y {y.shape}, w {w.shape}, b = {b:.3g}"
    t.close(loss, ref_loss, "the loss", inputs=inputs, batch=n, scalar=True)
    t.number(db, "db")
    numeric_dw = numerical_gradient(lambda v: ref(X, y, v, b)[0], w)
    numeric_db = numerical_gradient(lambda v: ref(X, y, w, float(v))[0], np.array(b))
    p = t.ref("sigmoid")(X @ w + b)
    t.gradient(dw, numeric_dw, "dw", batch=n, inputs=inputs,
               candidates={"dw uses (y - p): the gradient of the loss is X.T @ (p - y) / N.": -X.T @ (p - y) / n} if n > 1 else None)
    t.gradient(db, numeric_db, "db", batch=n, inputs=inputs)
    t.close(dw, ref_dw, "dw", inputs=inputs, batch=n)


@hidden("cosine_similarity")
def random_vectors_and_scale_invariance(t):
    """random vectors, and scaling either vector does not change the cosine"""
    u, v = t.rng.normal(size=7), t.rng.normal(size=7)
    for a, b in ((u, v), (1e3 * u, v), (u, 0.01 * v), (t.rng.normal(size=1), t.rng.normal(size=1))):
        t.agrees("cosine_similarity", a, b, scalar=True,
                 candidates={"you returned the raw dot product u·v: divide by both lengths.": lambda a, b: float(a @ b),
                             "you divided by the squared lengths: use np.linalg.norm (the square root).":
                                 lambda a, b: float(a @ b / ((a @ a) * (b @ b)))})


@hidden("cosine_similarity")
def a_zero_vector_gives_zero(t):
    """a zero vector gives 0.0, with no division warning"""
    v = t.rng.normal(size=5)
    for a, b in ((np.zeros(5), v), (v, np.zeros(5)), (np.zeros(5), np.zeros(5))):
        t.agrees("cosine_similarity", a, b, scalar=True,
                 hint="test np.linalg.norm(u) == 0 or np.linalg.norm(v) == 0 first and return 0.0.")


@hidden("neuron")
def random_inputs_with_both_signs(t):
    """random inputs, positive and negative pre-activations, the bias"""
    for _ in range(6):
        x, w, b = t.rng.normal(size=6), t.rng.normal(size=6), float(t.rng.normal())
        t.agrees("neuron", x, w, b, scalar=True,
                 candidates={"no ReLU: a negative w·x + b must give 0.0.": lambda x, w, b: float(w @ x + b),
                             "the bias b is missing.": lambda x, w, b: max(0.0, float(w @ x)),
                             "the bias is applied after the ReLU: relu(w·x) + b.": lambda x, w, b: max(0.0, float(w @ x)) + b})


@hidden("sigmoid")
def extreme_inputs_without_warnings(t):
    """|z| up to 1e4: exact limits, no overflow warning"""
    t.agrees("sigmoid", EXTREMES.copy(),
             hint="compute e = np.exp(-np.abs(z)) once and use np.where(z >= 0, 1/(1+e), e/(1+e)).")


@hidden("sigmoid")
def random_values_any_shape(t):
    """random 2-D and 3-D inputs, and a 0-d array"""
    t.agrees("sigmoid", t.rng.normal(size=(4, 3)) * 5)
    t.agrees("sigmoid", t.rng.normal(size=(2, 3, 2)) * 5)
    t.agrees("sigmoid", np.array(0.7))


@generates("sigmoid_grad_slips")
def sigmoid_grad_slips(source, z):
    """sigma'(z) slips that the notebook warns about, for the visible and the hidden check alike."""
    s = source.function("sigmoid")(z)
    return {"sigmoid(z) * (1 - z): the derivative must use sigmoid(z) in both factors.": s * (1 - z),
            "you returned sigmoid(z) itself, not its derivative.": s}


@hidden("sigmoid_grad")
def sigmoid_grad_gradient_check(t):
    """matches centered differences of sigmoid on random inputs"""
    z = t.rng.normal(size=(3, 5)) * 3
    got = t.call("sigmoid_grad", z)
    t.gradient(got, elementwise_derivative(t.ref("sigmoid"), z), "sigmoid_grad(z)", candidates=t.data("sigmoid_grad_slips", z))


@hidden("sigmoid_grad")
def sigmoid_grad_extreme_inputs(t):
    """|z| up to 1e4: the derivative goes to 0 without warnings"""
    t.agrees("sigmoid_grad", EXTREMES.copy(), atol=1e-12)


@hidden("relu")
def random_2d_input_unchanged(t):
    """random 2-D input, returned as a new array"""
    t.agrees("relu", t.rng.normal(size=(5, 4)))


@hidden("relu_grad")
def value_at_the_kink(t):
    """exactly 0 where z <= 0, including z == 0"""
    t.agrees("relu_grad", np.array([-1.0, 0.0, 0.0, 2.0]),
             candidates={"the derivative at exactly z = 0 must be 0 (use z > 0, not z >= 0).":
                         np.array([0.0, 1.0, 1.0, 1.0])})


@hidden("relu_grad")
def gradient_check_away_from_the_kink(t):
    """matches centered differences of relu on random 2-D inputs"""
    z = _away_from_zero(t.rng, (4, 6))
    t.gradient(t.call("relu_grad", z), elementwise_derivative(t.ref("relu"), z), "relu_grad(z)")


@hidden("leaky_relu")
def other_alphas(t):
    """alpha = 0.2 and 0.05 on random 2-D input"""
    z = t.rng.normal(size=(3, 4))
    for alpha in (0.2, 0.05):
        t.agrees("leaky_relu", z, alpha,
                 candidates={"alpha is hard-coded to 0.01: use the alpha argument.": lambda z, a: np.where(z > 0, z, 0.01 * z)})


@hidden("leaky_relu_grad")
def other_alphas_and_the_kink(t):
    """alpha = 0.3 including z == 0, where the slope is alpha"""
    z = np.array([-1.0, 0.0, 2.0, -0.1])
    t.agrees("leaky_relu_grad", z, 0.3,
             candidates={"alpha is hard-coded to 0.01: use the alpha argument.": np.where(z > 0, 1.0, 0.01),
                         "the slope at exactly z = 0 must be alpha (use z > 0, not z >= 0).": np.where(z >= 0, 1.0, 0.3)})


@hidden("leaky_relu_grad")
def leaky_relu_grad_gradient_check(t):
    """matches centered differences of leaky_relu(z, 0.2) away from the kink"""
    z = _away_from_zero(t.rng, (3, 5))
    t.gradient(t.call("leaky_relu_grad", z, 0.2),
               elementwise_derivative(lambda v: t.ref("leaky_relu")(v, 0.2), z), "leaky_relu_grad(z, 0.2)")


@hidden("tanh_grad")
def tanh_grad_gradient_check(t):
    """matches centered differences of np.tanh on random inputs"""
    z = t.rng.normal(size=(4, 3)) * 2
    t.gradient(t.call("tanh_grad", z), elementwise_derivative(np.tanh, z), "tanh_grad(z)",
               candidates={"1 - z**2 is the derivative in terms of the output y = tanh(z); here you get z: use 1 - tanh(z)**2.": 1 - z ** 2})


@hidden("tanh_grad")
def tanh_grad_extreme_inputs(t):
    """|z| up to 1e4: 0 without warnings"""
    t.agrees("tanh_grad", EXTREMES.copy(), atol=1e-12)


@hidden("gelu")
def tanh_approximation_on_random_and_extreme_inputs(t):
    """random values (the tanh form, not erf) and |z| up to 1e4"""
    z = t.rng.normal(size=(5, 4)) * 2
    t.agrees("gelu", z, candidates={"this is the exact erf GELU; the contract uses the tanh approximation.":
                                    0.5 * z * (1 + _erf(z / np.sqrt(2)))})
    t.agrees("gelu", EXTREMES.copy())


@hidden("gelu_grad")
def gelu_grad_gradient_check(t):
    """matches centered differences of gelu on random inputs"""
    z = t.rng.normal(size=(3, 6)) * 2
    c = np.sqrt(2 / np.pi)
    tanh_u = np.tanh(c * (z + 0.044715 * z ** 3))
    t.gradient(t.call("gelu_grad", z), elementwise_derivative(t.ref("gelu"), z), "gelu_grad(z)",
               candidates={"only the first term 0.5*(1 + tanh u): the product rule needs the second term too.": 0.5 * (1 + tanh_u),
                           "the chain-rule factor (1 + 3*0.044715*z**2) is missing.":
                               0.5 * (1 + tanh_u) + 0.5 * z * (1 - tanh_u ** 2) * c})


@hidden("gelu_grad")
def gelu_grad_extreme_inputs(t):
    """|z| up to 1e4 without warnings"""
    t.agrees("gelu_grad", EXTREMES.copy(), atol=1e-12)


@hidden("numerical_gradient")
def centered_not_one_sided(t):
    """centered differences (error ~eps^2), not one-sided (error ~eps), with the eps given"""
    x = t.rng.normal(size=5)
    f = lambda v: float(np.sum(np.exp(v)))  # noqa: E731
    t.agrees("numerical_gradient", f, x, 1e-3, rtol=1e-8,
             candidates={"a one-sided difference (f(x+eps) - f(x)) / eps: use (f(x+eps) - f(x-eps)) / (2 eps).":
                         lambda f, x, eps: _one_sided(f, x, eps),
                         "the eps argument is ignored.": lambda f, x, eps: numerical_gradient(f, x, 1e-5)})


@hidden("numerical_gradient")
def two_dimensional_x_left_unchanged(t):
    """a (3, 4) input with a random weighting, x unchanged afterwards"""
    x = t.rng.normal(size=(3, 4))
    g = t.rng.normal(size=(3, 4))
    t.agrees("numerical_gradient", lambda v: float(np.sum(np.sin(v) * g)), x, rtol=1e-7,
             hint="loop over np.ndindex(x.shape) (or x.flat) and restore every entry after perturbing it.")


@hidden("relative_error")
def floor_worst_entry_and_2d(t):
    """the 1e-8 floor, the worst entry (not the mean), 2-D inputs"""
    a = t.rng.normal(size=(3, 4))
    b = a.copy()
    b[1, 2] *= 1.5
    def suspects(a, b):
        diff = np.abs(a - b)
        return {"the mean of the entries: report the worst entry (np.max).":
                    float(np.mean(diff / np.maximum(1e-8, np.abs(a) + np.abs(b)))),
                "divided by max(|a|, |b|): the contract divides by |a| + |b|.":
                    float(np.max(diff / np.maximum(1e-8, np.maximum(np.abs(a), np.abs(b))))),
                "the 1e-8 floor is missing from the denominator.":
                    float(np.max(diff / (np.abs(a) + np.abs(b))))}
    t.agrees("relative_error", a, b, scalar=True, candidates=suspects(a, b))
    tiny_a, tiny_b = np.array([0.0, 0.0]), np.array([1e-9, 0.0])
    t.agrees("relative_error", tiny_a, tiny_b, scalar=True,
             hint="divide by np.maximum(1e-8, np.abs(a) + np.abs(b)): the floor keeps 0/0 at 0 and tiny numbers tame.")


@hidden("bce_with_logits")
def bce_with_logits_extreme_logits(t):
    """logits of +-1e4 and +-1000 with both labels: exact, finite, no warning"""
    z = np.array([1e4, -1e4, 1000.0, -1000.0, 50.0, -50.0])
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    t.agrees("bce_with_logits", z, y, scalar=True,
             hint="use max(z, 0) - z*y + np.log1p(np.exp(-np.abs(z))): never the log of a sigmoid.")


@hidden("bce_with_logits")
def mean_over_the_batch(t):
    """random logits: the mean over N (N = 9 and N = 1)"""
    for n in (9, 1):
        z, y = t.rng.normal(size=n) * 3, (t.rng.random(n) < 0.5).astype(float)
        t.agrees("bce_with_logits", z, y, scalar=True, batch=n,
                 candidates={f"the sum over the batch: the loss is the mean (divide by N = {n}).": _bce_sum} if n > 1 else None)


@hidden("logistic_regression_loss_and_grad")
def gradient_checks_on_random_data(t):
    """dw and db against centered differences, with the 1/N (N = 7, D = 5)"""
    _check_logistic(t, *_logreg_inputs(t.rng, 7, 5))


@hidden("logistic_regression_loss_and_grad")
def a_single_example(t):
    """N = 1"""
    _check_logistic(t, *_logreg_inputs(t.rng, 1, 4))


@hidden("logistic_regression_loss_and_grad")
def logistic_regression_loss_and_grad_extreme_logits(t):
    """logits from -1000 to 1000: finite loss and gradients, no warning"""
    X, y, w, b = _logreg_inputs(t.rng, 6, 3)
    X *= 1000.0 / np.abs(X @ w).max()
    extreme = int(np.abs(X @ w).argmax())
    X[(extreme + 1) % len(X)] = -X[extreme]  # both signs reach |x.w| = 1000, whatever the draw
    loss, dw, db = t.call("logistic_regression_loss_and_grad", X, y, w, b)
    ref_loss, ref_dw, ref_db = t.ref("logistic_regression_loss_and_grad")(X, y, w, b)
    t.close(loss, ref_loss, "the loss", scalar=True, rtol=1e-9, batch=6)
    t.close(dw, ref_dw, "dw", batch=6)
    t.close(db, ref_db, "db", scalar=True)


@hidden("train_logistic_regression")
def same_trajectory_as_gradient_descent(t):
    """the loss before every update, and the final w and b, for lr = 0.3 and 40 steps"""
    X, y = _toy_problem(t.rng)
    ref = t.ref("train_logistic_regression")
    w, b, losses = t.call("train_logistic_regression", X, y, 0.3, 40)
    ref_w, ref_b, ref_losses = ref(X, y, 0.3, 40)
    later = ref(X, y, 0.3, 41)[2][1:]
    t.close(losses, ref_losses, "losses", rtol=1e-6,
            candidates={"each loss is recorded after its update: append the loss before updating w and b.": later})
    t.close(w, ref_w, "the final w", rtol=1e-6)
    t.close(b, ref_b, "the final b", rtol=1e-6, scalar=True)


@hidden("train_logistic_regression")
def learning_rate_and_steps_respected(t):
    """lr = 0.05 and 7 steps are used as given"""
    X, y = _toy_problem(t.rng, n=15, d=3)
    w, b, losses = t.call("train_logistic_regression", X, y, lr=0.05, steps=7)
    ref_w, ref_b, ref_losses = t.ref("train_logistic_regression")(X, y, lr=0.05, steps=7)
    t.require(len(losses) == 7, f"losses has {len(losses)} entries for steps=7.", hint="loop exactly `steps` times.")
    t.close(w, ref_w, "the final w", rtol=1e-6,
            candidates={"lr is ignored (the default 0.1 is used): use the lr argument.":
                        t.ref("train_logistic_regression")(X, y, 0.1, 7)[0]})
    t.close(losses, ref_losses, "losses", rtol=1e-6)
