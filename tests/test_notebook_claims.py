"""Every worked number the notebooks' markdown states is what the code computes.

Each test recomputes a stated number, from the reference solutions (`reference(assignment)`, the source notebooks'
solution cells) or from plain NumPy, and finds the number in the markdown with a regular expression: a change on
either side (the text or the code) fails the test. A stated number must equal the recomputed one rounded to the
digits it shows. Claims that are not numbers (a citation, a convention) are pinned by the phrase that states them,
next to the behaviour they describe.

"""
import ast
import functools
import math
import re
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from graders.tooling.course import notebook_path, read_notebook
from graders.tooling.reference import namespace_from_cells, reference, reference_cells

pytestmark = pytest.mark.unit

NUM = r"(-?\d+(?:\.\d+)?(?:e-?\d+)?)"
LIST = r"(\[[^`]*\])"


@functools.lru_cache(maxsize=None)
def _cells(assignment: str) -> tuple:
    return tuple(read_notebook(notebook_path(assignment, "source")).cells)


@functools.lru_cache(maxsize=None)
def markdown(assignment: str) -> str:
    """All markdown cells of an assignment's source notebook, joined by blank lines."""
    return "\n\n".join(cell.source for cell in _cells(assignment) if cell.cell_type == "markdown")


def code_defining(assignment: str, name: str) -> str:
    """The source of the one non-solution code cell that defines `name` (a figure's helper), up to its `try:`."""
    sources = [cell.source for cell in _cells(assignment)
               if cell.cell_type == "code" and f"def {name}(" in cell.source
               and not cell.get("metadata", {}).get("nbgrader", {}).get("solution")]
    assert len(sources) == 1, f"{assignment}: {len(sources)} code cells define {name}"
    return sources[0].split("\ntry:")[0]


def solution_source(assignment: str, grade_id: str) -> str:
    sources = [cell.source for cell in _cells(assignment)
               if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id]
    assert len(sources) == 1, f"{assignment}: no cell {grade_id}"
    return sources[0]


def stated(pattern: str, text: str) -> tuple:
    """The groups of the one match of `pattern` in `text`. In the pattern, a space matches any run of whitespace and
    `.` matches newlines too (the markdown wraps its sentences); `<num>` captures a number and `<list>` a list literal
    up to its closing backtick."""
    pattern = pattern.replace(" ", r"\s+").replace("<num>", NUM).replace("<list>", LIST)
    found = re.findall(pattern, text, flags=re.DOTALL)
    assert len(found) == 1, f"{pattern!r} matched {len(found)} times"
    return found[0] if isinstance(found[0], tuple) else (found[0],)


def assert_rounds_to(text_number: str, value: float) -> None:
    """`text_number` is `value` rounded to the digits it shows (half a unit in its last place)."""
    ulp = 10.0 ** Decimal(text_number).as_tuple().exponent
    assert abs(float(text_number) - value) <= 0.5 * ulp + 1e-12, \
        f"the notebook states {text_number}, the code gives {value!r}"


def assert_all_round_to(text_numbers, values) -> None:
    values = np.ravel(values)
    assert len(text_numbers) == len(values), (text_numbers, values)
    for text_number, value in zip(text_numbers, values):
        assert_rounds_to(text_number, float(value))


def numbers(text: str) -> list[str]:
    """The numbers of a stated list or table row, as strings, in order."""
    return re.findall(NUM, text)


def array(text: str) -> np.ndarray:
    """A NumPy array from a stated literal such as `[[1, 2], [0, -1]]` or NumPy's printed `[[0 1], [4 5]]`."""
    return np.array(ast.literal_eval(re.sub(r"(?<=\d)\s+(?=-?\d)", ", ", text)), dtype=np.float64)


def order_of_magnitude(value: float) -> int:
    return round(math.log10(abs(value)))


# ---- 01 The neuron ----------------------------------------------------------------------------------------------

def test_01_neuron_worked_example():
    md, ref = markdown("01_neuron"), reference("01_neuron")
    x, w, b = stated(r"`x = <list>`, `w = <list>`, `b = <num>`", md)
    dot, with_bias, relu_in, out = stated(r"= <num>`, plus the bias gives `<num>"
                                          r"`, and `relu\(<num>\) = <num>`", md)
    x, w, b = array(x), array(w), float(b)
    assert_rounds_to(dot, np.dot(w, x))
    assert_rounds_to(with_bias, np.dot(w, x) + b)
    assert_rounds_to(relu_in, np.dot(w, x) + b)
    assert_rounds_to(out, ref["neuron"](x, w, b))


def test_01_two_linear_layers_cancel_and_a_relu_between_them_gives_abs():
    md, relu = markdown("01_neuron"), reference("01_neuron")["relu"]
    W1, W2 = (array(s) for s in stated(r"`W1 = <list>` .*? `W2 = <list>`", md))
    x = np.linspace(-3, 3, 13)[:, None]
    assert np.allclose(x @ W1 @ W2, 0.0)
    assert "`relu(x) + relu(-x) = |x|`" in md
    assert np.allclose(relu(x @ W1) @ W2, np.abs(x))


def test_01_polarizer_caveat_amplitude_is_signed_intensity_is_cos_squared():
    md, cosine = markdown("01_neuron"), reference("01_neuron")["cosine_similarity"]
    assert "`cos² θ` (Malus's law)" in md and "amplitude" in md
    axis = np.array([1.0, 0.0])
    for theta in np.linspace(0, np.pi, 7):
        x = np.array([np.cos(theta), np.sin(theta)])
        assert cosine(x, axis) == pytest.approx(np.cos(theta), abs=1e-12)   # signed, like the field amplitude
    assert cosine(-axis, axis) == -1.0 and np.cos(np.pi) ** 2 == 1.0           # intensity cannot tell 0° from 180°


def test_01_sigmoid_is_exactly_one_at_40():
    md, sigmoid = markdown("01_neuron"), reference("01_neuron")["sigmoid"]
    (z,) = stated(r"\$\\sigma\(<num>\) = 1\$ exactly in float64", md)
    assert float(sigmoid(float(z))) == 1.0
    assert 1.0 / (1.0 + np.exp(-float(z))) == 1.0


def test_01_sigmoid_factors_alone_give_at_most_a_quarter_per_layer():
    md, sigmoid_grad = markdown("01_neuron"), reference("01_neuron")["sigmoid_grad"]
    z = np.linspace(-10, 10, 20001)
    assert sigmoid_grad(z).max() == pytest.approx(0.25, abs=1e-12)
    base, power, exponent = stated(r"at most \$<num>\^\{(\d+)\} \\approx 10\^\{(-?\d+)\}\$", md)
    assert float(base) == pytest.approx(sigmoid_grad(z).max()) and int(power) == 10
    assert order_of_magnitude(float(base) ** int(power)) == int(exponent)
    assert "4^{10}" not in md


def test_01_gelu_exact_and_tanh_forms_differ_by_at_most_4_7e_4():
    md, gelu = markdown("01_neuron"), reference("01_neuron")["gelu"]
    z = np.linspace(-10, 10, 400001)
    exact = 0.5 * z * (1.0 + np.frompyfunc(math.erf, 1, 1)(z / math.sqrt(2.0)).astype(np.float64))
    gap = np.abs(gelu(z) - exact)
    where = abs(z[np.argmax(gap)])
    largest, near = stated(r"differs from the approximation by at most about <num>"
                           r", the largest gap being near \$\|z\| \\approx <num>\$", md)
    assert_rounds_to(largest, gap.max())
    assert_rounds_to(near, where)
    (pitfall,) = stated(r"\| GELU off by up to ~<num> \|", md)
    assert_rounds_to(pitfall, gap.max())


def test_01_one_sided_and_centered_differences_of_x_cubed():
    md, numerical_gradient = markdown("01_neuron"), reference("01_neuron")["numerical_gradient"]
    one_sided, centered = stated(r"one-sided, \$\(f\(1\.001\) - f\(1\)\)/0\.001 = <num>"
                                 r"\$; centered, \$\(f\(1\.001\) - f\(0\.999\)\)/0\.002 = <num>\$", md)
    f = lambda x: float(np.sum(np.asarray(x) ** 3))
    one_sided_value = (f(1.001) - f(1.0)) / 0.001
    centered_value = float(numerical_gradient(f, np.array([1.0]), eps=1e-3)[0])
    assert_rounds_to(one_sided, one_sided_value)
    assert_rounds_to(centered, centered_value)
    error_one, error_centered = stated(r"The one-sided error \(\$<num>\$\) shrinks like \$\\varepsilon\$, "
                                       r"the centered one \(\$<num>\$\)", md)
    assert_rounds_to(error_one, one_sided_value - 3.0)
    assert_rounds_to(error_centered, centered_value - 3.0)
    assert round((one_sided_value - 3.0) / (centered_value - 3.0), -3) == 3000
    assert "about three thousand times smaller here" in " ".join(md.split())


def test_01_bce_example_and_first_loss():
    md, ref = markdown("01_neuron"), reference("01_neuron")
    first, second, mean = stated(r"\$\\ell\(0, 1\) = \\log 2 = <num>\$ and \$\\ell\(2, 0\) = 2 \+ "
                                 r"\\log\(1 \+ e\^\{-2\}\) = <num>\$; the mean is `<num>`", md)
    bce = ref["bce_with_logits"]
    assert_rounds_to(first, bce(np.array([0.0]), np.array([1.0])))
    assert_rounds_to(second, bce(np.array([2.0]), np.array([0.0])))
    assert_rounds_to(mean, bce(np.array([0.0, 2.0]), np.array([1.0, 0.0])))
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = (X[:, 0] > 0).astype(float)
    losses = ref["train_logistic_regression"](X, y, steps=1)[2]
    (always,) = stated(r"`losses\[0\]` is always \$\\log 2 \\approx <num>\$", md)
    (table,) = stated(r"\| starts at <num> and falls smoothly", md)
    assert_rounds_to(always, losses[0])
    assert_rounds_to(table, losses[0])


