"""Numerical gradients: the ground truth every backward pass is held to (the instructor's side).

Centered differences in float64. Checks contract the output with a random upstream gradient `dout` (never
`sum()`, which would hide a transposed or permuted gradient) and compare with graders.checks.gradcheck's
relative error. A working numerical gradient is an exercise of 01, so this never ships to students: visible
checks get these gradients as recorded data through the "numerical_gradient" generator.
"""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np

EPS = 1e-6


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Centered-difference gradient of a scalar function.

    Inputs:
      f: callable taking an array shaped like x and returning a number.
      x: float array of any shape; it is not modified (f sees a perturbed copy).
    Returns:
      grad: float64 array shaped like x, grad[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps).
    """
    x = np.array(x, dtype=np.float64, copy=True)
    grad = np.zeros_like(x)
    flat_x, flat_grad = x.reshape(-1), grad.reshape(-1)
    for i in range(flat_x.size):
        original = flat_x[i]
        flat_x[i] = original + eps
        plus = float(f(x))
        flat_x[i] = original - eps
        minus = float(f(x))
        flat_x[i] = original
        flat_grad[i] = (plus - minus) / (2 * eps)
    return grad


def elementwise_derivative(f: Callable[[np.ndarray], np.ndarray], z: np.ndarray, eps: float = EPS) -> np.ndarray:
    """Derivative of an elementwise function at every entry of z at once: (f(z+eps) - f(z-eps)) / (2 eps)."""
    z = np.asarray(z, dtype=np.float64)
    return (f(z + eps) - f(z - eps)) / (2 * eps)


def contracted(forward: Callable, args: list, index: int, dout, pick: Callable = lambda out: out):
    """The scalar function x -> sum(pick(forward(*args with args[index] = x)) * dout), for a gradient check."""
    def f(x):
        new_args = list(args)
        new_args[index] = x
        return float(np.sum(np.asarray(pick(forward(*new_args)), dtype=np.float64) * dout))
    return f


def input_at(args: list, where):
    """The input a gradient is taken with respect to: `args[where]`, or `args[i][key]` for where = (i, key)."""
    return args[where[0]][where[1]] if isinstance(where, tuple) else args[where]


def with_input(args: list, where) -> Callable[[object], list]:
    """A function value -> `args` with the input at `where` (see `input_at`) replaced by `value`.

    Inputs:
      args: a call's arguments; where: an index into args, or (index, key) for an entry of a dict argument.
    Returns:
      value -> a new list of arguments. The other inputs are deep-copied once, here, and shared by every list it
      makes: a gradient check evaluates the reference thousands of times, and the reference never changes its
      inputs (its checks hold it to that), so a copy per evaluation would only cost time.
    """
    base = copy.deepcopy(list(args))

    def replaced(value) -> list:
        new_args = list(base)
        if isinstance(where, tuple):
            new_args[where[0]] = {**base[where[0]], where[1]: value}
        else:
            new_args[where] = value
        return new_args
    return replaced
