"""Unit tests of the graders package itself: the checks must fail on wrong code and pass on right code."""
import numpy as np
import pytest

from graders import CheckFailed, check
from graders.checks import diagnose, gradcheck
from graders.checks.failures import Failure, NotWritten
from graders.checks.tester import Tester
from graders.hidden import LiveExpected, gradients


def dense_forward(X, W, b):
    return X @ W + b, (X, W)


def dense_backward(dout, cache):
    X, W = cache
    return dout @ W.T, X.T @ dout, dout.sum(axis=0)


def make_tester(student: dict, references: dict | None = None, seed: int = 0) -> Tester:
    return Tester("toy", "toy", student, np.random.default_rng(seed),
                  expected=LiveExpected("toy", references=references or dict(student)))


def dense_check(t: Tester):
    rng = np.random.default_rng(1)
    X, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5)
    t.backward_check("dense_forward", "dense_backward", [X, W, b], {"dX": 0, "dW": 1, "db": 2},
                     unpack=lambda r: dict(zip(("dX", "dW", "db"), r)), batch=4)


REFERENCE = {"dense_forward": dense_forward, "dense_backward": dense_backward}


def with_backward(body):
    student = dict(REFERENCE)
    student["dense_backward"] = body
    return make_tester(student, REFERENCE)


def test_a_right_backward_passes_the_gradient_check():
    dense_check(make_tester(dict(REFERENCE)))


@pytest.mark.parametrize("wrong,cause", [
    (lambda dout, c: (dout @ c[1].T, dout.T @ c[0], dout.sum(axis=0)), "transposed"),
    (lambda dout, c: (dout @ c[1].T, c[0].T @ dout / 4, dout.sum(axis=0)), "N = 4 times too small"),
    (lambda dout, c: (dout @ c[1].T, c[0].T @ dout, dout.sum(axis=1)), "axis 0 has length 4 instead of 5"),
    (lambda dout, c: (dout @ c[1].T, -(c[0].T @ dout), dout.sum(axis=0)), "wrong sign"),
    (lambda dout, c: (dout @ c[1].T, c[0].T @ dout, dout.sum()), "expected"),
])
def test_a_wrong_backward_fails_with_a_named_cause(wrong, cause):
    with pytest.raises(Failure) as failed:
        dense_check(with_backward(wrong))
    assert cause in failed.value.text(), failed.value.text()


def test_a_wrong_forward_is_caught_even_when_the_backward_matches_it():
    student = dict(REFERENCE, dense_forward=lambda X, W, b: (X @ W, (X, W)))
    with pytest.raises(Failure, match="output of dense_forward"):
        dense_check(make_tester(student, REFERENCE))


def test_numerical_gradient_is_centered_float64_and_leaves_x_alone():
    x = np.array([[1.0, -2.0, 0.5], [0.3, 0.0, 2.0]])
    before = x.copy()
    g = gradients.numerical_gradient(lambda v: float(np.sum(v ** 3)), x)
    assert np.array_equal(x, before)
    assert gradcheck.relative_error(g, 3 * x ** 2) < 1e-9  # centered: error ~eps^2


def test_relative_error_ignores_rounding_noise_but_not_real_mistakes():
    a = np.array([1.0, 1e-12, 2.0])
    assert gradcheck.relative_error(a, a + 1e-13) < 1e-6
    assert gradcheck.relative_error(a, 2 * a) > 0.3


def test_call_reports_mutation_warnings_and_unwritten_functions():
    def mutating(z):
        z += 1
        return z

    def overflowing(z):
        return 1 / (1 + np.exp(-z))

    def unwritten(z):
        raise NotImplementedError()

    t = make_tester({"mutating": mutating, "overflowing": overflowing, "unwritten": unwritten})
    with pytest.raises(Failure, match="changed its input `z` in place"):
        t.call("mutating", np.zeros(3))
    with pytest.raises(Failure, match="overflow"):
        t.call("overflowing", np.array([-1000.0]))
    with pytest.raises(Failure, match="not written yet"):
        t.call("unwritten", np.zeros(3))
    with pytest.raises(Failure, match="not defined"):
        t.call("missing", np.zeros(3))