def test_01_written_answer_loss_floor():
    """The model answer of Question 4.4: the figure's clouds are not linearly separable, the fit gets 7 wrong, the
    loss flattens at its floor; on separable clouds the weights keep growing and the loss keeps falling."""
    md, ref = markdown("01_neuron"), reference("01_neuron")
    wrong, floor, at_300, later, extra = stated(
        r"\(the trained boundary gets (\d+) of them wrong\).*about `<num>` for this data \(it is `<num>` at step 300, "
        r"and (\d+) more steps lower it only to `<num>`\)", md)
    data_rng = np.random.default_rng(7)                     # the data of the notebook's figure
    X = np.vstack([data_rng.normal([-1.0, -0.5], 0.8, size=(100, 2)), data_rng.normal([1.2, 0.8], 0.8, size=(100, 2))])
    y = np.repeat([0.0, 1.0], 100)
    train = ref["train_logistic_regression"]
    w, b, losses = train(X, y, lr=0.5, steps=300)
    assert np.sum(((X @ w + b) > 0) != (y == 1)) == int(wrong)
    assert_rounds_to(at_300, losses[-1])
    assert_rounds_to(floor, losses[-1])
    assert_rounds_to(extra, train(X, y, lr=0.5, steps=300 + int(later))[2][-1])
    linprog = pytest.importorskip("scipy.optimize").linprog
    margins = -(2 * y - 1)[:, None] * np.hstack([X, np.ones((200, 1))])   # every point on its side, by a margin
    assert linprog(np.zeros(3), A_ub=margins, b_ub=-np.ones(200), bounds=[(None, None)] * 3).status == 2  # none
    apart = X + np.where(y[:, None] == 1, 2.0, -2.0)        # the same clouds, pulled apart: separable
    runs = [train(apart, y, lr=0.5, steps=n) for n in (100, 1000, 10000)]
    norms = np.array([np.linalg.norm(w) for w, _, _ in runs])
    growth = np.diff(norms)                                 # per tenfold steps: "like the logarithm"
    assert np.all(growth > 0.5) and growth.max() < 1.3 * growth.min(), norms
    assert all(later[-1] < earlier[-1] / 5 for (_, _, earlier), (_, _, later) in zip(runs, runs[1:]))


# ---- 02 The MLP (read-only here: its owner fixes its text) ------------------------------------------------------

SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")


def test_02_initialization_table():
    md = markdown("02_mlp")
    (fan_in,) = stated(r"A layer with `fan_in = (\d+)` inputs", md)
    rows = [line for line in md.splitlines() if re.match(r"\| (1\.0 |0\.01 |√\()", line)]
    assert len(rows) == 3
    for row in rows:
        std_cell, var_cell, after_cell, factor_cell, depth_cell = (c.strip() for c in row.strip("|").split("|"))
        std = float(numbers(std_cell)[-1])
        var_z = int(fan_in) * std ** 2                        # a sum of fan_in independent unit-variance terms
        after_relu = var_z / 2                                # the second moment a ReLU keeps
        assert_rounds_to(numbers(var_cell)[0], var_z)
        assert_rounds_to(numbers(after_cell)[0], after_relu)
        assert_rounds_to(numbers(factor_cell)[0], math.sqrt(after_relu))
        magnitude = depth_cell.split("≈")[-1].split("(")[0].strip().translate(SUPERSCRIPT)
        expected = math.sqrt(after_relu) ** 10
        if magnitude == "1":
            assert expected == pytest.approx(1.0)
        else:
            assert magnitude.startswith("10") and order_of_magnitude(expected) == int(magnitude[2:])


def test_02_relu_keeps_half_the_second_moment_not_the_variance():
    md = markdown("02_mlp")
    z = np.random.default_rng(0).normal(size=1_000_000)
    kept = np.maximum(z, 0.0)
    assert np.mean(kept ** 2) == pytest.approx(0.5, abs=0.005)
    assert np.var(kept) == pytest.approx(0.5 - 1 / (2 * np.pi), abs=0.005)
    assert "keeps half the variance" not in md


def test_02_halving_twenty_times_is_a_millionfold():
    md = markdown("02_mlp")
    (layers,) = stated(r"If each layer shrinks the signal by half, (\w+) layers shrink it a million times", md)
    assert layers == "twenty" and order_of_magnitude(2 ** 20) == 6


def test_02_parameter_count_of_a_small_mlp():
    md, init_mlp = markdown("02_mlp"), reference("02_mlp")["init_mlp"]
    sizes, total = stated(r"Small numbers: `layer_sizes = (\[[\d, ]+\])` gives .*? = (\d+) numbers", md)
    params = init_mlp(ast.literal_eval(sizes), np.random.default_rng(0))
    assert sum(p.size for p in params.values()) == int(total)


def test_02_dense_layer_example():
    md, ref = markdown("02_mlp"), reference("02_mlp")
    X, W, b, XW, out, after = stated(r"`X = <list>` \(2 examples, 3 features\), `W = <list>`\s+"
                                     r"\(2 neurons\), `b = <list>`: `X @ W = <list>` and "
                                     r"`out = <list>`.\s+After `relu`: `<list>`", md)
    computed, _ = ref["dense_forward"](array(X), array(W), array(b))
    assert np.array_equal(array(X) @ array(W), array(XW))
    assert np.array_equal(computed, array(out))
    assert np.array_equal(ref["relu_forward"](computed)[0], array(after))


def _linear_pieces(y: np.ndarray, dx: float) -> int:
    slopes = np.round(np.diff(y) / dx, 6)
    return 1 + int(np.count_nonzero(np.diff(slopes)))


def test_02_tent_map_pieces_deep_and_wide():
    md, relu = markdown("02_mlp"), lambda z: reference("02_mlp")["relu_forward"](z)[0]
    assert "`f(x) = 2·relu(x) - 4·relu(x - 0.5)`" in md
    tent = lambda x: 2 * relu(x) - 4 * relu(x - 0.5)
    x = np.linspace(0.0, 1.0, 2 ** 12 + 1)
    assert tent(np.array(0.5)) == 1.0 and tent(np.array(1.0)) == 0.0
    deep = x
    for _ in range(4):                               # 4 layers of 2 units: 8 units
        deep = tent(deep)
    units, deep_pieces, wide_pieces = stated(r"With (\d+) units: (\d+) pieces deep,\s+at most (\d+) wide", md)
    assert int(units) == 8
    assert _linear_pieces(deep, x[1] - x[0]) == int(deep_pieces)
    kinks = np.random.default_rng(0).choice(x[1:-1], size=int(units), replace=False)   # one layer: a kink a unit
    slopes = np.random.default_rng(1).normal(size=int(units))
    wide = sum(s * relu(x - k) for s, k in zip(slopes, kinks))
    assert _linear_pieces(wide, x[1] - x[0]) == int(wide_pieces)
    (regions,) = stated(r"One layer of 6 units: 6 straight creases across the plane \(at most (\d+) regions\)", md)
    assert int(regions) == 1 + 6 + math.comb(6, 2)   # lines in general position


def test_02_softmax_example_and_vote_shares():
    md, softmax = markdown("02_mlp"), reference("02_mlp")["softmax"]
    logits, exps, total, probs = stated(r"Logits `<list>`: `exp` gives `<list>`, total `<num>"
                                        r"`, so\s+`softmax = <list>`", md)
    logits = array(logits)
    assert_all_round_to(numbers(exps), np.exp(logits))
    assert float(total) == pytest.approx(np.exp(logits).sum(), abs=1e-3)
    assert_all_round_to(numbers(probs), softmax(logits))
    one, ten = stated(r"`e ≈ <num>` times the share; ten points ahead, (\d+ \d+) times", md)
    assert_rounds_to(one, math.e)
    assert round(math.exp(10), -3) == int(ten.replace(" ", "").replace("\n", ""))


def test_02_softmax_example_total():
    md = markdown("02_mlp")
    logits, total = stated(r"Logits `<list>`: `exp` gives `\[[^`]*?\]`, total `<num>`", md)
    assert_rounds_to(total, np.exp(array(logits)).sum())


def test_02_exp_overflows_past_709():
    md = markdown("02_mlp")
    (largest,) = stated(r"the largest is about `exp\((\d+)\)`", md)
    with np.errstate(over="ignore"):
        assert np.isfinite(np.exp(float(largest))) and np.isinf(np.exp(float(largest) + 1))


def test_02_log_softmax_example():
    md, log_softmax = markdown("02_mlp"), reference("02_mlp")["log_softmax"]
    z, result = stated(r"`z = (\[1000, 0, -1000\])`: .*?`log_softmax = <list>`", md)
    assert np.array_equal(log_softmax(array(z)), array(result))


def test_02_cross_entropy_example():
    md, ref = markdown("02_mlp"), reference("02_mlp")
    logits, y = stated(r"`logits = (\[\[2, 1, 0\.1\], \[0, 0, 3\]\])`, labels `y = <list>`", md)
    logits, y = array(logits), array(y).astype(int)
    log_probs = ref["log_softmax"](logits)
    row0, surprise0, row1, surprise1, mean = stated(
        r"Row 0: `log_softmax = <list>`, surprise at class 0: `<num>`\. Row 1: `log_softmax` of class 2 is\s+"
        r"`3 - log\(1 \+ 1 \+ e\^3\) = <num>`, surprise `<num>`\. The loss is the \*\*mean\*\*, `<num>`", md)
    assert_all_round_to(numbers(row0), log_probs[0])
    assert_rounds_to(surprise0, -log_probs[0, y[0]])
    assert_rounds_to(row1, log_probs[1, 2])
    assert_rounds_to(surprise1, -log_probs[1, y[1]])
    assert_rounds_to(mean, ref["cross_entropy"](logits, y))
    first, second = stated(r"\[\[(-0\.417 \S+ \S+)\] .*?\n \[(\S+ \S+ \S+)\]\] ──►", md)
    assert_all_round_to(numbers(first) + numbers(second), log_probs)


def test_02_mse_example():
    md, mse = markdown("02_mlp"), reference("02_mlp")["mse_loss"]
    pred, target, num, den = stated(r"`pred = <list>`, `target = <list>`: squared errors .*?`mse = (\d+)/(\d+)`", md)
    assert mse(array(pred), array(target)) == pytest.approx(int(num) / int(den))


def test_02_predict_and_accuracy_example():
    md, accuracy = markdown("02_mlp"), reference("02_mlp")["accuracy"]
    logits, pred, y, acc = stated(r"`logits = (\[\[2, 1, 0\.1\], \[0, 0, 3\], \[0\.5, 2, 1\]\])`: `predict = <list>`\. "
                                  r"With labels\s+`y = <list>`: 2 of 3 right, `accuracy = <num>`", md)
    decisions = np.argmax(array(logits), axis=1)
    assert np.array_equal(decisions, array(pred))
    assert_rounds_to(acc, accuracy(decisions, array(y).astype(int)))


