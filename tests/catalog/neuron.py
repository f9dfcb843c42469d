"""Realistic implementations of 01_neuron's functions: mistakes students make, and other valid ways."""
from tests.catalog import Right, Wrong

ASSIGNMENT = "01_neuron"

WRONG = [
    Wrong("cosine_similarity", "no zero-vector guard", """
def cosine_similarity(u, v):
    return float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))
""", expect=r"warning|nan"),
    Wrong("cosine_similarity", "raw dot product", """
def cosine_similarity(u, v):
    return float(np.dot(u, v))
""", expect=r"raw dot product"),
    Wrong("cosine_similarity", "returns a 1-element array", """
def cosine_similarity(u, v):
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return np.zeros(1)
    return np.array([u @ v / (nu * nv)])
""", expect=r"expected a single number"),
    Wrong("neuron", "no ReLU", """
def neuron(x, w, b):
    return float(np.dot(w, x) + b)
""", expect=r"no ReLU"),
    Wrong("neuron", "bias after the ReLU", """
def neuron(x, w, b):
    return max(0.0, float(np.dot(w, x))) + b
""", expect=r"bias is applied after the ReLU"),
    Wrong("sigmoid", "naive formula overflows", """
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))
""", expect=r"overflow"),
    Wrong("sigmoid", "np.where evaluates both branches", """
def sigmoid(z):
    return np.where(z >= 0, 1 / (1 + np.exp(-z)), np.exp(z) / (1 + np.exp(z)))
""", expect=r"warning.*overflow"),
    Wrong("sigmoid", "clips the input in place", """
def sigmoid(z):
    np.clip(z, -500, 500, out=z)
    return 1.0 / (1.0 + np.exp(-z))
""", expect=r"changed its input `z` in place"),
    Wrong("sigmoid_grad", "sigmoid(z) * (1 - z)", """
def sigmoid_grad(z):
    return sigmoid(z) * (1 - z)
""", expect=r"sigmoid\(z\) \* \(1 - z\)"),
    Wrong("relu", "clamps in place", """
def relu(z):
    z[z < 0] = 0
    return z
""", expect=r"changed its input `z` in place"),
    Wrong("relu_grad", "slope 1 at exactly zero", """
def relu_grad(z):
    return (z >= 0).astype(float)
""", expect=r"exactly z = 0 must be 0"),
    Wrong("leaky_relu", "alpha hard-coded", """
def leaky_relu(z, alpha=0.01):
    return np.where(z > 0, z, 0.01 * z)
""", expect=r"hard-coded"),
    Wrong("leaky_relu_grad", "alpha hard-coded in the derivative", """
def leaky_relu_grad(z, alpha=0.01):
    return np.where(z > 0, 1.0, 0.01)
""", expect=r"hard-coded"),
    Wrong("tanh_grad", "1 - z**2", """
def tanh_grad(z):
    return 1 - z ** 2
""", expect=r"1 - z\*\*2"),
    Wrong("gelu", "exact erf GELU", """
import math
def gelu(z):
    return 0.5 * z * (1 + np.vectorize(math.erf)(z / np.sqrt(2)))
""", expect=r"exact erf GELU"),
    Wrong("gelu_grad", "missing the chain-rule factor", """
def gelu_grad(z):
    c = np.sqrt(2 / np.pi)
    t = np.tanh(c * (z + 0.044715 * z ** 3))
    return 0.5 * (1 + t) + 0.5 * z * (1 - t ** 2) * c
""", expect=r"chain-rule factor"),
    Wrong("numerical_gradient", "one-sided difference", """
def numerical_gradient(f, x, eps=1e-5):
    x = np.array(x, dtype=float)
    grad = np.zeros_like(x)
    fx = f(x)
    for i in np.ndindex(x.shape):
        x[i] += eps
        grad[i] = (f(x) - fx) / eps
        x[i] -= eps
    return grad
""", expect=r"one-sided"),
    Wrong("numerical_gradient", "perturbs x in place and never restores it", """
def numerical_gradient(f, x, eps=1e-5):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        x[i] += eps
        plus = f(x)
        x[i] -= 2 * eps
        minus = f(x)
        grad[i] = (plus - minus) / (2 * eps)
    return grad
""", expect=r"changed its input `x` in place"),
    Wrong("numerical_gradient", "only works for 1-D x", """
def numerical_gradient(f, x, eps=1e-5):
    grad = np.zeros(len(x))
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = eps
        grad[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return grad
""", expect=r"raised|shape"),
    Wrong("relative_error", "mean instead of max", """
def relative_error(a, b):
    return float(np.mean(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
""", expect=r"mean of the entries"),
    Wrong("relative_error", "no floor in the denominator", """
def relative_error(a, b):
    return float(np.max(np.abs(a - b) / (np.abs(a) + np.abs(b))))
""", expect=r"warning|floor"),
    Wrong("bce_with_logits", "log of a sigmoid", """
def bce_with_logits(z, y):
    p = 1 / (1 + np.exp(-z))
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
""", expect=r"warning|overflow|log"),
    Wrong("bce_with_logits", "sum instead of mean", """
def bce_with_logits(z, y):
    return float(np.sum(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))
""", expect=r"missing 1/N|mean"),
    Wrong("logistic_regression_loss_and_grad", "gradient missing 1/N", """
def logistic_regression_loss_and_grad(X, y, w, b):
    z = X @ w + b
    dz = sigmoid(z) - y
    return bce_with_logits(z, y), X.T @ dz, float(np.sum(dz))
""", expect=r"N = \d+ times too large"),
    Wrong("logistic_regression_loss_and_grad", "gradient with the wrong sign", """
def logistic_regression_loss_and_grad(X, y, w, b):
    z = X @ w + b
    dz = (y - sigmoid(z)) / X.shape[0]
    return bce_with_logits(z, y), X.T @ dz, float(np.sum(dz))
""", expect=r"wrong sign|\(y - p\)"),
    Wrong("logistic_regression_loss_and_grad", "db not summed over the batch", """
def logistic_regression_loss_and_grad(X, y, w, b):
    z = X @ w + b
    dz = (sigmoid(z) - y) / X.shape[0]
    return bce_with_logits(z, y), X.T @ dz, dz
""", expect=r"db .*expected a single number"),
    Wrong("train_logistic_regression", "loss recorded after the update", """
def train_logistic_regression(X, y, lr=0.1, steps=500):
    w, b, losses = np.zeros(X.shape[1]), 0.0, []
    for _ in range(steps):
        _, dw, db = logistic_regression_loss_and_grad(X, y, w, b)
        w, b = w - lr * dw, b - lr * db
        losses.append(logistic_regression_loss_and_grad(X, y, w, b)[0])
    return w, b, losses
""", expect=r"after its update"),
    Wrong("train_logistic_regression", "learning rate ignored", """
def train_logistic_regression(X, y, lr=0.1, steps=500):
    w, b, losses = np.zeros(X.shape[1]), 0.0, []
    for _ in range(steps):
        loss, dw, db = logistic_regression_loss_and_grad(X, y, w, b)
        losses.append(loss)
        w, b = w - 0.1 * dw, b - 0.1 * db
    return w, b, losses
""", expect=r"lr is ignored"),
]

