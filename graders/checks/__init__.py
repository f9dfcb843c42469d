"""The check library: what a test cell's `check(...)` runs, on the student's side and in the grader.

failures  what a failed check is, and its words       tester    the `t` a check receives
calling   calling a student function, here or away    report    what a student sees (HTML and text)
expected  expected values: the reference or its data  registry  which checks each exercise has
diagnose  naming a mistake from a wrong answer        runner    check(...) and run_exercise(...)
gradcheck how close a gradient must be

It imports NumPy, the standard library and (in a kernel) IPython, and nothing else of the package but the
visible suites; the grading engine and the course tooling depend on it, never the reverse.
"""