def test_02_written_answer_depth_line():
    """The model answer of Question 4.3: the moons are not linearly separable; the no-hidden-layer network gets 90%
    of them, the ReLU network 100% (the figure's training); without ReLUs the deep network is one linear map."""
    md, ref = markdown("02_mlp"), reference("02_mlp")
    line, deep = stated(r"the trained line gets\s+(\d+)% of the points right, while the ReLU network, whose layers fold "
                        r"the plane, gets (\d+)%", md)
    namespace = dict(ref)
    setup = [c.source for c in _cells("02_mlp") if c.cell_type == "code" and "def train_toy(" in c.source]
    assert len(setup) == 1
    exec(setup[0].split("grid_moons")[0], namespace)        # two_moons, train_toy and the figure's data
    X, y = namespace["X_moons"], namespace["y_moons"]
    for sizes, percent in (([2, 2], line), ([2, 16, 16, 2], deep)):
        trained = namespace["train_toy"](ref["init_mlp"](sizes, np.random.default_rng(0)), X, y)
        assert round(100 * ref["accuracy"](ref["predict"](X, trained), y)) == int(percent), sizes
    linprog = pytest.importorskip("scipy.optimize").linprog
    margins = -(2 * y - 1)[:, None] * np.hstack([X, np.ones((len(y), 1))])
    assert linprog(np.zeros(3), A_ub=margins, b_ub=-np.ones(len(y)), bounds=[(None, None)] * 3).status == 2
    params = ref["init_mlp"]([2, 16, 16, 2], np.random.default_rng(1))
    x = np.random.default_rng(2).normal(size=(5, 2))
    linear = ((x @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]) @ params["W3"] + params["b3"]
    W = params["W1"] @ params["W2"] @ params["W3"]
    b = params["b1"] @ params["W2"] @ params["W3"] + params["b2"] @ params["W3"] + params["b3"]
    assert np.allclose(linear, x @ W + b)                   # the model answer's one linear map


# ---- 03 Backprop ------------------------------------------------------------------------------------------------

def test_03_backprop_costs_about_two_forward_passes():
    md = markdown("03_backprop")
    assert "for the price of about two more forward passes" in " ".join(md.split())
    assert "one extra forward pass" not in md
    N, D, H = 32, 64, 10                               # multiply-adds of one dense layer
    forward, backward = N * D * H, N * H * D + D * N * H   # dX = dZ Wᵀ and dW = Xᵀ dZ
    assert backward == 2 * forward


def test_03_dense_backward_example():
    md, ref = markdown("03_backprop"), reference("03_backprop")
    x, W, b, z = stated(r"One example, `x = <list>`, `W = <list>`, `b = <list>`: the output is\s+"
                        r"`z = x @ W \+ b = <list>`", md)
    dout, dW, dx, db = stated(r"`dout = <list>`\. .*?`dW = <list>` \(an outer product\)\. .*?"
                              r"`dx = dout @ W\.T = \[[^`]*?\] = <list>`\.\s+And `db = dout = <list>`", md)
    out, cache = ref["dense_forward"](array(x)[None], array(W), array(b))
    assert np.allclose(out[0], array(z))
    got_dx, got_dW, got_db = ref["dense_backward"](array(dout)[None], cache)
    assert np.allclose(got_dW, array(dW)) and np.allclose(got_dx[0], array(dx)) and np.allclose(got_db, array(db))


def test_03_relu_backward_example():
    md, relu_backward = markdown("03_backprop"), reference("03_backprop")["relu_backward"]
    X, dout, dX = stated(r"Small numbers: `X = <list>`, `dout = <list>` gives `dX = <list>`", md)
    assert np.array_equal(relu_backward(array(dout), array(X)), array(dX))


def test_03_softmax_cross_entropy_example():
    md, ref = markdown("03_backprop"), reference("03_backprop")
    logits, probs, loss, grad = stated(r"Logits `(\[2, 1, 0\])`, true class 0\. Softmax: `<list>`\. The loss is\s+"
                                       r"`-log \S+ = <num>`\. .*?`\[0\.665 - 1, 0\.245, 0\.090\] = <list>`", md)
    got_loss, got_grad = ref["softmax_cross_entropy"](array(logits)[None], np.array([0]))
    assert_all_round_to(numbers(probs), ref["softmax"](array(logits)))
    assert_rounds_to(loss, got_loss)
    assert_all_round_to(numbers(grad), got_grad)


def test_03_l2_penalty_example():
    md, loss_and_grads = markdown("03_backprop"), reference("03_backprop")["mlp_loss_and_grads"]
    W, lam, penalty, grad = stated(r"Small numbers: `W = <list>`, `λ = <num>`: the penalty is `.*? = <num>"
                                   r"` and its gradient is\s+`\S+ · W = <list>`", md)
    params = {"W1": array(W), "b1": np.zeros(array(W).shape[1])}
    X, y = np.ones((1, 1)), np.array([0])
    loss0, grads0 = loss_and_grads(X, y, params)
    loss1, grads1 = loss_and_grads(X, y, params, weight_decay=float(lam))
    assert_rounds_to(penalty, loss1 - loss0)
    assert np.allclose(grads1["W1"] - grads0["W1"], array(grad))
    assert np.array_equal(grads1["b1"], grads0["b1"])          # biases are not decayed here


def test_03_gradient_flow_figure_half_scale_lets_through_a_thousandth():
    md, namespace = markdown("03_backprop"), reference("03_backprop")
    exec(code_defining("03_backprop", "gradient_reaching_each_layer"), namespace)
    reaching = namespace["gradient_reaching_each_layer"]
    assert "after 10 layers the valves near the input let through about a thousandth" in " ".join(md.split())
    assert order_of_magnitude(reaching(0.5)[0] / reaching(1.0)[0]) == -3
    assert np.all(np.diff(reaching(1.6)) < 0)             # grows at every layer on the way back to the input


def test_03_optimizer_small_numbers():
    md, ref = markdown("03_backprop"), reference("03_backprop")
    p, g, lr, beta = stated(r"One parameter `p = <num>`, gradients `g = <num>, \S+, \S+`, `lr = <num>"
                            r"`, `beta = <num>`", md)
    params, grads = {"p": np.array([float(p)])}, {"p": np.array([float(g)])}
    (sgd,) = stated(r"SGD steps by `<num>` every time", md)
    assert_rounds_to(sgd, float(p) - ref["sgd_step"](params, grads, float(lr))["p"][0])
    velocities, steps, limit = stated(r"has `v = ([\d., ]+)`: steps of `([\d., ]+)`,\s+growing towards "
                                      r"`lr · g / \(1 - beta\) = <num>`", md)
    state, current, got_steps = None, params, []
    for _ in range(3):
        new, state = ref["momentum_step"](current, grads, state, float(lr), float(beta))
        got_steps.append(current["p"][0] - new["p"][0])
        current = new
    assert_all_round_to(numbers(velocities), np.array(got_steps) / float(lr))
    assert_all_round_to(numbers(steps), got_steps)
    assert_rounds_to(limit, float(lr) * float(g) / (1 - float(beta)))
    new, _ = ref["adam_step"](params, grads, None, lr=float(lr))
    assert "i.e. `lr` itself, whatever the gradient's size" in " ".join(md.split())
    assert params["p"][0] - new["p"][0] == pytest.approx(float(lr))


def test_03_adam_without_bias_correction_first_step_is_about_3_16_lr():
    md = markdown("03_backprop")
    (factor,) = stated(r"\| the first Adam step is too large, about `<num> · lr` instead of `lr` \| no bias "
                       r"correction: at step 1, `m = 0\.1 g` and `v = 0\.001 g²`", md)
    beta1, beta2, g = 0.9, 0.999, 2.0
    m, v = (1 - beta1) * g, (1 - beta2) * g * g
    assert_rounds_to(factor, m / math.sqrt(v))


def test_03_adam_with_the_step_count_stuck_at_one():
    md, adam_step = markdown("03_backprop"), reference("03_backprop")["adam_step"]
    peak, at, limit = stated(r"on a steady gradient, Adam's steps swell to about `<num> · lr` near step (\d+), "
                             r"then shrink towards `<num> · lr`", md)
    lr, params, grads, state, steps = 1e-3, {"p": np.zeros(1)}, {"p": np.ones(1)}, None, []
    for _ in range(5000):
        if state is not None:
            state = dict(state, t=0)                  # the slip: t never advances past 1
        new, state = adam_step(params, grads, state, lr=lr)
        steps.append((params["p"][0] - new["p"][0]) / lr)
        params = new
    assert_rounds_to(peak, max(steps))
    assert int(at) == int(np.argmax(steps)) + 1
    assert_rounds_to(limit, (1 / 0.1) / math.sqrt(1 / 0.001))   # m̂ → 10 g, √v̂ → √1000 g
    assert_rounds_to(limit, steps[-1])


def test_03_momentum_in_the_other_convention_steps_ten_times_smaller():
    md = markdown("03_backprop")
    (times,) = stated(r"\| momentum steps (\d+) times smaller than expected \| `v = beta v \+ \(1 - beta\) g` \|", md)
    beta = 0.9
    assert int(times) == round(1 / (1 - beta))          # steady state: g / (1 - beta) against g


def test_03_clip_grad_norm_example():
    md, clip = markdown("03_backprop"), reference("03_backprop")["clip_grad_norm"]
    a, b, norm, max_norm, a_new, b_new = stated(r"`\{\"a\": <list>, \"b\": <list>\}` has total norm <num>"
                                                r"; with `max_norm = <num>` it becomes\s+`\{\"a\": <list>, "
                                                r"\"b\": <list>\}`", md)
    clipped, total = clip({"a": array(a), "b": array(b)}, float(max_norm))
    assert_rounds_to(norm, total)
    assert np.allclose(clipped["a"], array(a_new)) and np.allclose(clipped["b"], array(b_new))


def test_03_dropout_example_and_picture():
    md = markdown("03_backprop")
    X, p, mask, out, mean = stated(r"Small numbers: `X = <list>`, `p = <num>`, mask \(kept\?\) `<list>`: "
                                   r"output `<list>`\. Its mean is\s+<num>", md)
    got = array(X) * array(mask) / (1 - float(p))
    assert np.array_equal(got, array(out))
    assert_rounds_to(mean, got.mean())
    assert got.mean() == array(X).mean()
    (kept,) = stated(r"the kept entries become `1 / 0\.6 ≈ <num>`", md)
    assert_rounds_to(kept, 1 / 0.6)


def test_03_batchnorm_example_and_running_statistics():
    md, batchnorm_forward = markdown("03_backprop"), reference("03_backprop")["batchnorm_forward"]
    batch, mu, var, x_hat = stated(r"one feature, batch `<list>`: `μ = <num>`, `σ² = \(.*?\)/4 = <num>"
                                   r"`, so\s+`x̂ ≈ <list>`", md)
    run_mean, run_var, torch_var = stated(r"the new running mean is\s+`0\.9·0 \+ 0\.1·3 = <num>` and the running "
                                          r"variance `0\.9·1 \+ 0\.1·3\.5 = <num>` \(PyTorch, with the unbiased "
                                          r"`14/3`,\s+would store `0\.9·1 \+ 0\.1·4\.667 = <num>`\)", md)
    X = array(batch)[:, None]
    out, _, running = batchnorm_forward(X, np.ones(1), np.zeros(1), None, True, momentum=0.9)
    assert_rounds_to(mu, X.mean())
    assert_rounds_to(var, X.var())
    assert_all_round_to(numbers(x_hat), out)
    assert_rounds_to(run_mean, running["mean"][0])
    assert_rounds_to(run_var, running["var"][0])
    assert_rounds_to(torch_var, (1 - 0.1) * 1.0 + 0.1 * X.var(ddof=1))   # PyTorch: momentum=0.1 weighs the batch


