"""The example class that `./course demo` grades and `tests/test_demo.py` checks score by score.

Each student hands in one notebook per assignment, made from the release notebook (see graders/examples.py).
Every assignment gets ada (the source notebook itself: the proof that the instructor's solutions earn every
autograded point through nbgrader) and dev (the untouched release: the proof that it runs and earns 0); assignment 01
gets the whole class.

Written answers (the `written_<topic>` cells a TA grades in formgrader) earn nothing at autograding: ada's is
the model answer of the source notebook, ben's is weak, cleo's half right, and the rest leave nbgrader's
"YOUR ANSWER HERE" (nbgrader scores an untouched answer 0 and does not ask a TA to grade it).
"""
from graders.tooling.course import autograded_points, available_assignments
from graders.tooling.examples import Submission

STUDENTS = {
    "ada": "every autograded point: hands in the instructor's source notebook itself (model written answers)",
    "ben": "partly done: Part 1 and the first activations, nothing after; a weak written answer",
    "cleo": ("classic mistakes: a sigmoid that overflows, relu_grad(0) = 1, a gradient missing its 1/N; "
             "a half-right written answer"),
    "dev": "never touched the release notebook",
    "eve": "a broken file: the notebook was cut off half way through saving (invalid JSON)",
    "finn": "deleted the sigmoid test cells and wrote the overflowing sigmoid",
}

#: Answers to 01's Question 4.4 (why does the loss stop above 0?): ben's names neither reason the rubric asks
#: for, cleo's names the overlap but not what separable data would do.
WEAK_ANSWER = "The learning rate is too small: with more steps the loss would reach 0."
HALF_ANSWER = ("The two clouds overlap, so whatever line the neuron draws some points stay on the wrong side, and "
               "they keep the loss above 0.")

NAIVE_SIGMOID = """
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))
"""

SUBMISSIONS = {
    "01_neuron": {
        "ada": Submission(fill="source"),
        "ben": Submission(fill=("sol_cosine_similarity", "sol_neuron", "sol_sigmoid", "sol_sigmoid_grad", "sol_relu"),
                          answers={"written_loss_floor": WEAK_ANSWER}),
        "cleo": Submission(fill="all", replace={
            "sigmoid": NAIVE_SIGMOID,
            "relu_grad": """
def relu_grad(z):
    return (z >= 0).astype(float)
""",
            "logistic_regression_loss_and_grad": """
def logistic_regression_loss_and_grad(X, y, w, b):
    z = X @ w + b
    dz = sigmoid(z) - y
    return bce_with_logits(z, y), X.T @ dz, float(np.sum(dz))
"""}, answers={"written_loss_floor": HALF_ANSWER}),
        "dev": Submission(fill="none"),
        "eve": Submission(fill="all", corrupt=True),
        "finn": Submission(fill="all", replace={"sigmoid": NAIVE_SIGMOID},
                           delete=("test_sigmoid_visible", "test_sigmoid_hidden")),
    },
}
for _assignment in available_assignments("source"):
    SUBMISSIONS.setdefault(_assignment, {"ada": Submission(fill="source"), "dev": Submission(fill="none")})

#: Total score per assignment and student after autograding, checked by tests/test_demo.py: written answers
#: count only once a TA grades them (ada's full marks are then autograded_points + written_points).
#: cleo loses sigmoid's hidden 3, sigmoid_grad's hidden 2 (its extremes overflow), relu_grad's hidden 2, and
#: all 10 of logistic regression and training (the missing 1/N); finn's deleted cells are put back by
#: nbgrader, and his sigmoid loses the same 3 + 2 as cleo's, and logistic regression's hidden 4 (its loss, through
#: his sigmoid, overflows on logits of -1000).
EXPECTED_SCORES = {
    "01_neuron": {"ada": 53, "ben": 18, "cleo": 36, "dev": 0, "eve": 0, "finn": 44},
}
for _assignment in SUBMISSIONS:
    EXPECTED_SCORES.setdefault(_assignment, {"ada": autograded_points(_assignment), "dev": 0})
