"""How targets and outputs are read: one rule each, shared by the data checks, training and the
Monte Carlo metrics, so they never disagree about what a data set or a model means."""

from __future__ import annotations

import numpy as np

PROBABILITY_TOLERANCE = 1e-3  # rows of a float16 softmax sum to 1 within this


def is_one_hot(y: np.ndarray) -> bool:
    """Class targets as rows of zeros with a single one (two or more columns)."""
    y = np.asarray(y)
    return (y.ndim == 2 and y.shape[1] > 1 and bool(np.all((y == 0) | (y == 1)))
            and bool(np.all(y.sum(1) == 1)))


def are_probabilities(outputs: np.ndarray) -> bool:
    """Whether classifier outputs are probabilities (a softmax: non-negative rows summing to 1)
    rather than logits."""
    outputs = np.asarray(outputs, dtype=np.float64)
    return bool(outputs.min() >= 0 and
                np.allclose(outputs.sum(-1), 1.0, rtol=0, atol=PROBABILITY_TOLERANCE))