def test_03_batchnorm_convention_is_stated_as_not_pytorchs():
    md, batchnorm_forward = markdown("03_backprop"), reference("03_backprop")["batchnorm_forward"]
    text = " ".join(md.split())
    assert "This is **not PyTorch's convention**" in text
    assert "(our `0.9` is its `0.1`)" in text and "**unbiased** batch variance" in text
    X = np.random.default_rng(0).normal(size=(5, 3))
    old = {"mean": np.full(3, 0.5), "var": np.full(3, 2.0)}
    _, _, running = batchnorm_forward(X, np.ones(3), np.zeros(3), old, True, momentum=0.8)
    assert np.allclose(running["mean"], 0.8 * old["mean"] + 0.2 * X.mean(axis=0))
    assert np.allclose(running["var"], 0.8 * old["var"] + 0.2 * X.var(axis=0))   # biased, old value weighted


def test_03_internal_covariate_shift_is_presented_as_a_hypothesis():
    text = " ".join(markdown("03_backprop").split())
    assert "*Why* it helps is still debated" in text and "Santurkar et al. 2018" in text
    assert 'Read "covariate shift" as one hypothesis' in text


def test_03_adamw_decays_biases_while_the_l2_term_does_not():
    md, ref = markdown("03_backprop"), reference("03_backprop")
    text = " ".join(md.split())
    assert "Here biases are *not* decayed" in text
    assert "`adamw_step` decays **every** array it is given, biases included" in text
    params = {"W1": np.ones((2, 2)), "b1": np.ones(2)}
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    new, _ = ref["adamw_step"](params, zero, None, lr=0.1, weight_decay=0.5)
    assert np.allclose(new["b1"], 1 - 0.1 * 0.5) and np.allclose(new["W1"], 1 - 0.1 * 0.5)
    X, y = np.ones((3, 2)), np.array([0, 1, 0])
    _, plain = ref["mlp_loss_and_grads"](X, y, params)
    _, decayed = ref["mlp_loss_and_grads"](X, y, params, weight_decay=0.5)
    assert np.array_equal(plain["b1"], decayed["b1"]) and not np.allclose(plain["W1"], decayed["W1"])


def test_03_train_mlp_recipe_is_what_the_reference_does():
    text = " ".join(markdown("03_backprop").split())
    source = solution_source("03_backprop", "sol_train_mlp")
    assert "We used what Part 4 argues for: AdamW" in text and "(so no L2 term in `mlp_loss_and_grads`)" in text
    assert "adamw_step(" in source and "mlp_loss_and_grads(X_fit[batch], y_train[batch], params)" in source
    assert "The learning rate follows a cosine schedule" in text and "np.cos(" in source
    assert "clip_grad_norm(" in source


def test_03_digits_split_and_log_c():
    md = markdown("03_backprop")
    (count,) = stated(r"The 8x8 handwritten digits that ship with scikit-learn: (\d+) grayscale images", md)
    with np.load(notebook_path("03_backprop", "source").parent / "digits_split.npz") as split:
        n_train, n_val = len(split["y_train"]), len(split["y_val"])
        classes = len(np.unique(split["y_train"]))
    assert n_train + n_val == int(count)
    assert round(100 * n_val / (n_train + n_val)) == 25
    (log_c,) = stated(r"starts far above `log C` \(<num> for 10 classes\)", md)
    assert classes == 10
    assert_rounds_to(log_c, math.log(classes))


@pytest.mark.slow  # nine runs of 150 full-batch steps (a few seconds on one core)
def test_03_written_answer_learning_rate_sweep():
    """The model answer of Question 6.3, from the diagnosis figure's own `gd_curve` on the reference."""
    md, namespace = markdown("03_backprop"), reference("03_backprop")
    with np.load(notebook_path("03_backprop", "source").parent / "digits_split.npz") as split:
        namespace.update(X_train=split["X_train"].astype(np.float64), y_train=split["y_train"].astype(np.int64))
    cell = [c.source for c in _cells("03_backprop") if c.cell_type == "code" and "def gd_curve(" in c.source]
    assert len(cell) == 1
    exec(cell[0].split("def plot_diagnosis")[0], namespace)
    (start, slow, good, peak, peak_step, lowest, passed, passed_step, dead, spike_34, dead_34) = stated(
        r"the loss falls steadily but slowly, from `<num>` to only `<num>` in 150 steps.*falls smoothly at every "
        r"step, to `<num>`.*the loss climbs to about `<num>` at step (\d+), then comes back down and happens to end "
        r"lowest of all, at `<num>`\. At `lr = 3.6` it never comes back: the loss passes `<num>` at step (\d+) and "
        r"grows off the chart, and `(\d+)%` of the hidden ReLUs end dead.*at `lr = 3.4` the loss spikes to about "
        r"`<num>` and `(\d+)%` of the units die", md)
    runs = {lr: namespace["gd_curve"](lr) for lr in (0.005, 0.5, 3.3, 3.4, 3.5, 3.6)}
    losses = {lr: np.array(curve) for lr, (curve, _) in runs.items()}
    assert_rounds_to(start, losses[0.005][0])
    assert_rounds_to(slow, losses[0.005][-1])
    assert np.all(np.diff(losses[0.005]) < 0) and np.all(np.diff(losses[0.5]) < 0)   # steadily, smoothly
    assert_rounds_to(good, losses[0.5][-1])
    assert np.argmax(losses[3.3]) == int(peak_step)
    assert order_of_magnitude(losses[3.3].max() / float(peak)) == 0 and f"{losses[3.3].max():.1e}" == "2.6e+05"
    assert_rounds_to(lowest, losses[3.3][-1])
    assert lowest == min((f"{curve[-1]:.2g}" for curve in losses.values()), key=float)   # lowest of all
    assert np.argmax(losses[3.6] > float(passed)) == int(passed_step) and losses[3.6][-1] > 1e7  # off the chart
    assert round(100 * runs[3.6][1]) == int(dead) and runs[3.3][1] == 0
    assert order_of_magnitude(losses[3.4].max()) == order_of_magnitude(float(spike_34))
    assert round(100 * runs[3.4][1]) == int(dead_34)
    assert losses[3.5][-1] > losses[3.5][0]                 # "ends far above where it started"


# ---- 04 Attention (read-only here except train_sequence_model's docstring) --------------------------------------

def test_04_attention_example():
    md, attention = markdown("04_attention"), reference("04_attention")["scaled_dot_product_attention"]
    q, k1, k2, k3, v1, v2, v3 = stated(r"One query `q = <list>`, three keys `k1 = <list>`, `k2 = <list>`, "
                                       r"`k3 = <list>`, values\s+`v1 = <list>`, `v2 = <list>`, `v3 = <list>`", md)
    Q, K, V = array(q)[None], np.stack([array(k1), array(k2), array(k3)]), np.stack([array(v1), array(v2), array(v3)])
    out, weights = attention(Q, K, V)
    scores_row = [line for line in md.splitlines() if line.startswith("| `q·k / sqrt(2)` |")]
    weights_row = [line for line in md.splitlines() if line.startswith("| softmax weight |")]
    assert_all_round_to(numbers(scores_row[0].split("|", 2)[2]), Q @ K.T / np.sqrt(2))
    assert_all_round_to(numbers(weights_row[0]), weights)
    (result,) = stated(r"0\.140·\[5, 5\] = <list>`", md)
    assert_all_round_to(numbers(result), out)


def test_04_score_spread_grows_like_sqrt_d():
    md = markdown("04_attention")
    std64, std512 = stated(r"with `d = 64` the scores have a standard deviation of (\d+), "
                           r"with `d = 512` about (\d+)", md)
    assert int(std64) == math.sqrt(64) and int(std512) == round(math.sqrt(512))


def test_04_softmax_backward_example():
    md, ref = markdown("04_attention"), reference("04_attention")
    weights, dW, total, dS = stated(r"two keys and weights `<list>`, an upstream `dW = <list>` gives `Σ dW·W = <num>"
                                    r"` and\s+`dS = \[[^`]*?\] = <list>`", md)
    # d = 1, Q = [[1]]: dK = dSᵀ Q is dS itself; scores chosen so that the softmax gives the stated weights
    w = array(weights)
    Q, K, V = np.ones((1, 1)), np.log(w)[:, None], array(dW)[:, None]
    _, cache = ref["attention_forward"](Q, K, V)
    _, dK, _ = ref["attention_backward"](np.ones((1, 1)), cache)
    assert_rounds_to(total, float(np.sum(array(dW) * w)))
    assert_all_round_to(numbers(dS), dK[:, 0])


def test_04_split_heads_example():
    md, split_heads = markdown("04_attention"), reference("04_attention")["split_heads"]
    head0, head1, wrong0 = stated(r"`H = 2`: head 0 gets\s+`<list>`, head 1 gets `<list>`\. The wrong "
                                  r"reshape would give head 0 `<list>`", md)
    X = np.arange(8.0).reshape(1, 2, 4)
    heads = split_heads(X, 2)
    assert np.array_equal(heads[0, 0], array(head0)) and np.array_equal(heads[0, 1], array(head1))
    assert np.array_equal(X.reshape(1, 2, 2, 2)[0, 0], array(wrong0))


def test_04_layernorm_example():
    md, layernorm = markdown("04_attention"), reference("04_attention")["layernorm_forward"]
    x, mu, var, x_hat, smaller = stated(r"\*\*Small numbers\.\*\* `x = (\[1, 2, 3, 6\])`: `mu = <num>`, deviations "
                                        r"`\[[^`]*?\]`, `var = 14/4 = <num>`,\s+`x̂ = <list>`\. With the unbiased "
                                        r"variance \(`14/3`\) you would get values about (\d+)% smaller", md)
    x = array(x)
    out, _ = layernorm(x[None], np.ones(4), np.zeros(4))
    assert_rounds_to(mu, x.mean())
    assert_rounds_to(var, x.var())
    assert_all_round_to(numbers(x_hat), out)
    assert int(smaller) == round(100 * (1 - x.std() / x.std(ddof=1)))


def test_04_ffn_example_hidden_layer():
    md, ref = markdown("04_attention"), reference("04_attention")
    hidden, activated, _ = stated(r"the hidden\s+layer is `<list>`, after GELU `<list>`, output `<num>`", md)
    assert_all_round_to(numbers(activated), ref["gelu"](array(hidden)))


