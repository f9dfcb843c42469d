"""nn-from-scratch graders: the checks every test cell calls, and the instructor tooling around nbgrader.

In a notebook:  `from graders import check; check("sigmoid")`  (or `check("sigmoid", hidden=True)`).
"""
from .harness import CheckFailed, check

__all__ = ["check", "CheckFailed"]