def test_results_that_are_not_plain_numbers_are_rejected():
    class Liar:
        def __eq__(self, other):
            return True

        def __array__(self, dtype=None, copy=None):
            return np.zeros(3)

    t = make_tester({})
    with pytest.raises(Failure, match="expected a NumPy array or a number"):
        t.close(Liar(), np.zeros(3), "out")
    with pytest.raises(Failure, match="expected numbers"):
        t.close(None, np.zeros(3), "out")


@pytest.mark.parametrize("got_shape,expected_shape,words", [
    ((5, 3), (3, 5), "transposed"),
    ((4, 4), (4,), "broadcasting"),
    ((4, 1), (4,), "extra axis"),
    ((3,), (4, 3), "reduced"),
    ((4,), (), "single number"),
])
def test_shape_diagnosis_names_the_mistake(got_shape, expected_shape, words):
    assert words in diagnose.shape_mistake(got_shape, expected_shape)


def test_value_diagnosis_names_factor_sign_and_candidates():
    e = np.array([1.0, -2.0, 0.5])
    assert "N = 3 times too large" in diagnose.value_mistake(3 * e, e, batch=3)
    assert "wrong sign" in diagnose.value_mistake(-e, e)
    assert "twice" in diagnose.value_mistake(2 * e, e)
    assert diagnose.value_mistake(e + [0, 0, 1], e, candidates={"the known slip": e + [0, 0, 1]}) == "the known slip"
    assert "NaN" in diagnose.value_mistake(np.array([np.nan, 1.0, 1.0]), e)


def test_check_prints_a_pass_line_and_raises_a_short_error_on_failure(capsys):
    from graders.tooling.reference import reference
    namespace = reference("01_neuron")
    assert check("sigmoid", namespace=namespace) is None  # None: nbgrader must not read it as partial credit
    assert "✓ sigmoid" in capsys.readouterr().out
    namespace["sigmoid"] = lambda z: 1 / (1 + np.exp(-z))
    with pytest.raises(CheckFailed, match="sigmoid: 1 hidden check"):
        check("sigmoid", hidden=True, namespace=namespace)
    assert "overflow" in capsys.readouterr().out


def test_hidden_inputs_come_from_the_grading_runs_secret_and_hide_their_expected_values():
    """The same hidden check draws other inputs under another run's secret, the same under the same secret, and
    its failure shows what came back and the likely cause but not the hidden expected values."""
    from graders.checks.runner import _seed, run_exercise
    fixed = np.random.default_rng(_seed("sigmoid", "x")).normal(size=3)
    one = np.random.default_rng(_seed("sigmoid", "x", b"run one")).normal(size=3)
    again = np.random.default_rng(_seed("sigmoid", "x", b"run one")).normal(size=3)
    other = np.random.default_rng(_seed("sigmoid", "x", b"run two")).normal(size=3)
    assert np.array_equal(one, again) and not np.allclose(one, other) and not np.allclose(one, fixed)

    from graders.tooling.reference import reference
    namespace = dict(reference("01_neuron"), sigmoid_grad=lambda z: 0.25 * np.ones_like(z))
    hidden = run_exercise("sigmoid_grad", namespace, "hidden", secret=b"run one", show_hidden_expected=False)
    assert not hidden.passed
    details = [label for result in hidden.results for label, _ in result.details]
    assert "got" in details and "expected" not in details
    shown = run_exercise("sigmoid_grad", namespace, "hidden", secret=b"run one")
    assert "expected" in [label for result in shown.results for label, _ in result.details]


