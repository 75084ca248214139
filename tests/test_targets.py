"""One rule for one-hot targets and one for probabilities, used by every stage."""

import numpy as np
import pytest

from aconnect.montecarlo import _task
from aconnect.targets import are_probabilities, is_one_hot


@pytest.mark.parametrize("y, expected", [
    (np.eye(4)[[0, 2, 3]], True),
    (np.array([[1, 0], [0, 1]], dtype="float32"), True),
    (np.array([[1, 1, 0], [0, 1, 0]]), False),   # multi-label: not one class per row
    (np.array([[0, 0, 0], [0, 1, 0]]), False),   # a row with no class
    (np.array([[0.9, 0.1], [0.0, 1.0]]), False),  # soft labels
    (np.array([[1], [0]]), False),               # one column is a regression target
    (np.array([0, 1, 2]), False),
])
def test_one_hot(y, expected):
    assert is_one_hot(y) is expected


def test_monte_carlo_reads_targets_like_the_data_check():
    multi_label = np.array([[1, 1, 0], [0, 1, 0]])
    assert _task(multi_label, 3, "auto") == "regression"
    assert _task(np.eye(3)[[0, 1]], 3, "auto") == "classification"
    assert _task(np.array([0, 2]), 3, "auto") == "classification"


def test_probabilities_versus_logits():
    logits = np.random.default_rng(0).normal(size=(8, 5)) * 3
    softmax = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert are_probabilities(softmax)
    assert are_probabilities(softmax.astype("float16"))
    assert not are_probabilities(logits)
    assert not are_probabilities(np.abs(logits))  # non-negative, rows not summing to 1
