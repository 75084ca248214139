"""What the A-Connect layers compute: per-example masks, exactness at zero mismatch, statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from aconnect import AConnectConv1D, AConnectConv2D, AConnectDense, AConnectDepthwiseConv2D, Mismatch
from layer_cases import CASE_IDS, CASES, built

NOISELESS = Mismatch(sigma=0.0)


def _rows(y):
    y = ops.convert_to_numpy(y)
    return y.reshape(len(y), -1)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_identical_inputs_get_independent_masks_in_training(rng, case):
    layer = built(case.make(mismatch=0.5, seed=3), case)
    x = np.repeat(rng.normal(size=(1,) + case.input_shape).astype("float32"), 12, axis=0)
    rows = _rows(layer(x, training=True))
    assert len(np.unique(rows.round(5), axis=0)) == 12
    # Inference is nominal: every example gives the same output.
    assert len(np.unique(_rows(layer(x)).round(5), axis=0)) == 1


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("batch, groups", [(10, 3), (9, 4), (2, 5)])
def test_masks_per_batch_gives_exactly_k_behaviours(rng, case, batch, groups):
    layer = built(case.make(mismatch=Mismatch(0.5, masks_per_batch=groups), seed=5), case)
    x = np.repeat(rng.normal(size=(1,) + case.input_shape).astype("float32"), batch, axis=0)
    rows = _rows(layer(x, training=True)).round(5)
    assert len(np.unique(rows, axis=0)) == min(batch, groups)
    group = [i * groups // batch for i in range(batch)]
    for i in range(batch):
        for j in range(batch):
            assert np.array_equal(rows[i], rows[j]) == (group[i] == group[j])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_no_mismatch_is_exactly_the_plain_layer_outputs_and_gradients(rng, case):
    ours = built(case.make(mismatch=NOISELESS), case)
    plain = case.plain()
    plain.build((None,) + case.input_shape)
    ours.kernel.assign(rng.normal(size=ours.kernel.shape).astype("float32"))
    ours.bias.assign(rng.normal(size=ours.bias.shape).astype("float32"))
    plain.set_weights([ours.kernel.numpy(), ours.bias.numpy()])
    x = tf.constant(rng.normal(size=(8,) + case.input_shape).astype("float32"))
    for training in (True, False):
        grads = []
        for layer in (ours, plain):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=training)
                loss = tf.reduce_sum(y * y)
            grads.append((y.numpy(), *[g.numpy() for g in tape.gradient(
                loss, [x, layer.kernel, layer.bias])]))
        for ours_value, plain_value in zip(*grads):
            np.testing.assert_array_equal(ours_value, plain_value)


def _analytic_dense(x, kernel, bias, m):
    mu_w, v_w = m.weight_moments()
    mu_b, v_b = m.bias_moments()
    return x @ kernel * mu_w + bias * mu_b, (x ** 2) @ (kernel ** 2) * v_w + bias ** 2 * v_b


@pytest.mark.parametrize("distribution", ["normal", "lognormal"])
def test_dense_fast_and_exact_paths_share_the_output_distribution(rng, distribution):
    m = Mismatch(0.5, distribution=distribution)
    n = 20_000
    x1 = rng.normal(size=(1, 8)).astype("float32")
    x = np.repeat(x1, n, axis=0)
    fast, exact = AConnectDense(4, mismatch=m, seed=1), AConnectDense(4, mismatch=m, seed=2,
                                                                      exact=True)
    for layer in (fast, exact):
        layer.build((None, 8))
    exact.set_weights(fast.get_weights())
    fast.bias.assign(rng.normal(size=4).astype("float32"))
    exact.bias.assign(fast.bias.numpy())
    mean, var = _analytic_dense(x1[0], fast.kernel.numpy(), fast.bias.numpy(), m)
    for layer in (fast, exact):
        y = ops.convert_to_numpy(layer(x, training=True)).astype(np.float64)
        std_err = np.sqrt(var / n)
        assert np.all(np.abs(y.mean(0) - mean) < 5 * std_err), layer.name
        # The variance estimate's error depends on the kurtosis; 6 % is > 5 standard errors.
        np.testing.assert_allclose(y.var(0), var, rtol=0.06, err_msg=layer.name)


def test_dense_fast_and_exact_paths_give_the_same_expected_weight_gradient(rng):
    m = Mismatch(0.5)
    n = 40_000
    x1 = rng.normal(size=(1, 6)).astype("float32")
    x = tf.constant(np.repeat(x1, n, axis=0))
    target = rng.normal(size=3).astype("float32")
    fast = AConnectDense(3, mismatch=m, seed=1)
    exact = AConnectDense(3, mismatch=m, seed=2, exact=True)
    fast.build((None, 6))
    exact.build((None, 6))
    exact.set_weights(fast.get_weights())
    grads = []
    for layer in (fast, exact):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.reduce_sum((layer(x, training=True) - target) ** 2, -1))
        grads.append(tape.gradient(loss, layer.kernel).numpy())
    # d/dW E[(y - t)^2] = 2 (mean - t) x mu + 2 x^2 W var, column by column.
    kernel, bias = fast.kernel.numpy(), fast.bias.numpy()
    mu, v = m.weight_moments()
    mean, _ = _analytic_dense(x1[0], kernel, bias, m)
    expected = 2 * np.outer(x1[0], mean - target) * mu + 2 * np.outer(x1[0] ** 2, 1) * kernel * v
    scale = np.abs(expected).max()
    for grad in grads:
        np.testing.assert_allclose(grad, expected, atol=0.05 * scale)
    np.testing.assert_allclose(grads[0], grads[1], atol=0.07 * scale)


CONV_STATS = [
    (lambda m: AConnectConv2D(3, 3, mismatch=m, seed=4), (5, 5, 2),
     lambda x, k: ops.conv(x, k)),
    (lambda m: AConnectConv1D(3, 2, mismatch=m, seed=4), (6, 2),
     lambda x, k: ops.conv(x, k)),
    (lambda m: AConnectDepthwiseConv2D(3, depth_multiplier=2, mismatch=m, seed=4), (5, 5, 2),
     lambda x, k: ops.depthwise_conv(x, k, 1, "valid")),
]


@pytest.mark.parametrize("make, shape, conv", CONV_STATS, ids=["conv2d", "conv1d", "depthwise"])
@pytest.mark.parametrize("distribution", ["normal", "lognormal"])
def test_conv_outputs_follow_the_mask_moments(rng, make, shape, conv, distribution):
    m = Mismatch(0.4, distribution=distribution)
    layer = make(m)
    layer.build((None,) + shape)
    layer.bias.assign(rng.normal(size=layer.bias.shape).astype("float32"))
    x1 = rng.normal(size=(1,) + shape).astype("float32")
    n = 6000
    y = ops.convert_to_numpy(layer(np.repeat(x1, n, 0), training=True)).astype(np.float64)
    k, b = layer.kernel.numpy(), layer.bias.numpy()
    mu_w, v_w = m.weight_moments()
    mu_b, v_b = m.bias_moments()
    mean = ops.convert_to_numpy(conv(x1, k))[0] * mu_w + b * mu_b
    var = ops.convert_to_numpy(conv(x1 ** 2, k ** 2))[0] * v_w + b ** 2 * v_b
    assert np.all(np.abs(y.mean(0) - mean) < 5 * np.sqrt(var / n) + 1e-6)
    np.testing.assert_allclose(y.var(0), var, rtol=0.12, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: AConnectConv2D(1, 1, use_bias=False, mismatch=0.5),
    lambda: AConnectConv1D(1, 1, use_bias=False, mismatch=0.5),
    lambda: AConnectDepthwiseConv2D(1, use_bias=False, mismatch=0.5),
], ids=["conv2d", "conv1d", "depthwise"])
def test_conv_mask_is_shared_by_every_position_of_an_example(rng, make):
    layer = make()
    shape = (4, 4, 1) if layer.rank == 2 else (6, 1)
    x = np.abs(rng.normal(size=(16,) + shape)).astype("float32") + 0.1
    y = ops.convert_to_numpy(layer(x, training=True))
    ratio = (y / x).reshape(16, -1)  # = kernel * mask_i at every position
    np.testing.assert_allclose(ratio, ratio[:, :1].repeat(ratio.shape[1], 1), rtol=1e-4)
    assert len(np.unique(ratio[:, 0].round(5))) == 16


@pytest.mark.parametrize("exact", [False, True])
def test_deterministic_error_scales_non_positive_binary_weights(rng, exact):
    m = Mismatch(0.2, bias_sigma=0.0, weight_bits=1, deterministic_error=0.5)
    layer = AConnectDense(3, mismatch=m, exact=exact, seed=9)
    layer.build((None, 6))
    x1 = np.abs(rng.normal(size=(1, 6))).astype("float32")
    y = ops.convert_to_numpy(layer(np.repeat(x1, 20_000, 0), training=True)).astype(np.float64)
    signs = np.where(layer.kernel.numpy() > 0, 1.0, -1.0)
    scaled = np.where(signs > 0, 1.0, 0.5) * signs
    mu, _ = m.weight_moments()
    np.testing.assert_allclose(y.mean(0), x1[0] @ scaled * mu + layer.bias.numpy(), atol=0.03)
    # Inference without a chip uses the nominal quantized weights, no deterministic error.
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x1))[0], x1[0] @ signs, rtol=1e-5)


def test_quantized_layer_uses_quantized_weights_in_inference(rng):
    layer = AConnectConv2D(2, 3, mismatch=Mismatch(0.5, weight_bits=2, bias_bits=1))
    layer.build((None, 5, 5, 1))
    layer.bias.assign([0.3, -0.2])
    x = rng.normal(size=(2, 5, 5, 1)).astype("float32")
    k = layer.kernel.numpy()
    step = np.abs(k).max()
    expected = ops.convert_to_numpy(ops.conv(x, np.round(k / step) * step)) + np.array([1, -1])
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_training_gradients_reach_kernel_and_bias(rng, case):
    layer = built(case.make(mismatch=Mismatch(0.5, weight_bits=4)), case)
    x = rng.normal(size=(5,) + case.input_shape).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) ** 2)
    for grad in tape.gradient(loss, [layer.kernel, layer.bias]):
        assert grad is not None and np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_channels_first_matches_channels_last(rng):
    last = AConnectConv2D(3, 3, padding="same", mismatch=0.5)
    first = AConnectConv2D(3, 3, padding="same", mismatch=0.5, data_format="channels_first")
    last.build((None, 6, 6, 2))
    first.build((None, 2, 6, 6))
    first.set_weights(last.get_weights())
    x = rng.normal(size=(2, 6, 6, 2)).astype("float32")
    y_first = ops.convert_to_numpy(first(np.moveaxis(x, -1, 1)))
    np.testing.assert_allclose(np.moveaxis(y_first, 1, -1), ops.convert_to_numpy(last(x)),
                               rtol=1e-5, atol=1e-5)
    assert first(np.moveaxis(x, -1, 1), training=True).shape == (2, 3, 6, 6)
    assert first.compute_output_shape((None, 2, 6, 6)) == (None, 3, 6, 6)


def test_causal_conv1d_does_not_look_ahead(rng):
    layer = AConnectConv1D(2, 3, padding="causal", mismatch=0.5)
    x = rng.normal(size=(1, 8, 1)).astype("float32")
    changed = x.copy()
    changed[0, 5:] += 1.0
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x))[0, :5],
                                  ops.convert_to_numpy(layer(changed))[0, :5])


def test_dense_on_sequences_shares_a_mask_across_positions(rng):
    layer = AConnectDense(1, use_bias=False, mismatch=0.5)
    x = np.abs(rng.normal(size=(6, 5, 1))).astype("float32") + 0.1
    ratio = ops.convert_to_numpy(layer(x, training=True))[..., 0] / x[..., 0]
    np.testing.assert_allclose(ratio, ratio[:, :1].repeat(5, 1), rtol=1e-4)
    assert len(np.unique(ratio[:, 0].round(5))) == 6


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("masks_per_batch", [None, 3])
def test_fit_with_a_ragged_last_batch(rng, case, masks_per_batch):
    model = keras.Sequential([
        keras.Input(case.input_shape),
        case.make(mismatch=Mismatch(0.5, masks_per_batch=masks_per_batch)),
        keras.layers.Flatten(), keras.layers.Dense(2),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.normal(size=(11,) + case.input_shape).astype("float32")
    before = model.layers[0].kernel.numpy().copy()
    history = model.fit(x, rng.integers(0, 2, 11), batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.allclose(before, model.layers[0].kernel.numpy())


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("masks_per_batch", [None, 2])
def test_training_works_with_an_unknown_batch_size(rng, case, masks_per_batch):
    layer = built(case.make(mismatch=Mismatch(0.5, masks_per_batch=masks_per_batch)), case)
    step = tf.function(lambda x: layer(x, training=True),
                       input_signature=[tf.TensorSpec((None,) + case.input_shape)])
    for batch in (5, 2):
        x = rng.normal(size=(batch,) + case.input_shape).astype("float32")
        y = step(x).numpy()
        assert y.shape == tuple(ops.convert_to_numpy(layer(x)).shape)
        assert np.all(np.isfinite(y))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_the_seed_makes_training_masks_reproducible(rng, case):
    x = rng.normal(size=(4,) + case.input_shape).astype("float32")
    outputs = []
    for seed in (21, 21, 22):
        layer = built(case.make(mismatch=0.5, seed=seed, kernel_initializer="ones")
                      if case.name != "depthwise" else
                      case.make(mismatch=0.5, seed=seed, depthwise_initializer="ones"), case)
        outputs.append(ops.convert_to_numpy(layer(x, training=True)))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert not np.allclose(outputs[0], outputs[2])


def test_fast_path_gradients_stay_finite_where_the_output_variance_is_zero():
    layer = AConnectDense(3, use_bias=False, mismatch=0.5)
    layer.build((None, 4))
    x = tf.constant(np.array([[0, 0, 0, 0], [1, 2, 3, 4]], dtype="float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x, training=True) ** 2)
    grad_x, grad_w = tape.gradient(loss, [x, layer.kernel])
    assert np.all(np.isfinite(grad_x.numpy())) and np.all(np.isfinite(grad_w.numpy()))
    np.testing.assert_allclose(layer(x, training=True).numpy()[0], 0.0, atol=1e-12)
