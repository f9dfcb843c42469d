"""How close an analytic gradient must be to the numerical one: the measure and its threshold.

The numerical gradients themselves (centered differences of the reference) are computed on the instructor's
side (graders/hidden/gradients.py); a student's side receives them as data, since a working numerical
gradient is itself an exercise (01's `numerical_gradient`).
"""
from __future__ import annotations

import numpy as np

#: A backward pass passes when its relative error against the numerical gradient is below this.
GRAD_REL_TOL = 1e-6


def relative_error(a, b) -> float:
    """Norm-wise relative error ||a - b|| / max(||a|| + ||b||, 1e-12).

    Norm-wise rather than elementwise so that entries that are zero up to rounding (a ReLU's dead units)
    do not dominate; any real mistake (a factor, a transpose, a missing term) gives 1e-2 or more.
    """
    difference = np.linalg.norm(np.subtract(a, b, dtype=np.float64))
    return float(difference / max(np.linalg.norm(np.asarray(a, np.float64)) + np.linalg.norm(np.asarray(b, np.float64)), 1e-12))