def test_04_ffn_example_output():
    md, ffn = markdown("04_attention"), reference("04_attention")["ffn_forward"]
    (output,) = stated(r"after GELU `\[[^`]*?\]`, output `<num>`", md)
    params = {"W1": np.array([[1.0, -1.0]]), "b1": np.zeros(2), "W2": np.array([[1.0], [1.0]]), "b2": np.zeros(1)}
    out, _ = ffn(np.array([[2.0]]), params)
    assert_rounds_to(output, out[0, 0])


def test_04_embedding_backward_example_and_the_buffered_slip():
    md, ref = markdown("04_attention"), reference("04_attention")
    ids, dout, row, buffered = stated(r"`ids = <list>`, `dout = <list>`: `dE\[2\]` must be `\[1, 1\] \+ \[3, -1\] =\s+"
                                      r"<list>`; `dE\[ids\] \+= dout` gives `<list>`", md)
    ids, dout = array(ids).astype(int), array(dout)
    _, cache = ref["embedding_forward"](ids, np.zeros((3, 2)))
    assert np.array_equal(ref["embedding_backward"](dout, cache)[2], array(row))
    slip = np.zeros((3, 2))
    slip[ids] += dout
    assert np.array_equal(slip[2], array(buffered))


def test_04_positional_encoding_example():
    md, pe = markdown("04_attention"), reference("04_attention")["positional_encoding"]
    row1, row0 = stated(r"row `t = 1` is `\[sin 1, cos 1, sin 0\.01, cos 0\.01\] = <list>` "
                        r"and row `t = 0` is `<list>`", md)
    table = pe(3, 4)
    assert_all_round_to(numbers(row1), table[1])
    assert np.array_equal(table[0], array(row0))


def test_04_deep_stack_without_the_bypass():
    md, namespace = markdown("04_attention"), reference("04_attention")
    exec(code_defining("04_attention", "deep_stack_gradient_norms"), namespace)
    (tiny,) = stated(r"almost nothing \(about `<num>` of it\) reaches the bottom", md)
    bottom = namespace["deep_stack_gradient_norms"](30, False, np.random.default_rng(0))[0]
    assert order_of_magnitude(bottom) == order_of_magnitude(float(tiny))   # the value the figure plots at layer 1


@pytest.mark.slow  # trains a model (about a second on one core)
def test_04_without_positions_the_model_stays_near_30_percent():
    md = markdown("04_attention")
    percent, loss = stated(r"\| accuracy stuck near (\d+)%, loss flat at ~<num> \| no positional encoding", md)
    # a fresh reference namespace of its own, with the positions switched off
    namespace = namespace_from_cells(reference_cells(read_notebook(notebook_path("04_attention", "source"))), "no_pe")
    namespace["positional_encoding"] = lambda T, D: np.zeros((T, D))
    rng = np.random.default_rng(2024)                       # the data and seed of the notebook's figure
    X, Y = namespace["reversal_task"](2000, 8, 10, rng)
    X_val, Y_val = namespace["reversal_task"](500, 8, 10, rng)
    predict, history = namespace["train_sequence_model"](X, Y, X_val, Y_val, np.random.default_rng(0))
    assert abs(np.mean(predict(X_val) == Y_val) - int(percent) / 100) < 0.05
    assert abs(np.mean(history["loss"][-20:]) - float(loss)) < 0.15


def test_04_train_sequence_model_docstring_names_what_history_holds():
    train = reference("04_attention")["train_sequence_model"]
    doc = " ".join(train.__doc__.split())
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, size=(16, 4))
    predict, history = train(X, X[:, ::-1].copy(), X, X[:, ::-1].copy(), rng, steps=2, batch_size=4)
    for key in history:
        assert f'"{key}"' in doc, f"the docstring does not name history[{key!r}]"
    assert len(history["loss"]) == 2
    assert isinstance(history["val_accuracy"], list) and len(history["val_accuracy"]) == 1
    assert '"val_accuracy" (a list holding one float: the validation token accuracy after training)' in doc


def test_04_written_answer_dbk_is_zero_and_dbq_is_not():
    """The model answer of Question 2.3: the output does not depend on bk, dbk is 0 up to rounding (about 1e-15)
    with no mask, a causal mask, a padding mask and a sequence with nothing to attend; dbq is not 0."""
    md, ref = markdown("04_attention"), reference("04_attention")
    (rounding,) = stated(r"its gradient is 0, up to rounding \(about `<num>` in float64\)", md)
    rng = np.random.default_rng(0)
    N, T, D, H = 2, 5, 8, 2
    X = rng.normal(size=(N, T, D))
    params = {name: rng.normal(0, 0.5, (D, D)) for name in ("Wq", "Wk", "Wv", "Wo")}
    params.update({name: rng.normal(0, 0.5, D) for name in ("bq", "bk", "bv", "bo")})
    padding = np.ones((N, 1, 1, T), dtype=bool)
    padding[0, ..., 3:] = False
    nothing = padding.copy()
    nothing[1] = False                                      # every query of sequence 1 has nothing to attend
    for mask in (None, ref["causal_mask"](T), padding, nothing):
        out, cache = ref["mha_forward"](X, params, H, mask)
        _, grads = ref["mha_backward"](rng.normal(size=out.shape), cache)
        assert order_of_magnitude(np.abs(grads["bk"]).max()) <= order_of_magnitude(float(rounding))
        assert np.abs(grads["bq"]).max() > 1
        shifted = dict(params, bk=params["bk"] + rng.normal(0, 3, D))
        assert np.allclose(ref["mha_forward"](X, shifted, H, mask)[0], out, rtol=0, atol=1e-12)


# ---- 05 Gating --------------------------------------------------------------------------------------------------

def test_05_gate_examples():
    md, ref = markdown("05_gating"), reference("05_gating")
    (value,) = stated(r"\*\*Small numbers\.\*\* `value = (\[2\.0, -1\.0, 4\.0\])`", md)
    value = array(value)
    half_out, g4 = stated(r"Scalar gate, logit `0`: `g = 0\.5`, output `<list>`\. Logit `4`: `g = <num>`", md)
    assert np.allclose(ref["sigmoid_gate"](value, 0.0), array(half_out))
    assert_rounds_to(g4, ref["sigmoid"](4.0))
    logits, gates, out = stated(r"Vector gate, logits `<list>`: `g = <list>`, output `<list>`", md)
    assert_all_round_to(numbers(gates), ref["sigmoid"](array(logits)))
    assert_all_round_to(numbers(out), ref["sigmoid_gate"](value, array(logits)))
    new, old, mixed, g_minus4, kept = stated(r"Interpolation, `new = <list>`, `old = <list>`, logit `0`: `0\.5·new \+ "
                                             r"0\.5·old = <list>`\. Logit `-4`\s+\(`g = <num>`\): `<list>`", md)
    assert np.allclose(ref["interpolate_gate"](array(new), array(old), 0.0), array(mixed))
    assert_rounds_to(g_minus4, ref["sigmoid"](-4.0))
    assert_all_round_to(numbers(kept), ref["interpolate_gate"](array(new), array(old), -4.0))


def test_05_glu_and_swiglu_example():
    md, ref = markdown("05_gating"), reference("05_gating")
    glu, swish1 = stated(r"GLU: `1 · sigmoid\(0\) = <num>`\. SwiGLU: `swish\(1\) · 0 = <num> · 0 = 0`", md)
    X, W, b = np.array([[1.0, 2.0]]), np.array([[1.0], [0.0]]), np.zeros(1)
    V, c = np.array([[0.0], [1.0]]), np.array([-2.0])
    assert_rounds_to(glu, ref["glu_forward"](X, W, b, V, c)[0][0, 0])
    assert_rounds_to(swish1, 1.0 * ref["sigmoid"](1.0))
    assert ref["swiglu_forward"](X, W, b, V, c)[0][0, 0] == 0.0


def test_05_gated_ffn_shrinks_f_to_two_thirds():
    text = " ".join(markdown("05_gating").split())
    assert "shrink `F` to 2/3 of the usual width" in text and "by 2/3" not in text
    D, F = 512, 2048
    assert 3 * D * (2 * F / 3) == 2 * D * F


def test_05_gru_cell_example():
    md, ref = markdown("05_gating"), reference("05_gating")
    rz, n, h = stated(r"`r = z = sigmoid\(1\.5\) = <num>`, `n = tanh\(1 \+ \S+·0\) = <num>`,\s+"
                      r"`h = \S+·\S+ \+ \S+·0\.5 = <num>`", md)
    params = {"Wx": np.ones((1, 3)), "Wh": np.array([[1.0, 1.0, 0.0]]), "bx": np.zeros(3), "bh": np.zeros(3)}
    got, _ = ref["gru_cell_forward"](np.array([[1.0]]), np.array([[0.5]]), params)
    assert_rounds_to(rz, ref["sigmoid"](1.5))
    assert_rounds_to(n, np.tanh(1.0))
    assert_rounds_to(h, got[0, 0])


def test_05_lstm_cell_example():
    md, ref = markdown("05_gating"), reference("05_gating")
    i, f, g, o, c_prev, c, h = stated(r"`i = <num>`, `f = <num>`, `g = <num>`, `o = <num>"
                                      r"`, `c_prev = <num>`: `c = \S+ \+ \S+ = <num>`,\s+"
                                      r"`h = 0\.5·tanh\(2\.2\) = <num>`", md)
    tanh_c, dc_total, dc_prev = stated(r"`dc_total = 0\.5·\(1 - <num>²\) = <num>`, and\s+"
                                       r"`dc_prev = 0\.9·0\.0240 = <num>`", md)
    # gates from biases alone: x and h_prev are zero, so each gate is its nonlinearity of its bias
    logit = lambda p: math.log(p / (1 - p))
    bias = np.array([logit(float(i)), logit(float(f)), math.atanh(float(g)), logit(float(o))])
    params = {"Wx": np.zeros((1, 4)), "Wh": np.zeros((1, 4)), "b": bias}
    zero = np.zeros((1, 1))
    got_h, got_c, cache = ref["lstm_cell_forward"](zero, zero, np.array([[float(c_prev)]]), params)
    _, _, got_dc_prev, _ = ref["lstm_cell_backward"](np.ones((1, 1)), np.zeros((1, 1)), cache)
    assert_rounds_to(c, got_c[0, 0])
    assert_rounds_to(h, got_h[0, 0])
    assert_rounds_to(tanh_c, np.tanh(got_c[0, 0]))
    assert_rounds_to(dc_total, got_dc_prev[0, 0] / float(f))
    assert_rounds_to(dc_prev, got_dc_prev[0, 0])


def test_05_forget_gate_is_credited_to_gers_2000():
    text = " ".join(markdown("05_gating").split())
    assert ("The LSTM (Hochreiter & Schmidhuber 1997; its forget gate `f` came later, "
            "from Gers, Schmidhuber & Cummins 2000") in text