def test_a_single_number_is_not_called_a_scaled_one():
    # any two numbers differ by some factor: only the factors that name a mistake are reported there
    assert diagnose.value_mistake(np.float64(4.6), np.float64(5000.6)) is None
    assert diagnose.value_mistake(np.array([0.35]), np.array([1.25])) is None
    assert "times a constant" in diagnose.value_mistake(np.array([0.35, 0.7]), np.array([1.25, 2.5]))
    assert "N = 4 times too large" in diagnose.value_mistake(np.float64(8.0), np.float64(2.0), batch=4)
    assert "wrong sign" in diagnose.value_mistake(np.float64(-2.0), np.float64(2.0))


def test_the_inputs_line_names_every_argument_by_the_students_parameter_names():
    def positional_encoding(*args):
        return args

    def layer(X, *rest, scheme="he", **options):
        return X

    assert Tester.describe_args(positional_encoding, (3, 4), {}) == "args[0] = 3; args[1] = 4"
    described = Tester.describe_args(layer, (np.zeros((2, 3)), 5), {"scheme": "xavier", "mask": None})
    assert described == ("X: array of shape (2, 3), values in [0, 0]; rest[0] = 5; scheme = 'xavier'; "
                         "mask = None")
    assert Tester.describe_args(lambda T, D: 0, (), {"D": 4, "T": 3}) == "T = 3; D = 4"


def unwritten(x, lr=0.1):
    raise NotImplementedError()


def init(fan_in, fan_out, rng, scheme="he"):
    if scheme == "he":
        return rng.normal(size=(fan_in, fan_out)), np.zeros(fan_out)
    raise NotImplementedError()


def test_a_missing_option_is_a_failure_naming_it_so_the_other_checks_still_run():
    t = make_tester({"init": init, "unwritten": unwritten})
    t.call("init", 3, 2, np.random.default_rng(0))
    with pytest.raises(Failure) as failed:
        t.call("init", 3, 2, np.random.default_rng(0), "xavier")
    assert not isinstance(failed.value, NotWritten)
    assert "when called with scheme = 'xavier'" in failed.value.text()
    with pytest.raises(Failure) as failed:  # another number is a setting, not a missing branch
        t.call("unwritten", 3, lr=0.5)
    assert isinstance(failed.value, NotWritten)


def test_every_wrong_gradient_is_reported_and_one_alone_keeps_its_own_message():
    with pytest.raises(Failure) as failed:
        dense_check(with_backward(lambda dout, c: (dout @ c[1].T, -(c[0].T @ dout), dout.sum(axis=0))))
    assert type(failed.value) is Failure and failed.value.summary.startswith("dW from dense_backward")
    with pytest.raises(Failure) as failed:
        dense_check(with_backward(lambda dout, c: (-(dout @ c[1].T), c[0].T @ dout / 4, dout.sum(axis=0))))
    text = failed.value.text()
    assert failed.value.summary.startswith("2 of the 3 gradients from dense_backward are wrong: dX, dW"), text
    assert "wrong sign" in text and "N = 4 times too small" in text
    labels = [label for label, _ in failed.value.details()]
    assert labels.count("expected") == 2 and labels.count("inputs") == 1  # a hidden run can still hide them


def test_a_missing_option_is_named_when_the_function_lives_in_a_grading_kernel():
    from graders.checks.calling import StudentError

    class StandIn:  # the engine's stand-in: its own signature is (*args, **kwargs), the contract's is the reference's
        argnames = None

        def __call__(self, *args, **kwargs):
            return self.invoke(args, kwargs)

        def invoke(self, args, kwargs):
            raise StudentError("NotImplementedError", "", mro=["NotImplementedError", "RuntimeError", "Exception"])

    t = make_tester({"init": StandIn()}, references={"init": init})
    with pytest.raises(Failure) as failed:
        t.call("init", 3, 2, np.random.default_rng(0), "xavier")
    assert not isinstance(failed.value, NotWritten) and "scheme = 'xavier'" in failed.value.summary
    with pytest.raises(NotWritten):
        t.call("init", 3, 2, np.random.default_rng(0))

