"""The quantizers: allowed levels only, straight-through gradients."""

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from aconnect.quantize import quantize


def test_binary_takes_only_plus_and_minus_one(rng):
    w = rng.normal(size=(200, 30)).astype("float32")
    w[0, 0] = 0.0
    q = ops.convert_to_numpy(quantize(w, 1))
    assert set(np.unique(q)) == {-1.0, 1.0}
    assert q[0, 0] == -1.0  # zero is stored as a non-positive cell
    np.testing.assert_array_equal(q > 0, w > 0)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_uniform_levels_are_symmetric_multiples_of_the_step(rng, bits):
    w = rng.normal(size=(300, 40)).astype("float32") * 0.05
    q = ops.convert_to_numpy(quantize(w, bits))
    top = 2 ** (bits - 1) - 1
    step = np.abs(w).max() / top
    k = q / step
    np.testing.assert_allclose(k, np.round(k), atol=1e-3)
    assert np.abs(np.round(k)).max() <= top
    assert len(np.unique(np.round(k))) <= 2 ** bits - 1
    assert np.abs(q - w).max() <= step / 2 + 1e-6


def test_straight_through_gradients():
    w = tf.Variable([-2.0, -0.5, 0.3, 1.5])
    with tf.GradientTape(persistent=True) as tape:
        binary = tf.reduce_sum(quantize(w, 1) * tf.constant([1.0, 2.0, 3.0, 4.0]))
        four = tf.reduce_sum(quantize(w, 4) * tf.constant([1.0, 2.0, 3.0, 4.0]))
    # Binary: gradient passes only where |w| <= 1 (clipped straight-through).
    np.testing.assert_allclose(tape.gradient(binary, w).numpy(), [0.0, 2.0, 3.0, 0.0])
    np.testing.assert_allclose(tape.gradient(four, w).numpy(), [1.0, 2.0, 3.0, 4.0])


def test_no_bits_is_identity(rng):
    w = rng.normal(size=(5, 5)).astype("float32")
    assert quantize(w, None) is w
