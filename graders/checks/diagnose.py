"""Name the likely mistake from the signature of a wrong answer.

Each function takes what came back and what was expected and returns a sentence for the student, or None
when the signature is not one we recognise. Checks can add their own suspects: `candidates` maps a
description of a known mistake ("softmax over axis 0") to the output that mistake would produce.
"""
from __future__ import annotations

import numpy as np


def fmt(value) -> str:
    """A short, readable rendering of a number or an array."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        return f"{float(arr):.6g}" if arr.dtype.kind in "fc" else str(arr.item())
    body = np.array2string(arr, precision=4, threshold=12, edgeitems=2, suppress_small=False,
                           max_line_width=96, separator=", ")
    return f"{body}  (shape {arr.shape})"


def shape_mistake(got_shape: tuple, expected_shape: tuple) -> str:
    """Explain a shape mismatch by its most likely cause."""
    g, e = tuple(got_shape), tuple(expected_shape)
    if len(e) == 0:
        return ("expected a single number, got an array. Did you forget to reduce (np.mean / np.sum) over the "
                "batch, or return a 1-element array instead of float(...)?")
    if len(e) >= 2 and g == e[::-1]:
        return "your result is transposed: swap the operands or add .T (write the shapes of each factor next to the line)."
    if len(e) == 1 and g in ((e[0], e[0]),) and e[0] > 1:
        return ("broadcasting bug: an (N, 1) array met an (N,) array and NumPy built an (N, N) table. "
                "Keep both operands 1-D (use .ravel()) or both 2-D.")
    if len(g) == len(e) + 1 and 1 in g and tuple(d for d in g if d != 1) == tuple(d for d in e if d != 1):
        return "an extra axis of length 1: drop keepdims=True or reshape(-1) before returning."
    if len(g) + 1 == len(e):
        for axis in range(len(e)):
            if e[:axis] + e[axis + 1:] == g:
                return f"you reduced (summed or averaged) over axis {axis}, which should be kept."
    if len(g) == len(e) and len(e) >= 1:
        differing = [i for i in range(len(e)) if g[i] != e[i]]
        if len(differing) == 1:
            return f"axis {differing[0]} has length {g[differing[0]]} instead of {e[differing[0]]}: check which axis you reduced, sliced or concatenated."
    if int(np.prod(g)) == int(np.prod(e)):
        return "the right number of entries in the wrong shape: check the order of your reshape and transpose."
    return "check the shape of every intermediate result against the docstring."


def value_mistake(got: np.ndarray, expected: np.ndarray, *, batch: int | None = None,
                  candidates: dict | None = None, rtol: float = 1e-6, atol: float = 1e-9) -> str | None:
    """Explain a same-shape value mismatch: a known mistake, a constant factor, a sign, a transpose.

    On a single number (or a one-entry array) only the factors that name a mistake (-1, 2, 1/2, N, 1/N) are
    reported: any other ratio of two numbers is a constant, and saying so would hide the real cause.
    """
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)

    def same(a, b):
        return a.shape == b.shape and np.allclose(a, b, rtol=max(rtol, 1e-6), atol=max(atol, 1e-9) * 10)

    for description, suspect in (candidates or {}).items():
        suspect = np.asarray(suspect, dtype=np.float64)
        if np.all(np.isfinite(suspect)) and same(got, suspect):
            return description

    if not np.all(np.isfinite(got)):
        where = "NaN" if np.isnan(got).any() else "inf"
        return (f"your result contains {where} where the expected one is finite: an overflow (exp of a large "
                "number) or a 0/0 or log(0). Rewrite it in a numerically stable form.")

    if expected.ndim == 2 and expected.shape[0] == expected.shape[1] and same(got, expected.T):
        return "your result is the transpose of the expected one: swap the operands or add .T."

    scale = float(np.vdot(expected, expected))
    if scale > 0:
        factor = float(np.vdot(got, expected)) / scale
        if factor != 0 and same(got, factor * expected):
            if np.isclose(factor, -1.0, rtol=1e-4):
                return "right size, wrong sign: check the sign of your gradient or of the subtraction."
            if batch and batch > 1 and np.isclose(factor, batch, rtol=1e-4):
                return (f"your result is exactly N = {batch} times too large: you summed over the batch where "
                        "the mean is expected (missing 1/N).")
            if batch and batch > 1 and np.isclose(factor, 1.0 / batch, rtol=1e-4):
                return (f"your result is exactly N = {batch} times too small: you divided by N twice, or "
                        "averaged where a sum over the batch is expected.")
            if np.isclose(factor, 2.0, rtol=1e-4):
                return "your result is exactly twice the expected one: a missing 0.5 (or 1/2) somewhere."
            if np.isclose(factor, 0.5, rtol=1e-4):
                return "your result is exactly half the expected one: a stray 0.5, or a missing factor 2."
            if expected.size > 1:  # any two single numbers differ by some factor: that names nothing
                return f"your result is the expected one times a constant {factor:.4g}: a scale factor is off."
    return None


def where_they_differ(got: np.ndarray, expected: np.ndarray) -> str:
    """Describe the entry with the largest difference, and how many entries are off."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    diff = np.abs(got - expected)
    diff = np.where(np.isnan(diff), np.inf, diff)
    if got.ndim == 0:
        return f"difference {float(diff):.3g}"
    index = np.unravel_index(int(np.argmax(diff)), diff.shape)
    off = int(np.sum(~np.isclose(got, expected, rtol=1e-6, atol=1e-9)))
    return (f"{off} of {got.size} entries differ; the largest difference is at index {tuple(int(i) for i in index)}: "
            f"expected {expected[index]:.6g}, got {got[index]:.6g}")
