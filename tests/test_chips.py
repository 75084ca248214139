"""Chips: fixed, reproducible mask draws used in inference."""

import keras
import numpy as np
import pytest
from keras import ops

import aconnect
from aconnect import AConnectDense, Mismatch
from layer_cases import CASE_IDS, CASES, built


def _mlp():
    model = keras.Sequential([keras.Input((6,)), AConnectDense(8, activation="relu"),
                              keras.layers.BatchNormalization(), AConnectDense(3)])
    model.compile("adam", "mse")
    return model


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_a_chip_is_reproducible_from_its_seed(rng, case):
    layer = built(case.make(mismatch=0.5), case)
    x = rng.normal(size=(3,) + case.input_shape).astype("float32")
    nominal = ops.convert_to_numpy(layer(x))
    layer.select_chip(7)
    assert layer.chip_selected
    first = ops.convert_to_numpy(layer(x))
    layer.select_chip(8)
    other = ops.convert_to_numpy(layer(x))
    layer.select_chip(7)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), first)
    assert not np.allclose(first, other)
    assert not np.allclose(first, nominal)
    layer.clear_chip()
    assert not layer.chip_selected
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), nominal)


def test_chip_output_is_the_masked_layer(rng):
    layer = AConnectDense(4, mismatch=0.5)
    layer.build((None, 5))
    layer.select_chip(3)
    x = rng.normal(size=(2, 5)).astype("float32")
    expected = x @ (layer.kernel.numpy() * layer.chip_kernel_mask.numpy()) + (
        layer.bias.numpy() * layer.chip_bias_mask.numpy())
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-6)


def test_model_chips_reach_a_compiled_predict_function(rng):
    model = _mlp()
    x = rng.normal(size=(16, 6)).astype("float32")
    nominal = model.predict(x, verbose=0)  # traces predict_function once
    aconnect.select_chip(model, 1)
    chip1 = model.predict(x, verbose=0)
    aconnect.select_chip(model, 2)
    chip2 = model.predict(x, verbose=0)
    aconnect.select_chip(model, 1)
    np.testing.assert_array_equal(model.predict(x, verbose=0), chip1)
    assert not np.allclose(chip1, chip2) and not np.allclose(chip1, nominal)
    aconnect.clear_chip(model)
    np.testing.assert_array_equal(model.predict(x, verbose=0), nominal)


def test_layers_of_a_chip_get_independent_masks():
    model = _mlp()
    aconnect.select_chip(model, 5)
    masks = [layer.chip_bias_mask.numpy()[:3] for layer in aconnect.aconnect_layers(model)]
    assert not np.allclose(masks[0], masks[1])
    seeds = {aconnect.chips.chip_seed(run, chip) for run in range(5) for chip in range(50)}
    assert len(seeds) == 250


def test_chip_at_zero_sigma_is_nominal_and_eval_sigma_changes_spread(rng):
    layer = AConnectDense(200, mismatch=0.5)
    layer.build((None, 300))
    x = rng.normal(size=(2, 300)).astype("float32")
    nominal = ops.convert_to_numpy(layer(x))
    layer.select_chip(4, Mismatch(0.0))
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), nominal)
    layer.select_chip(4, Mismatch(0.2))
    low = layer.chip_kernel_mask.numpy().std()
    layer.select_chip(4, {"sigma": 0.8})
    high = layer.chip_kernel_mask.numpy().std()
    assert low == pytest.approx(Mismatch(0.2).weight_moments()[1] ** 0.5, rel=0.02)
    assert high == pytest.approx(Mismatch(0.8).weight_moments()[1] ** 0.5, rel=0.02)


def test_lognormal_chips_keep_the_training_mean():
    layer = AConnectDense(300, mismatch=Mismatch(0.5, distribution="lognormal"))
    layer.build((None, 300))
    layer.select_chip(1, Mismatch(0.8, distribution="lognormal"))
    trained_mean = Mismatch(0.5, distribution="lognormal").weight_moments()[0]
    assert layer.chip_kernel_mask.numpy().mean() == pytest.approx(trained_mean, rel=0.01)


def test_chip_errors_are_clear():
    layer = AConnectDense(2)
    with pytest.raises(RuntimeError, match="not built"):
        layer.select_chip(1)
    layer.build((None, 2))
    with pytest.raises(ValueError, match="seed='a'"):
        layer.select_chip("a")
    with pytest.raises(ValueError, match="no A-Connect layers"):
        aconnect.select_chip(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), 1)
