"""Mixed precision and float16/bfloat16 compute dtypes."""

import keras
import numpy as np
import pytest

import aconnect
from aconnect import Mismatch
from layer_cases import CASE_IDS, CASES


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_mixed_precision_trains_and_runs_chips(rng, policy, case):
    keras.config.set_dtype_policy(policy)
    model = keras.Sequential([
        keras.Input(case.input_shape),
        case.make(mismatch=Mismatch(0.5, weight_bits=4)),
        keras.layers.Flatten(),
        keras.layers.Dense(2, dtype="float32"),
    ])
    layer = model.layers[0]
    assert layer.compute_dtype == policy.split("_")[1]
    assert layer.kernel.dtype == "float32"
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.normal(size=(8,) + case.input_shape).astype("float32")
    loss = model.train_on_batch(x, rng.integers(0, 2, 8))
    assert np.isfinite(loss)
    assert layer(x, training=True).dtype == policy.split("_")[1]
    aconnect.select_chip(model, 3)
    assert np.all(np.isfinite(model.predict(x, verbose=0)))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_half_precision_layers_compute_in_their_dtype(rng, dtype, case):
    layer = case.make(mismatch=0.5, dtype=dtype)
    x = rng.normal(size=(4,) + case.input_shape).astype("float32")
    for training in (True, False):
        y = layer(x, training=training)
        assert y.dtype == dtype and np.all(np.isfinite(np.asarray(y, dtype="float32")))
    layer.select_chip(2)
    assert np.all(np.isfinite(np.asarray(layer(x), dtype="float32")))


def test_float16_fast_path_variance_does_not_overflow():
    layer = aconnect.AConnectDense(3, mismatch=0.5, dtype="float16")
    x = np.full((4, 50), 300.0, dtype="float16")  # x**2 = 9e4 > float16 max
    y = layer(x, training=True)
    assert y.dtype == "float16" and np.all(np.isfinite(np.asarray(y)))


def test_quantized_dtype_policies_are_refused_with_the_alternative():
    with pytest.raises(ValueError, match="weight_bits"):
        aconnect.AConnectDense(3, dtype="int8_from_float32")