def test_05_rnn_and_gru_gradient_products():
    md, sigmoid = markdown("05_gating"), reference("05_gating")["sigmoid"]
    w, slope, factor, after20, after50, z, copied = stated(
        r"With `w = <num>` and a typical `1 - h_t² ≈ <num>`, each step multiplies the gradient\s+by `<num>"
        r"`; after 20 steps `\S+\^20 ≈ <num>`, after 50 steps `\S+\^50 ≈ <num>`\. The GRU's copy path "
        r"multiplies by `z`\s+instead: with `z = <num>`, `\S+\^50 ≈ <num>`", md)
    assert_rounds_to(factor, float(w) * float(slope))
    assert_rounds_to(after20, float(factor) ** 20)
    assert_rounds_to(after50, float(factor) ** 50)
    assert_rounds_to(copied, float(z) ** 50)
    for gate in re.findall(r"`z ≈ <num>`", md):
        assert_rounds_to(gate, sigmoid(3.0))                 # the update-gate bias of 3


def test_05_vanishing_gradient_picture():
    md, namespace = markdown("05_gating"), reference("05_gating")
    cell = [c.source for c in _cells("05_gating") if c.cell_type == "code" and "norms_rnn = " in c.source]
    assert len(cell) == 1
    exec(cell[0].split("fig, ax = plt.subplots")[0], namespace)
    (times,) = stated(r"it hears about it some `<num>` times more faintly than from step 50", md)
    rnn, gru = namespace["norms_rnn"], namespace["norms_gru"]
    assert order_of_magnitude(rnn[-1] / rnn[0]) == order_of_magnitude(float(times))
    assert gru[-1] / gru[0] < 100                           # the GRU's decays far more slowly


def test_05_written_answer_rnn_chance_numbers():
    """The model answer of Question 4.3: at `train_gated_memory`'s initialization (std 1/sqrt(V) and 0.5/sqrt(H),
    update-gate bias 3), the gradient from the last state reaches the key at less than 1e-12 of its size through
    the RNN in every one of 20 draws (halving per step) and at about 0.1 through the GRU (their median)."""
    md, ref = markdown("05_gating"), reference("05_gating")
    rnn_ratio, gru_ratio = stated(r"the gradient that reaches the key is less than `<num>` of the one at the last step", md)[0], \
        stated(r"and about `<num>` of the last step's gradient reaches the key", md)[0]
    copied, = stated(r"`sigmoid\(3\)\^50 ≈ <num>`", md)
    log4, = stated(r"a loss of `log 4 ≈ <num>`", md)
    X, _ = ref["make_memory_task"](64, np.random.default_rng(5))
    V, H = int(X.max()) + 1, 32
    X1 = np.eye(V)[X]
    rnn, gru = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        rnn_params = {"Wx": rng.normal(0, 1 / np.sqrt(V), (V, H)), "Wh": rng.normal(0, 0.5 / np.sqrt(H), (H, H)),
                      "b": np.zeros(H)}
        gru_params = {"Wx": rng.normal(0, 1 / np.sqrt(V), (V, 3 * H)), "Wh": rng.normal(0, 0.5 / np.sqrt(H), (H, 3 * H)),
                      "bx": np.concatenate([np.zeros(H), 3 * np.ones(H), np.zeros(H)]), "bh": np.zeros(3 * H)}
        dH = np.zeros((64, X.shape[1], H))
        dH[:, -1] = rng.normal(size=(64, H))
        for ratios, forward, backward, params in ((rnn, "rnn_forward", "rnn_backward", rnn_params),
                                                   (gru, "gru_forward", "gru_backward", gru_params)):
            dX = ref[backward](dH, ref[forward](X1, np.zeros((64, H)), params)[1])[0]
            norms = np.linalg.norm(dX, axis=2).mean(axis=0)
            ratios.append(norms[0] / norms[-1])
    assert max(rnn) < float(rnn_ratio)
    assert 0.4 < np.median(rnn) ** (1 / 50) < 0.6                   # "it halves, roughly, at every step"
    assert_rounds_to(gru_ratio, np.median(gru))
    assert_rounds_to(copied, ref["sigmoid"](3.0) ** 50)
    assert_rounds_to(log4, math.log(4))


@pytest.mark.slow  # trains a model (about a second on one core)
def test_05_gru_memory_within_80_steps():
    md, ref = markdown("05_gating"), reference("05_gating")
    low, high = stated(r"the GRU usually reaches full validation accuracy within (\d+) to (\d+) \|", md)
    task_rng = np.random.default_rng(5)                    # the data and seed of the notebook's figure
    X, y = ref["make_memory_task"](2000, task_rng)
    X_val, y_val = ref["make_memory_task"](500, task_rng)
    predict, _ = ref["train_gated_memory"](X, y, X_val, y_val, np.random.default_rng(1), cell="gru", steps=int(high))
    assert np.mean(predict(X_val) == y_val) >= 0.95
    assert int(low) < int(high) <= 100


def test_05_moe_gates_example():
    md, moe_forward = markdown("05_gating"), reference("05_gating")["moe_forward"]
    probs, gates = stated(r"\*\*Small numbers\.\*\* `p = <list>`, `top_k = 2`: `S = \{1, 3\}`, gates `<list>`", md)
    p = array(probs)
    # experts that output their own one-hot vector, so the output is the gates themselves
    E = len(p)
    params = {"Wr": np.vstack([np.log(p), np.zeros((E - 1, E))]), "W1": np.zeros((E, E, 1)), "b1": np.zeros((E, 1)),
              "W2": np.zeros((E, 1, E)), "b2": np.eye(E)}
    x = np.eye(E)[:1]
    two, _ = moe_forward(x, params, top_k=2)
    assert_all_round_to(numbers(gates), two[0, [1, 3]])
    one, _ = moe_forward(x, params, top_k=1)
    assert one[0, 1] == 1.0 and "the gate is `0.60 / 0.60 = 1` **exactly**" in md


def test_05_load_balancing_examples_and_what_is_true():
    md, ref = markdown("05_gating"), reference("05_gating")
    loss = ref["load_balancing_loss"]
    probs, top1, f, P, value = stated(r"`E = 2`, three tokens with `p = <list>`, top-1 experts `<list>`:\s+"
                                      r"`f = <list>`, `P = <list>`, loss `= .*? = <num>`", md)
    p, index = array(probs), array(top1).astype(int)
    assert [Fraction(share) for share in f.strip("[]").split(", ")] == \
        [Fraction(int(count), len(index)) for count in np.bincount(index, minlength=2)]
    assert_all_round_to(numbers(P), p.mean(axis=0))
    assert_rounds_to(value, loss(p, index, 2))
    # below 1 although unbalanced
    kept, other, f_low, P_low, low = stated(r"three tokens routed to expert 0 with `p = <list>` and one to expert 1 "
                                            r"with `p = <list>` give `f = <list>`, `P = <list>` "
                                            r"and a loss of `<num>`", md)
    p = np.vstack([array(kept)] * 3 + [array(other)])
    index = np.array([0, 0, 0, 1])
    assert np.argmax(p, axis=1).tolist() == index.tolist()
    assert_all_round_to(numbers(f_low), np.bincount(index) / 4)
    assert_all_round_to(numbers(P_low), p.mean(axis=0))
    assert_rounds_to(low, loss(p, index, 2))
    assert float(low) < 1.0
    # the identity, balance, collapse and P = f, on random routers
    rng = np.random.default_rng(0)
    for E in (2, 3, 8):
        logits = rng.normal(size=(50, E)) * 2
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        index = np.argmax(p, axis=1)
        f, P = np.bincount(index, minlength=E) / 50, p.mean(axis=0)
        assert loss(p, index, E) == pytest.approx(1 + E * np.sum((f - 1 / E) * (P - 1 / E)))
        assert loss(p, index, E) <= E
        assert loss(np.full((E, E), 1 / E), np.arange(E), E) == pytest.approx(1.0)
        assert loss(np.eye(E)[np.zeros(10, dtype=int)], np.zeros(10, dtype=int), E) == pytest.approx(E)
        matched = loss(np.eye(E)[index], index, E)                          # P = f
        assert matched == pytest.approx(E * np.sum(f * f)) and matched >= 1 - 1e-12
    text = " ".join(md.split())
    assert "So perfect balance is *not* the minimum" in text
    assert "smallest when the tokens spread evenly" not in text


# ---- The pictures before the code (01, 02, 05): the numbers their markdown states --------------------------------

def _given_cell(assignment: str, marker: str) -> str:
    """The one plain (non-nbgrader) code cell of an assignment whose source contains `marker`."""
    sources = [cell.source for cell in _cells(assignment) if cell.cell_type == "code"
               and not cell.get("metadata", {}).get("nbgrader") and marker in cell.source]
    assert len(sources) == 1, f"{assignment}: {len(sources)} given cells hold {marker!r}"
    return sources[0]


def test_01_error_against_eps_picture():
    text = " ".join(markdown("01_neuron").split())
    namespace = {"np": np}
    exec(_given_cell("01_neuron", "eps_sweep = ").split("fig, ax = plt.subplots")[0], namespace)
    eps, centered, one_sided = namespace["eps_sweep"], namespace["centered_error"], namespace["one_sided_error"]
    best_c, at_c, best_o, at_o = stated(r"the centered error is smallest, about `<num>`, at ε ≈ `<num>`; the "
                                        r"one-sided error never gets below about `<num>` \(at ε = `<num>`\)", text)
    assert_rounds_to(best_c, centered.min())
    assert_rounds_to(at_c, eps[np.argmin(centered)])
    assert_rounds_to(best_o, one_sided.min())
    assert_rounds_to(at_o, eps[np.argmin(one_sided)])
    default_c, default_o = stated(r"At the default ε = `1e-5` the centered error is about `<num>` and the one-sided "
                                  r"one about `<num>`", text)
    at_default = np.argmin(np.abs(eps - 1e-5))
    assert_rounds_to(default_c, centered[at_default])
    assert_rounds_to(default_o, one_sided[at_default])
    assert np.allclose(centered[eps > 1e-3], eps[eps > 1e-3] ** 2, rtol=1e-6)   # "exactly ε²" (up to round-off)
    assert "float64 keeps about 16 digits" in text and 15 < -math.log10(np.finfo(float).eps) < 16


def test_02_softmax_temperature_example():
    md, softmax = markdown("02_mlp"), reference("02_mlp")["softmax"]
    z = np.array([2.0, 1.0, 0.1])
    sharp, flat = stated(r"`\[2, 1, 0\.1\]` at `T = 0\.5` gives `<list>`\. .*? at `T = 2`, `<list>`", md)
    assert_all_round_to(numbers(sharp), softmax(z / 0.5))
    assert_all_round_to(numbers(flat), softmax(z / 2.0))
    namespace = {"np": np}
    exec(_given_cell("02_mlp", "def vote_shares(").split("\ndef draw_softmax_picture")[0], namespace)
    for shift in (0.0, -5.0, 1000.0):                    # the picture's formula is softmax, shift-invariant
        assert np.allclose(namespace["vote_shares"](z + shift), softmax(z))


