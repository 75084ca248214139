"""The per-example kernels against plain per-example loops."""

import numpy as np
import pytest
from keras import ops

from aconnect import per_example


def test_group_index_is_balanced_and_covers_every_group():
    for batch, groups in [(10, 3), (9, 4), (7, 7), (2, 5), (256, 1)]:
        g = ops.convert_to_numpy(per_example.group_index(batch, groups))
        assert list(g) == [i * groups // batch for i in range(batch)]
        counts = np.bincount(g)
        assert len(np.unique(g)) == min(batch, groups)
        assert counts[counts > 0].max() - counts[counts > 0].min() <= 1


@pytest.mark.parametrize("batch, groups, middle", [(7, 7, ()), (10, 3, ()), (2, 5, ()),
                                                   (6, 4, (3,))])
def test_grouped_dense_matches_a_loop(rng, batch, groups, middle):
    x = rng.normal(size=(batch,) + middle + (5,)).astype("float32")
    kernels = rng.normal(size=(groups, 5, 4)).astype("float32")
    biases = rng.normal(size=(groups, 4)).astype("float32")
    y = ops.convert_to_numpy(per_example.grouped_dense(x, kernels, biases, groups))
    g = [i * groups // batch for i in range(batch)]
    expected = np.stack([x[i] @ kernels[g[i]] + biases[g[i]] for i in range(batch)])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strides, padding, dilation", [((1, 1), "same", (1, 1)),
                                                         ((2, 2), "valid", (1, 1)),
                                                         ((1, 1), "same", (2, 2))])
def test_per_example_conv2d_matches_a_loop(rng, strides, padding, dilation):
    x = rng.normal(size=(5, 8, 8, 3)).astype("float32")
    kernels = rng.normal(size=(5, 3, 3, 3, 4)).astype("float32")  # (B, kh, kw, C, F)
    stacked = np.moveaxis(kernels, 0, -2)  # (kh, kw, C, B, F)
    y = ops.convert_to_numpy(per_example.per_example_conv(x, stacked, strides, padding, dilation))
    expected = np.concatenate([
        ops.convert_to_numpy(ops.conv(x[i:i + 1], kernels[i], strides, padding,
                                      dilation_rate=dilation)) for i in range(5)])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_per_example_conv1d_matches_a_loop(rng):
    x = rng.normal(size=(4, 11, 2)).astype("float32")
    kernels = rng.normal(size=(4, 3, 2, 5)).astype("float32")
    y = ops.convert_to_numpy(
        per_example.per_example_conv(x, np.moveaxis(kernels, 0, -2), (1,), "valid", (1,)))
    expected = np.concatenate([ops.convert_to_numpy(ops.conv(x[i:i + 1], kernels[i]))
                               for i in range(4)])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_per_example_depthwise_matches_a_loop(rng):
    x = rng.normal(size=(4, 7, 7, 3)).astype("float32")
    kernels = rng.normal(size=(4, 3, 3, 3, 2)).astype("float32")  # (B, kh, kw, C, mult)
    y = ops.convert_to_numpy(per_example.per_example_depthwise(
        x, np.moveaxis(kernels, 0, 2), (2, 2), "same", (1, 1)))
    expected = np.concatenate([
        ops.convert_to_numpy(ops.depthwise_conv(x[i:i + 1], kernels[i], 2, "same"))
        for i in range(4)])
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
