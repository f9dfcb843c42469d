"""Visible checks of neuron (shipped to students): expected values only through t.ref and t.data."""

import numpy as np

from ..checks.registry import checks_for

visible, _ = checks_for("01_neuron")


def _toy_problem(rng, n=24, d=3):
    X = rng.normal(size=(n, d))
    y = (X @ np.array([1.5, -2.0, 0.5])[:d] + 0.3 * rng.normal(size=n) > 0).astype(float)
    return X, y


@visible("cosine_similarity")
def orthogonal_parallel_and_opposite_vectors(t):
    for u, v in (([1.0, 0.0], [0.0, 1.0]), ([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]), ([1.0, 0.0], [-3.0, 0.0])):
        t.agrees("cosine_similarity", np.array(u), np.array(v), scalar=True)


@visible("neuron")
def the_worked_example_and_a_silent_neuron(t):
    t.agrees("neuron", np.array([0.5, -0.3, 0.8]), np.array([1.0, 0.0, 0.5]), -0.2, scalar=True)
    t.agrees("neuron", np.array([0.5, -0.3, 0.8]), np.array([-1.0, 0.0, 0.5]), -0.2, scalar=True)


@visible("sigmoid")
def small_values_and_shape(t):
    t.agrees("sigmoid", np.array([-2.0, 0.0, 2.0]))
    t.agrees("sigmoid", np.array([[0.5, -0.5, 1.0], [3.0, -3.0, 0.0]]))


@visible("sigmoid_grad")
def value_at_zero_and_symmetry(t):
    z = np.array([-2.0, 0.0, 2.0])
    t.agrees("sigmoid_grad", z, candidates=t.data("sigmoid_grad_slips", z))


@visible("relu")
def relu_small_values(t):
    t.agrees("relu", np.array([-2.0, -0.5, 0.0, 3.0]))


@visible("relu_grad")
def signs(t):
    t.agrees("relu_grad", np.array([-2.0, -0.5, 0.5, 3.0]))


@visible("leaky_relu")
def default_alpha(t):
    t.agrees("leaky_relu", np.array([-2.0, 0.0, 3.0]))


@visible("leaky_relu_grad")
def default_alpha_signs(t):
    t.agrees("leaky_relu_grad", np.array([-2.0, 3.0]))


@visible("tanh_grad")
def tanh_grad_small_values(t):
    t.agrees("tanh_grad", np.array([-1.0, 0.0, 1.0]))


@visible("gelu")
def gelu_small_values(t):
    t.agrees("gelu", np.array([-1.0, 0.0, 1.0, 2.0]))


@visible("gelu_grad")
def value_at_zero(t):
    t.agrees("gelu_grad", np.array([0.0, 1.0, -1.0]))


@visible("numerical_gradient")
def sum_of_squares(t):
    """f(x) = sum(x**2) at x = [1, 2, -0.5]: the gradient is 2x = [2, 4, -1]"""
    x = np.array([1.0, 2.0, -0.5])
    got = t.call("numerical_gradient", lambda v: float(np.sum(v ** 2)), x)
    t.close(got, [2.0, 4.0, -1.0], "numerical_gradient(f, x) for f(x) = sum(x**2)", rtol=1e-6,
            inputs="f(v) = sum(v**2); x = [1.0, 2.0, -0.5]")


@visible("relative_error")
def equal_and_simple(t):
    t.agrees("relative_error", np.array([1.0, 2.0]), np.array([1.0, 2.0]), scalar=True)
    t.agrees("relative_error", np.array([1.0]), np.array([3.0]), scalar=True)


@visible("bce_with_logits")
def the_worked_example(t):
    t.agrees("bce_with_logits", np.array([0.0, 2.0]), np.array([1.0, 0.0]), scalar=True)


@visible("logistic_regression_loss_and_grad")
def shapes_at_zero_weights(t):
    X = np.array([[1.0, 2.0, 0.0], [0.5, -1.0, 1.0], [-1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    loss, dw, db = t.call("logistic_regression_loss_and_grad", X, y, np.zeros(3), 0.0)
    t.close(loss, np.log(2), "the loss at w = 0, b = 0 (log 2)", scalar=True)
    t.close(dw, t.ref("logistic_regression_loss_and_grad")(X, y, np.zeros(3), 0.0)[1], "dw", batch=4)
    t.number(db, "db")


@visible("train_logistic_regression")
def shapes_and_first_loss(t):
    X, y = _toy_problem(np.random.default_rng(0), n=10, d=2)
    w, b, losses = t.call("train_logistic_regression", X, y, 0.1, 5)
    t.close(w, t.ref("train_logistic_regression")(X, y, 0.1, 5)[0], "w")
    t.number(b, "b")
    t.require(len(losses) == 5, f"losses has {len(losses)} entries after 5 steps, expected 5.",
              hint="append one loss per step, before the update.")
    t.close(losses[0], np.log(2), "losses[0] (from w = 0, b = 0 the loss is log 2)", scalar=True)