def test_05_pictures_before_the_code():
    text, ref = " ".join(markdown("05_gating").split()), reference("05_gating")
    (peak,) = stated(r"its slope \$g\(1-g\)\$: largest \(<num>\) at logit 0", text)
    g = ref["sigmoid"](np.linspace(-8, 8, 2001))
    assert_rounds_to(peak, (g * (1 - g)).max())
    keys, length, fillers = stated(r"The first token is the key \(one of (\d+)\); the (\d+) after it are filler "
                                   r"\((\d+) kinds\)", text)
    X, y = ref["make_memory_task"](50, np.random.default_rng(0))
    assert (int(keys), int(length)) == (len(np.unique(X[:, 0])), X.shape[1] - 1) and np.array_equal(y, X[:, 0])
    assert int(fillers) == len(np.unique(X[:, 1:]))
    i, f, gg, o, c_prev, c, h = stated(r"gates are i, f, g, o = <num>, <num>, <num>, <num>, and `c_prev = <num>`\."
                                       r".*? they read <num> and <num>\.", text)
    namespace = dict(ref)
    exec(_given_cell("05_gating", "example_params = ").split("try:")[0], namespace)
    assert namespace["example_gates"] == {"i": float(i), "f": float(f), "g": float(gg), "o": float(o)}
    got_h, got_c, _ = ref["lstm_cell_forward"](np.zeros((1, 1)), np.zeros((1, 1)), np.array([[float(c_prev)]]),
                                               namespace["example_params"])
    assert_rounds_to(c, got_c[0, 0])
    assert_rounds_to(h, got_h[0, 0])


# ---- 03 Backprop, issue 11: the drills, AdamW in train_mlp, batch norm after evaluation, the recorded pictures ---

def _standardized_digits():
    with np.load(notebook_path("03_backprop", "source").parent / "digits_split.npz") as split:
        X, y = split["X_train"].astype(np.float64), split["y_train"].astype(np.int64)
    std = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0), y


def test_03_drills_numbers():
    text, ref = " ".join(markdown("03_backprop").split()), reference("03_backprop")
    X, y = _standardized_digits()
    (log_10,) = stated(r"its cross-entropy is `-log\(1/C\) = log C`, <num> for the ten digits", text)
    assert_rounds_to(log_10, math.log(10))
    low, high = stated(r"with 64 hidden units, seeds 0 to 9 give between <num> and <num>\.", text)
    initial = [ref["sanity_checks"](X, y, np.random.default_rng(seed), steps=1)["initial_loss"] for seed in range(10)]
    assert_rounds_to(low, min(initial))
    assert_rounds_to(high, max(initial))
    n01_low, n01_high = stated(r"weights drawn from N\(0, 1\) give <num> to <num>, seeds 0 to 9", text)
    n01 = []
    for seed in range(10):                               # init_mlp's draws, then N(0, 1) weights from the same rng
        rng = np.random.default_rng(seed)
        params = ref["init_mlp"]([64, 64, 10], rng)
        params = {k: (rng.normal(size=v.shape) if k.startswith("W") else v) for k, v in params.items()}
        n01.append(ref["mlp_loss_and_grads"](X, y, params)[0])
    assert int(n01_low) == round(min(n01)) and int(n01_high) == round(max(n01))
    first, last = stated(r"brings their loss from <num> to <num> in 100 steps \(seed 0\), with all 20 right", text)
    drills = ref["sanity_checks"](X, y, np.random.default_rng(0))
    assert len(drills["small_losses"]) == 100 and drills["small_accuracy"] == 1.0
    assert_rounds_to(first, drills["small_losses"][0])
    assert float(f"{drills['small_losses'][-1]:.1e}") == float(last)
    n_params = sum(v.size for v in ref["init_mlp"]([64, 64, 10], np.random.default_rng(0)).values())
    assert "A network with thousands of parameters must be able to memorise 20 images" in text
    assert 1000 <= n_params < 10000
    # the pass marks the markdown states are the checks' own
    from graders.visible.backprop import INITIAL_LOSS_MARGIN, OVERFIT_LOSS
    (margin, limit) = stated(r"The checks pass when the initial loss is within <num> of `log C`, the last loss is "
                             r"below <num> with", text)
    assert float(margin) == INITIAL_LOSS_MARGIN and float(limit) == OVERFIT_LOSS
    assert max(initial) - math.log(10) < INITIAL_LOSS_MARGIN < min(n01) - math.log(10)


def test_03_train_mlp_schedule_and_adamw_reach_the_target():
    text, ref = " ".join(markdown("03_backprop").split()), reference("03_backprop")
    source = solution_source("03_backprop", "sol_train_mlp")
    (decay,) = stated(r"its decoupled decay \(`weight_decay = <num>`\) on the weight matrices only", text)
    assert f"weight_decay={decay}," in source
    assert "epoch `e` (counted from 0) uses `lr · ½(1 + cos(π e / epochs))` for all its steps" in text
    assert "lr * 0.5 * (1.0 + np.cos(np.pi * epoch / epochs))" in source
    (norm,) = stated(r"Gradients are clipped at a global norm of <num> as cheap insurance", text)
    assert "max_norm=5.0" in source and float(norm) == 5.0
    with np.load(notebook_path("03_backprop", "source").parent / "digits_split.npz") as split:
        X_train, X_val = split["X_train"].astype(np.float64), split["X_val"].astype(np.float64)
        y_train, y_val = split["y_train"].astype(np.int64), split["y_val"].astype(np.int64)
    predict, history = ref["train_mlp"](X_train, y_train, X_val, y_val, np.random.default_rng(0))
    assert np.mean(predict(X_val) == y_val) >= 0.97
    steps = np.ceil(len(X_train) / 32)
    assert len(history["loss"]) == 40 * steps


def test_03_batchnorm_backward_after_evaluation_is_the_affine_map():
    text, ref = " ".join(markdown("03_backprop").split()), reference("03_backprop")
    assert "The layer is then a plain affine map" in text and "the cache must remember which mode made it" in text
    contract = (notebook_path("03_backprop", "source").parents[1] / "CONTRACT.md").read_text()
    assert "after evaluation mode the running statistics are constants" in contract
    rng = np.random.default_rng(0)
    X, gamma, beta, dout = rng.normal(size=(5, 3)), rng.normal(size=3), rng.normal(size=3), rng.normal(size=(5, 3))
    running = {"mean": rng.normal(size=3), "var": rng.uniform(0.5, 2, size=3)}
    _, cache, _ = ref["batchnorm_forward"](X, gamma, beta, running, False)
    dX, dgamma, dbeta = ref["batchnorm_backward"](dout, cache)
    inv_std = 1 / np.sqrt(running["var"] + 1e-5)
    assert np.allclose(dX, dout * gamma * inv_std)
    assert np.allclose(dgamma, (dout * (X - running["mean"]) * inv_std).sum(axis=0))
    assert np.allclose(dbeta, dout.sum(axis=0))


def test_03_recorded_pictures_are_what_the_solution_draws():
    """backprop_figures.npz (the pictures before the exercises) holds what the reference and the notebook's own
    figure helpers compute today; rewrite it with graders.hidden.backprop.write_figure_recordings()."""
    from graders.hidden.backprop import FIGURES_FILE, figure_recordings
    with np.load(notebook_path("03_backprop", "source").parent / FIGURES_FILE) as recorded:
        shipped = {name: recorded[name] for name in recorded.files}
    fresh = figure_recordings()
    assert set(shipped) == set(fresh)
    for name, value in fresh.items():
        assert np.allclose(shipped[name], value, rtol=1e-6, atol=1e-9, equal_nan=True), name
    text = " ".join(markdown("03_backprop").split())
    assert text.count("Picture first:") == 5 and text.count("(recorded)") == 5
    (kept,) = stated(r"the kept entries become `1 / 0\.6 ≈ <num>`", text)
    assert_rounds_to(kept, shipped["dropout_ones"].max())



# ---- 04 Attention, issue 11: a tiny GPT (train_char_lm, generate_greedy, sample) ----------------------------------

def _story() -> str:
    """The text Part 7 of 04 trains on, as the notebook reads it."""
    with np.load(notebook_path("04_attention", "source").parent / "lighthouse_text.npz", allow_pickle=False) as data:
        return data["text"].tobytes().decode("ascii")


def test_04_temperature_and_top_k_table():
    md, softmax = markdown("04_attention"), reference("04_attention")["softmax"]
    (logits,) = stated(r"\*\*Small numbers\.\*\* Logits `<list>`:", md)
    ell = array(logits)
    rows = {line.split("|")[1].strip(): numbers(line.split("|", 2)[2]) for line in md.splitlines()
            if line.startswith("| `τ = ")}
    assert set(rows) == {"`τ = 1`", "`τ = 0.5` (colder)", "`τ = 2` (hotter)", "`τ = 1`, `top_k = 2`"}
    for tau, key in ((1.0, "`τ = 1`"), (0.5, "`τ = 0.5` (colder)"), (2.0, "`τ = 2` (hotter)")):
        assert_all_round_to(rows[key], softmax(ell / tau))
    assert_all_round_to(rows["`τ = 1`, `top_k = 2`"], softmax(np.where(ell >= np.sort(ell)[-2], ell, -np.inf)))


def test_04_hello_shifted_by_one():
    md, ref = markdown("04_attention"), reference("04_attention")
    letters, ids, inputs, targets = stated(r"The word `hello` with the vocabulary `([a-z, ]+)` \(ids 0 to 3\) is "
                                           r"`ids = <list>`\. The inputs are `<list>` \(`hell`\), the targets `<list>` "
                                           r"\(`ello`\)", md)
    vocab = ref["char_vocabulary"]("hello")
    assert letters.split(", ") == vocab
    encoded = ref["encode"]("hello", vocab)
    assert np.array_equal(array(ids), encoded)
    assert np.array_equal(array(inputs), encoded[:-1]) and np.array_equal(array(targets), encoded[1:])
    assert ref["decode"](encoded, vocab) == "hello"


def test_04_window_picture_is_the_story_shifted_by_one():
    md = markdown("04_attention")
    window, inputs, targets = (re.sub(r"\s+", "", row).replace("_", " ") for row in stated(
        r"context \+ 1 = 9 characters\):((?:\x20+\S)+) .*?\(8 positions\):((?:\x20+\S)+) .*?\(8 positions\):((?:\x20+\S)+)",
        md))  # \x20: a space that, unlike " " in `stated`, does not match a line break
    story = _story()
    assert window == story[:9] and inputs == window[:-1] and targets == window[1:]
    assert "position 3 reads \"the_\" and must say \"k\"" in md


