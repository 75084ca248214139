"""Monte Carlo: chips as a batch dimension, reproducibility, chunking, metrics, statistics."""

import keras
import numpy as np
import pytest

import aconnect
from aconnect import Mismatch, monte_carlo, statistics
from aconnect.chips import chip_seed

L = keras.layers


def _cnn(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 2))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = L.DepthwiseConv2D(3, depth_multiplier=2)(x)
    x = L.Conv1D(3, 2)(L.Reshape((36, 8))(x))
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(4)(x))


def _residual(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((6,))
    h = L.Dense(6, activation="tanh")(inp)
    return keras.Model(inp, L.Dense(3)(L.Add()([inp, h])))  # merges the input itself


def _data(rng, shape, n=40, classes=4):
    return rng.normal(size=(n,) + shape).astype("float32"), rng.integers(0, classes, n)


def _manual(model, x, y, seed, c, mismatch):
    """Chip c evaluated the slow way: select it, predict, score."""
    converted = model if list(aconnect.aconnect_layers(model)) else aconnect.convert(
        model, Mismatch(0.0, distribution=Mismatch.coerce(mismatch).distribution))
    aconnect.select_chip(converted, chip_seed(seed, c), mismatch)
    out = converted.predict(x, verbose=0)
    aconnect.clear_chip(converted)
    return out


@pytest.mark.parametrize("make, shape, classes", [(_cnn, (8, 8, 2), 4), (_residual, (6,), 3)],
                         ids=["cnn", "residual"])
def test_each_chip_equals_selecting_it_and_predicting(rng, make, shape, classes):
    model = make()
    x, y = _data(rng, shape, classes=classes)
    result = monte_carlo(model, x, y, 0.5, samples=5, seed=7, top_k=(1, 2))
    for c in range(5):
        out = _manual(model, x, y, 7, c, Mismatch(0.5))
        logp = out - out.max(-1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
        assert result.per_chip["accuracy"][c] == pytest.approx(np.mean(out.argmax(-1) == y))
        assert result.per_chip["loss"][c] == pytest.approx(-logp[np.arange(len(y)), y].mean(),
                                                           rel=1e-4)
        top2 = np.argsort(-out, -1)[:, :2]
        assert result.per_chip["top_2_accuracy"][c] == pytest.approx(
            np.mean((top2 == y[:, None]).any(-1)))


def test_same_seed_same_chips_and_chunking_does_not_matter(rng):
    model = _cnn()
    x, y = _data(rng, (8, 8, 2))
    one_pass = monte_carlo(model, x, y, 0.4, samples=9, seed=3)
    tiny_budget = monte_carlo(model, x, y, 0.4, samples=9, seed=3, memory_budget_mb=0.05)
    again = monte_carlo(model, x, y, 0.4, samples=9, seed=3)
    other = monte_carlo(model, x, y, 0.4, samples=9, seed=4)
    for name in one_pass.per_chip:
        np.testing.assert_allclose(tiny_budget.per_chip[name], one_pass.per_chip[name],
                                   rtol=1e-6)
        np.testing.assert_array_equal(again.per_chip[name], one_pass.per_chip[name])
    assert not np.allclose(other.per_chip["loss"], one_pass.per_chip["loss"])
    # The first chips of a longer run are the same chips.
    longer = monte_carlo(model, x, y, 0.4, samples=12, seed=3)
    np.testing.assert_allclose(longer.per_chip["loss"][:9], one_pass.per_chip["loss"], rtol=1e-6)


def test_a_model_without_mismatch_gives_identical_chips(rng):
    model = _residual()
    x, y = _data(rng, (6,), classes=3)
    result = monte_carlo(model, x, y, 0.0, samples=4)
    assert np.ptp(result.per_chip["loss"]) == 0
    nominal = model.predict(x, verbose=0)
    assert result.per_chip["accuracy"][0] == pytest.approx(np.mean(nominal.argmax(-1) == y))


def test_regression_and_probability_outputs(rng):
    keras.utils.set_random_seed(1)
    reg = keras.Sequential([keras.Input((5,)), L.Dense(8, activation="relu"), L.Dense(2)])
    x = rng.normal(size=(30, 5)).astype("float32")
    target = rng.normal(size=(30, 2)).astype("float32")
    result = monte_carlo(reg, x, target, 0.3, samples=3, seed=2)
    assert result.task == "regression" and set(result.per_chip) == {"mse", "mae"}
    out = _manual(reg, x, target, 2, 1, Mismatch(0.3))
    assert result.per_chip["mse"][1] == pytest.approx(np.mean((out - target) ** 2), rel=1e-5)

    soft = keras.Sequential([keras.Input((5,)), L.Dense(3, activation="softmax")])
    labels = rng.integers(0, 3, 30)
    result = monte_carlo(soft, x, labels, 0.3, samples=2, seed=2)
    out = _manual(soft, x, labels, 2, 0, Mismatch(0.3))
    assert result.per_chip["loss"][0] == pytest.approx(
        -np.log(out[np.arange(30), labels]).mean(), rel=1e-4)


def test_hardened_models_use_their_own_layers_and_lognormal_compensation(rng):
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((6,)), aconnect.AConnectDense(
        5, mismatch=Mismatch(0.5, distribution="lognormal"))])
    x, y = _data(rng, (6,), classes=5)
    m = Mismatch(0.8, distribution="lognormal")
    result = monte_carlo(model, x, y, m, samples=3, seed=5)
    out = _manual(model, x, y, 5, 2, m)
    assert result.per_chip["accuracy"][2] == pytest.approx(np.mean(out.argmax(-1) == y))


