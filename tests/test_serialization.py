"""Configs round-trip and `.keras` files restore every layer, chips included."""

import keras
import numpy as np
import pytest

import aconnect
from aconnect import Mismatch
from layer_cases import CASE_IDS, CASES


def _every_layer_model() -> keras.Model:
    seq = keras.Input((12, 3), name="sequence")
    img = keras.Input((8, 8, 3), name="image")
    a = aconnect.AConnectConv1D(4, 3, padding="causal", activation="relu", name="conv1d",
                                mismatch=Mismatch(0.4, distribution="lognormal"))(seq)
    a = keras.layers.GlobalAveragePooling1D()(a)
    b = aconnect.AConnectConv2D(6, 3, strides=2, padding="same", activation="relu",
                                kernel_regularizer="l2", name="conv2d",
                                mismatch=Mismatch(0.5, weight_bits=4, bias_bits=6))(img)
    b = keras.layers.BatchNormalization()(b)
    b = aconnect.AConnectDepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw",
                                         mismatch=Mismatch(0.3, masks_per_batch=2))(b)
    b = keras.layers.GlobalAveragePooling2D()(b)
    h = keras.layers.Concatenate()([a, b])
    h = aconnect.AConnectDense(8, activation="relu", name="hidden", seed=3,
                               mismatch=Mismatch(0.5, weight_bits=1, deterministic_error=0.7))(h)
    out = aconnect.AConnectDense(3, name="logits", exact=True)(h)
    return keras.Model([seq, img], out)


def _data(rng, n=16):
    return [rng.normal(size=(n, 12, 3)).astype("float32"),
            rng.normal(size=(n, 8, 8, 3)).astype("float32")]


def test_keras_file_round_trip_keeps_outputs_and_chips(rng, tmp_path):
    model = _every_layer_model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = _data(rng)
    model.fit(x, rng.integers(0, 3, 16), epochs=2, batch_size=5, verbose=0)
    nominal = model.predict(x, verbose=0)
    model.save(tmp_path / "nominal.keras")
    aconnect.select_chip(model, 11, Mismatch(0.6))
    chip = model.predict(x, verbose=0)
    model.save(tmp_path / "chip.keras")

    loaded = keras.models.load_model(tmp_path / "nominal.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), nominal)
    aconnect.select_chip(loaded, 11, Mismatch(0.6))  # same seed -> same chip after reload
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), chip)

    with_chip = keras.models.load_model(tmp_path / "chip.keras")  # a selected chip is saved
    np.testing.assert_array_equal(with_chip.predict(x, verbose=0), chip)
    aconnect.clear_chip(with_chip)
    np.testing.assert_array_equal(with_chip.predict(x, verbose=0), nominal)
    for original, restored in zip(model.layers, loaded.layers):
        if isinstance(original, aconnect.AConnectLayer):
            assert type(restored) is type(original)
            assert restored.mismatch == original.mismatch


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_config_round_trip(case):
    layer = case.make(mismatch=Mismatch(0.3, distribution="lognormal", weight_bits=3),
                      seed=12, activation="tanh", bias_initializer="ones", name="x")
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert config["mismatch"]["sigma"] == 0.3 and config["seed"] == 12


def test_layers_are_registered_for_deserialization():
    for cls in (aconnect.AConnectDense, aconnect.AConnectConv1D, aconnect.AConnectConv2D,
                aconnect.AConnectDepthwiseConv2D):
        name = keras.saving.get_registered_name(cls)
        assert name == f"aconnect>{cls.__name__}"
        assert keras.saving.get_registered_object(name) is cls