def test_04_train_char_lm_settings_and_budget_are_the_reference_and_the_check():
    import inspect

    from graders.hidden import attention as hidden_checks
    md, ref = markdown("04_attention"), reference("04_attention")
    source = solution_source("04_attention", "sol_train_char_lm")
    D, heads, F, batch, lr, steps = stated(r"Settings that work: `D = (\d+)`, (\d+) heads, `F = (\d+)`,\s+minibatches "
                                           r"of (\d+), `lr = (\S+)`, (\d+) steps", md)
    for key, value in (("d_model", D), ("n_heads", heads), ("d_ff", F), ("batch_size", batch), ("lr", lr)):
        assert f'config.get("{key}", {value})' in source
    defaults = inspect.signature(ref["train_char_lm"]).parameters
    assert defaults["steps"].default == int(steps) and defaults["context"].default == 16
    assert "200 steps, one block and 16 characters of context" in " ".join(md.split())
    loss, budget = stated(r"require a loss of\s+at most (\S+) nats per character on it within \*\*(\d+) s on one core\*\*", md)
    assert float(loss) == hidden_checks.CHAR_LM_LOSS and float(budget) == hidden_checks.CHAR_LM_BUDGET
    hidden_cell = solution_source("04_attention", "test_train_char_lm_hidden")
    assert f"at most {loss} nats per character within {budget} s" in hidden_cell


@pytest.mark.slow  # trains the notebook's model on the story (a few seconds on one core)
def test_04_greedy_decoding_of_the_story_model_loops():
    ref = reference("04_attention")
    story = _story()
    vocab = ref["char_vocabulary"](story)
    model, _ = ref["train_char_lm"](ref["encode"](story, vocab), len(vocab), np.random.default_rng(0))
    prompt = ref["encode"]("the keeper of th", vocab)[None, :]       # the notebook's prompt and seed
    written = ref["decode"](ref["generate_greedy"](model, prompt, 120, context=16)[0], vocab)
    tail = written[-60:]
    assert any(tail[period:] == tail[:-period] for period in range(1, 30)), written   # one phrase, over and over


# ---- Issue 11, the pictures before the code (01 hyperplane, 02 regions and losses, 04 one-hot times E, 03 MSE) ----

def test_01_hyperplane_diagram_distances():
    text, neuron = " ".join(markdown("01_neuron").split()), reference("01_neuron")["neuron"]
    namespace = {"np": np}
    exec(_given_cell("01_neuron", "def level_line(").split("\n# the foot")[0], namespace)
    w, b = namespace["w_demo"], namespace["b_demo"]
    w_text, b_text, norm, offset, step = stated(r"For `w = <list>` and `b = <num>` below, `\|w\| = <num>`, so the "
                                                r"dashed line passes `\|b\| / \|w\| = <num>` from the origin and each "
                                                r"further `<num>` along `w` adds 0\.5 to the output", text)
    assert np.array_equal(array(w_text), w) and float(b_text) == b
    assert_rounds_to(norm, np.linalg.norm(w))
    assert_rounds_to(offset, abs(b) / np.linalg.norm(w))
    assert_rounds_to(step, 0.5 / np.linalg.norm(w))
    unit = w / np.linalg.norm(w)
    foot = -b * w / np.dot(w, w)
    assert neuron(foot, w, b) == pytest.approx(0.0, abs=1e-12)
    for k in range(1, 5):                                # each step along w adds 0.5, on the diagram's lines too
        point = foot + k * (0.5 / np.linalg.norm(w)) * unit
        assert neuron(point, w, b) == pytest.approx(0.5 * k)
        on_line = np.stack([namespace["grid"], namespace["level_line"](0.5 * k)], axis=1)
        assert np.allclose(on_line @ w + b, 0.5 * k)


def test_02_recorded_regions_are_what_the_reference_draws_and_depth_wins():
    """mlp_figures.npz (the region picture before Exercise 2.3) holds what the reference layers and the notebook's
    figure cell compute today; rewrite it with graders.hidden.mlp.write_figure_recordings()."""
    from graders.hidden.mlp import FIGURES_FILE, figure_recordings
    with np.load(notebook_path("02_mlp", "source").parent / FIGURES_FILE) as recorded:
        shipped = {name: recorded[name] for name in recorded.files}
    fresh = figure_recordings()
    assert set(shipped) == set(fresh) == {"regions_0", "regions_1", "regions_2"}
    for name, value in fresh.items():
        assert np.array_equal(shipped[name], value), name
    one, deep, wide = (int(shipped[f"regions_{k}"].max()) + 1 for k in range(3))
    text = " ".join(markdown("02_mlp").split())
    assert "With the same 12 units, the two-layer network has more regions than the wide one" in text
    assert deep > wide and one <= 1 + 6 + math.comb(6, 2)
    assert text.count("(recorded)") == 1 and "Picture again: how your layers fold the plane" in text


def test_02_loss_pictures_before_the_code():
    text, ref = " ".join(markdown("02_mlp").split()), reference("02_mlp")
    p0, p1, log3 = stated(r"The two rows of the small example sit at `p = <num>` and `p = <num>`, where the curve "
                          r"reads their surprises, and the loss is their mean \(dashed\)\. The dotted line is "
                          r"`log 3 = <num>`", text)
    logits, y = np.array([[2.0, 1.0, 0.1], [0.0, 0.0, 3.0]]), np.array([0, 2])
    probs = ref["softmax"](logits)[np.arange(2), y]
    assert_all_round_to([p0, p1], probs)
    assert_rounds_to(log3, math.log(3))
    assert ref["cross_entropy"](logits, y) == pytest.approx(np.mean(-np.log(probs)))
    namespace = {"np": np}
    exec(_given_cell("02_mlp", "def vote_shares(").split("\ndef draw_softmax_picture")[0], namespace)
    exec(_given_cell("02_mlp", "p_rows = np.array([vote_shares").split("fig, ax")[0], namespace)
    assert np.allclose(namespace["p_rows"], probs)
    errors, mean = stated(r"sit on the parabola below at errors (\d+, \d+ and \d+); their mean, the dashed line, is "
                          r"`4/3 = <num>`", text)
    pred, target = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0])
    assert [int(e) for e in numbers(errors)] == list(pred - target)
    assert_rounds_to(mean, ref["mse_loss"](pred, target))


def test_04_one_hot_times_e_picture():
    text, ref = " ".join(markdown("04_attention").split()), reference("04_attention")
    ids, vocab, width, t, v, d, product = stated(r"for the small example's `ids = <list>` and a made-up `E` of `V = "
                                                 r"(\d+)` tokens and `D = (\d+)` columns.*?without multiplying "
                                                 r"`(\d+) · (\d+) · (\d+) = (\d+)` numbers", text)
    namespace = {"np": np}
    exec(_given_cell("04_attention", "one_hot_demo = ").split("\ndef draw_one_hot_product")[0], namespace)
    ids_demo, E, one_hot = namespace["ids_demo"], namespace["E_demo"], namespace["one_hot_demo"]
    assert np.array_equal(array(ids), ids_demo) and "`ids = [2, 0, 2]`, `dout = " in text   # the small example's
    assert E.shape == (int(vocab), int(width)) and (int(t), int(v), int(d)) == one_hot.shape + E.shape[1:]
    assert int(product) == one_hot.shape[0] * one_hot.shape[1] * E.shape[1]
    assert np.array_equal(one_hot.sum(axis=1), np.ones(len(ids_demo)))
    assert np.array_equal(one_hot @ E, ref["embedding_forward"](ids_demo, E)[0])


def test_03_mse_backward_example():
    text, ref = " ".join(markdown("03_backprop").split()), reference("03_backprop")
    pred, target, diff, m, loss, dpred = stated(r"`pred = <list>`, `target = <list>`: `pred - target = <list>`, "
                                                r"`M = (\d+)`, the loss is `\(0\.25 \+ 1 \+ 1\) / 6 = <num>`, and "
                                                r"`dpred = 2 \(pred - target\) / 6 = <list>`", text)
    pred, target = array(pred), array(target)
    assert np.array_equal(pred - target, array(diff)) and int(m) == pred.size == 6
    assert 0.25 + 1 + 1 == np.sum((pred - target) ** 2)
    assert_rounds_to(loss, np.mean((pred - target) ** 2))
    got = ref["mse_backward"](pred, target)
    assert_all_round_to(numbers(dpred), got)
    nudged_loss, rise, slope, predicted = stated(r"`pred\[0, 2\] = 1\.01` gives a loss of `<num>`, up by `<num>`, "
                                                 r"where the gradient predicts `<num> · 0\.01 = <num>` \(the rest is "
                                                 r"the curvature, `0\.01² / 6`\)", text)
    nudged = pred.copy()
    nudged[0, 2] += 0.01
    assert pred[0, 2] + 0.01 == pytest.approx(1.01)
    assert_rounds_to(nudged_loss, np.mean((nudged - target) ** 2))
    assert_rounds_to(rise, np.mean((nudged - target) ** 2) - np.mean((pred - target) ** 2))
    assert_rounds_to(slope, got[0, 2])
    assert_rounds_to(predicted, got[0, 2] * 0.01)
    assert (np.mean((nudged - target) ** 2) - np.mean((pred - target) ** 2)) - got[0, 2] * 0.01 == \
        pytest.approx(0.01 ** 2 / 6)
    batch_only, factor = stated(r"Dividing by the batch size `N = 2` instead of `M = 6` would give `<list>`: (\d+) "
                                r"times too large", text)
    assert np.allclose(array(batch_only), 2 * (pred - target) / pred.shape[0])
    assert int(factor) == pred.size // pred.shape[0]
    head = " ".join(_cells("03_backprop")[0].source.split())
    assert "| 2. Where the gradient starts | `softmax_cross_entropy`, `mse_backward` | 7 |" in head


def test_04_dbk_is_zero_up_to_rounding_some_15_orders_below_dbq():
    text = " ".join(markdown("04_attention").split())
    stated(r"\*\*`dbk` is zero, up to rounding\*\* \(in float64 its entries are some 15 orders of magnitude smaller "
           r"than those of `dbq`\)", text)
    ref, ratios = reference("04_attention"), []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        N, T, D, H = 2, 5, 8, 2
        params = {k: rng.normal(size=(D, D)) for k in ("Wq", "Wk", "Wv", "Wo")}
        params.update({k: rng.normal(size=D) for k in ("bq", "bk", "bv", "bo")})
        out, cache = ref["mha_forward"](rng.normal(size=(N, T, D)), params, H)
        _, grads = ref["mha_backward"](rng.normal(size=out.shape), cache)
        ratios.append(np.abs(grads["bk"]).max() / np.abs(grads["bq"]).max())
    assert order_of_magnitude(np.median(ratios)) == -15 and max(ratios) < 1e-13
