"""nn-from-scratch graders.

In a notebook:  `from graders import check; check("sigmoid")`  (or `check("sigmoid", hidden=True)`).

checks/    the check library (student side)       visible/   the visible checks of each assignment (student side)
hidden/    hidden checks, mistake generators      engine/    grading a class: sandboxed kernels, the channel
tooling/   the course commands around nbgrader
"""
from .checks.failures import CheckFailed
from .checks.runner import check

__all__ = ["check", "CheckFailed"]