CORRECT = [
    Right("sigmoid via tanh, gelu via the erf-free tanh identity, loops for cosine", """
def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))

def sigmoid_grad(z):
    t = np.tanh(0.5 * np.asarray(z, dtype=float))
    return 0.25 * (1.0 - t * t)

def cosine_similarity(u, v):
    dot = nu = nv = 0.0
    for a, b in zip(u, v):
        dot += a * b
        nu += a * a
        nv += b * b
    if nu == 0.0 or nv == 0.0:
        return 0.0
    return float(dot / (nu ** 0.5 * nv ** 0.5))
"""),
    Right("logaddexp loss, einsum gradients, boolean masks", """
def bce_with_logits(z, y):
    z = np.asarray(z, dtype=float)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))

def logistic_regression_loss_and_grad(X, y, w, b):
    z = np.einsum("nd,d->n", X, w) + b
    residual = sigmoid(z) - y
    return bce_with_logits(z, y), np.einsum("nd,n->d", X, residual) / len(y), float(residual.mean())

def relu(z):
    return z * (z > 0)

def relu_grad(z):
    return np.greater(z, 0).astype(float)

def leaky_relu(z, alpha=0.01):
    return np.maximum(z, 0) + alpha * np.minimum(z, 0)

def leaky_relu_grad(z, alpha=0.01):
    g = np.ones_like(np.asarray(z, dtype=float))
    g[np.asarray(z) <= 0] = alpha
    return g
"""),
    Right("flat-iterator numerical gradient, per-element loop relative error, cosh tanh_grad", """
def numerical_gradient(f, x, eps=1e-5):
    grad = np.empty(np.shape(x))
    base = np.array(x, dtype=float)
    for i in range(base.size):
        step = np.zeros(base.size)
        step[i] = eps
        step = step.reshape(base.shape)
        grad.flat[i] = (f(base + step) - f(base - step)) / (2 * eps)
    return grad

def relative_error(a, b):
    worst = 0.0
    for x, y in zip(np.ravel(a), np.ravel(b)):
        worst = max(worst, abs(x - y) / max(1e-8, abs(x) + abs(y)))
    return float(worst)

def tanh_grad(z):
    z = np.asarray(z, dtype=float)
    return 1.0 / np.cosh(np.clip(z, -350, 350)) ** 2

def neuron(x, w, b):
    s = b
    for xi, wi in zip(x, w):
        s += xi * wi
    return float(s) if s > 0 else 0.0
"""),
    Right("gelu written with explicit intermediates and a stored training loop", """
def gelu(z):
    z = np.asarray(z, dtype=float)
    inner = np.sqrt(2 / np.pi) * (z + 0.044715 * np.power(z, 3))
    return z * (0.5 + 0.5 * np.tanh(inner))

def gelu_grad(z):
    z = np.asarray(z, dtype=float)
    k = np.sqrt(2 / np.pi)
    u = k * (z + 0.044715 * z ** 3)
    du = k * (1 + 0.134145 * z ** 2)
    sech2 = 1 - np.tanh(u) ** 2
    return 0.5 * (1 + np.tanh(u)) + 0.5 * z * sech2 * du

def train_logistic_regression(X, y, lr=0.1, steps=500):
    params = {"w": np.zeros(X.shape[1]), "b": 0.0}
    history = []
    step = 0
    while step < steps:
        loss, dw, db = logistic_regression_loss_and_grad(X, y, params["w"], params["b"])
        history.append(float(loss))
        params = {"w": params["w"] - lr * dw, "b": params["b"] - lr * db}
        step += 1
    return params["w"], params["b"], history
"""),
]
