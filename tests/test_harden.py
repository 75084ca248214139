"""harden(): conversion plus fine-tuning, with progress and cancellation."""

import keras
import numpy as np
import pytest

import aconnect
from aconnect import Cancelled, Dataset, harden

L = keras.layers


def _problem(rng, n=240, regression=False):
    keras.utils.set_random_seed(0)
    x = rng.normal(size=(n, 6)).astype("float32")
    w = rng.normal(size=(6, 3))
    y = (x @ w).astype("float32") if regression else (x @ w).argmax(-1)
    model = keras.Sequential([keras.Input((6,)), L.Dense(16, activation="relu", name="first"),
                              L.Dense(3, name="logits")])
    model.compile("adam", "mse" if regression else keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
    model.fit(x, y, epochs=5, verbose=0)
    return model, Dataset(x[:200], y[:200], x[200:], y[200:])


def test_harden_converts_and_fine_tunes_without_touching_the_original(rng):
    model, data = _problem(rng)
    before = [w.numpy().copy() for w in model.weights]
    spec = {"kind": "harden", "mismatch": {"sigma": 0.4},
            "layers": {"exclude": ["first"], "overrides": {"logits": {"sigma": 0.2}}},
            "training": {"epochs": 3, "batch_size": 32, "early_stopping": None}}
    result = harden(model, data, spec)
    assert result.task == "classification" and result.epochs_run == 3
    assert set(result.history) >= {"loss", "accuracy", "val_loss"}
    layers = {layer.name: layer for layer in result.model.layers}
    assert type(layers["first"]) is L.Dense
    assert layers["logits"].mismatch.sigma == 0.2
    assert [d.name for d in result.summary.converted] == ["logits"]
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, model.weights))
    assert not np.allclose(layers["logits"].kernel.numpy(), model.get_layer("logits").kernel)


def test_progress_is_reported_per_batch_and_cancel_stops_between_batches(rng):
    model, data = _problem(rng)
    seen = []
    spec = {"kind": "harden", "training": {"epochs": 2, "batch_size": 50,
                                           "validation_split": 0.0}}
    harden(model, data, spec, progress=seen.append)
    assert [p.step for p in seen] == list(range(1, 9)) and seen[-1].total == 8
    assert seen[-1].fraction == 1.0 and "loss" in seen[-1].metrics
    assert [(p.epoch, p.batch) for p in seen[3:5]] == [(0, 3), (1, 0)]

    calls = []
    with pytest.raises(Cancelled):
        harden(model, data, spec, should_cancel=lambda: calls.append(1) or len(calls) >= 2)
    assert len(calls) == 2


def test_regression_uses_mse_and_early_stopping_restores_the_best(rng):
    model, data = _problem(rng, regression=True)
    result = harden(model, data, {"kind": "harden", "training": {
        "epochs": 40, "batch_size": 20, "learning_rate": 0.5, "early_stopping": 1}})
    assert result.task == "regression" and "mae" in result.history
    assert result.epochs_run < 40  # a learning rate of 0.5 diverges: stopped early


def test_softmax_models_are_trained_on_probabilities(rng):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), L.Dense(3, activation="softmax")])
    x = rng.normal(size=(64, 6)).astype("float32")
    data = Dataset(x, rng.integers(0, 3, 64), x[:8], rng.integers(0, 3, 8))
    result = harden(model, data, {"kind": "harden", "training": {"epochs": 1}})
    assert result.model.loss.get_config()["from_logits"] is False
    assert isinstance(result.model.layers[-1], aconnect.AConnectDense)