def test_statistics_match_numpy():
    values = np.array([0.9, 0.5, 0.7, 0.8, 0.95, 0.6, 0.85])
    s = statistics(values)
    assert s["median"] == np.median(values)
    assert s["q1"] == np.percentile(values, 25) and s["q3"] == np.percentile(values, 75)
    assert s["iqr"] == pytest.approx(np.percentile(values, 75) - np.percentile(values, 25))
    assert (s["min"], s["max"]) == (0.5, 0.95)
    assert s["mean"] == pytest.approx(values.mean()) and s["std"] == pytest.approx(values.std())
    assert s["p5"] == np.percentile(values, 5) and s["p95"] == np.percentile(values, 95)
    with pytest.raises(ValueError, match="empty"):
        statistics([])


def test_bad_monte_carlo_arguments(rng):
    model = _residual()
    x, y = _data(rng, (6,), classes=3)
    with pytest.raises(ValueError, match="samples=0"):
        monte_carlo(model, x, y, 0.5, samples=0)
    with pytest.raises(ValueError, match="different lengths"):
        monte_carlo(model, x, y[:-1], 0.5, samples=1)
    with pytest.raises(ValueError, match="task='ranking'"):
        monte_carlo(model, x, y, 0.5, samples=1, task="ranking")
    two = keras.Model(model.inputs, [model.outputs[0], model.outputs[0]])
    with pytest.raises(ValueError, match="2 outputs"):
        monte_carlo(two, x, y, 0.5, samples=1)


def test_sigma_sweep_runs_every_model_at_every_sigma(rng):
    model = _residual()
    x, y = _data(rng, (6,), classes=3)
    sweep = aconnect.sigma_sweep({"a": model, "b": model}, x, y, [0.0, 0.5], samples=2)
    assert set(sweep) == {"a", "b"} and set(sweep["a"]) == {0.0, 0.5}
    assert sweep["a"][0.5].mismatch.sigma == 0.5
    np.testing.assert_array_equal(sweep["a"][0.5].per_chip["loss"], sweep["b"][0.5].per_chip["loss"])
    assert sweep["a"][0.5].to_dict()["statistics"]["accuracy"]["median"] >= 0


def test_chunks_starting_at_first_chip_concatenate_to_the_whole_run(rng):
    model = _cnn()
    x, y = _data(rng, (8, 8, 2))
    whole = monte_carlo(model, x, y, 0.5, samples=7, seed=9)
    parts = [monte_carlo(model, x, y, 0.5, samples=n, seed=9, first_chip=start)
             for start, n in ((0, 3), (3, 2), (5, 2))]
    for name in whole.per_chip:
        np.testing.assert_allclose(np.concatenate([p.per_chip[name] for p in parts]),
                                   whole.per_chip[name], rtol=1e-6)
