"""Conversion of Keras models: architectures, weights, selection and what stays digital."""

import keras
import numpy as np
import pytest

import aconnect
from aconnect import Mismatch, convert, plan_conversion

L = keras.layers


def _mlp():
    return keras.Sequential([keras.Input((10,)), L.Dense(16, activation="relu", name="d1"),
                             L.BatchNormalization(), L.Dropout(0.2), L.Dense(4, name="d2")])


def _cnn():
    inp = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    x = L.MaxPooling2D()(x)
    x = L.Conv2D(8, 3, strides=2, name="c2")(x)
    x = L.Flatten()(x)
    return keras.Model(inp, L.Dense(5, name="head")(x))


def _resnet():
    inp = keras.Input((10, 10, 4))
    x = L.Conv2D(8, 3, padding="same", name="stem")(inp)
    for i in range(2):
        y = L.Conv2D(8, 3, padding="same", activation="relu", name=f"res{i}a")(x)
        y = L.BatchNormalization(name=f"bn{i}")(y)
        y = L.Conv2D(8, 3, padding="same", name=f"res{i}b")(y)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(3, name="fc")(x))


def _mobilenet_block():
    inp = keras.Input((16, 16, 8))
    x = L.Conv2D(16, 1, use_bias=False, name="expand")(inp)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.DepthwiseConv2D(3, strides=1, padding="same", use_bias=False, name="dw")(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.Conv2D(8, 1, use_bias=False, name="project")(x)
    x = L.BatchNormalization()(x)
    x = L.Add()([inp, x])
    return keras.Model(inp, L.Dense(2, name="out")(L.GlobalAveragePooling2D()(x)))


def _multi_io():
    a, b = keras.Input((6,), name="a"), keras.Input((9, 2), name="b")
    h = L.Conv1D(4, 3, padding="causal", name="conv")(b)
    h = L.Concatenate()([L.Dense(5, name="da")(a), L.GlobalMaxPooling1D()(h)])
    return keras.Model([a, b], [L.Dense(3, name="y1")(h), L.Dense(1, name="y2")(h)])


def _nested_and_shared():
    inner = keras.Sequential([keras.Input((6,)), L.Dense(6, activation="tanh", name="inner_d")],
                             name="inner")
    shared = L.Dense(6, name="shared")
    inp = keras.Input((6,))
    x = shared(shared(inner(inp)))  # one layer called twice
    return keras.Model(inp, L.Dense(2, name="last")(x))


ARCHITECTURES = {"mlp": (_mlp, [(10,)]), "cnn": (_cnn, [(12, 12, 3)]),
                 "resnet": (_resnet, [(10, 10, 4)]), "mobilenet": (_mobilenet_block, [(16, 16, 8)]),
                 "multi_io": (_multi_io, [(6,), (9, 2)]), "nested_shared": (_nested_and_shared, [(6,)])}


def _inputs(rng, shapes, n=5):
    xs = [rng.normal(size=(n,) + s).astype("float32") for s in shapes]
    return xs if len(xs) > 1 else xs[0]


def _randomize(model, rng):
    for w in model.weights:  # make BatchNorm statistics and biases non-trivial too
        if "variance" in w.path:
            w.assign(rng.uniform(0.5, 2.0, size=w.shape).astype("float32"))
        else:
            w.assign(rng.normal(scale=0.3, size=w.shape).astype("float32"))


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_zero_mismatch_conversion_keeps_inference_outputs(rng, name):
    make, shapes = ARCHITECTURES[name]
    model = make()
    _randomize(model, rng)
    x = _inputs(rng, shapes)
    converted = convert(model, Mismatch(0.0))
    for got, want in zip(keras.tree.flatten(converted.predict(x, verbose=0)),
                         keras.tree.flatten(model.predict(x, verbose=0))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    analog = [layer for layer in _all_layers(converted)
              if type(layer) in (L.Dense, L.Conv1D, L.Conv2D, L.DepthwiseConv2D)]
    assert analog == [], f"left unconverted: {[a.name for a in analog]}"
    assert len(list(aconnect.aconnect_layers(converted))) >= 2


def _all_layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


def test_conversion_does_not_touch_the_original(rng):
    model = _cnn()
    before = [w.numpy().copy() for w in model.weights]
    converted = convert(model, 0.5)
    converted.compile("adam", "mse")
    converted.fit(rng.normal(size=(8, 12, 12, 3)), rng.normal(size=(8, 5)), verbose=0)
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, model.weights))
    assert all(type(layer) is not aconnect.AConnectConv2D for layer in model.layers)


def test_shared_layers_stay_shared_and_nested_models_are_converted():
    converted = convert(_nested_and_shared(), 0.5)
    layers = _all_layers(converted)
    shared = [layer for layer in layers if layer.name == "shared"]
    assert len({id(layer) for layer in shared}) == 1
    assert isinstance(shared[0], aconnect.AConnectDense)
    inner = converted.get_layer("inner")
    assert isinstance(inner, keras.Sequential)
    assert isinstance(inner.get_layer("inner_d"), aconnect.AConnectDense)


def test_include_exclude_and_overrides():
    model = _resnet()
    summary = plan_conversion(model, Mismatch(0.5), exclude=["stem"], include=["res*", "fc", "stem"],
                              overrides={"fc": {"sigma": 0.2}, "res1*": 0.7})
    by_name = {d.name: d for d in summary.layers}
    assert not by_name["stem"].converted and by_name["stem"].reason == "excluded"
    assert by_name["fc"].mismatch["sigma"] == 0.2 and by_name["fc"].mismatch["bias_sigma"] == 0.2
    assert by_name["res1a"].mismatch["sigma"] == 0.7 and by_name["res0a"].mismatch["sigma"] == 0.5
    converted = convert(model, Mismatch(0.5), exclude=["stem"], overrides={"fc": {"sigma": 0.2}})
    assert type(converted.get_layer("stem")) is L.Conv2D
    assert converted.get_layer("fc").mismatch.sigma == 0.2
    partial = plan_conversion(_mlp(), 0.5, include=["d2"])
    assert [d.name for d in partial.converted] == ["d2"]
    assert partial.digital[0].reason == "not matched by include"


def test_layers_without_a_counterpart_are_listed_digital_with_a_reason():
    class MyDense(L.Dense):
        pass

    inp = keras.Input((7, 4))
    x = L.Conv1D(8, 3, groups=2, name="grouped")(inp)
    x = L.LSTM(4, name="rnn")(x)
    x = MyDense(3, name="custom")(x)
    summary = plan_conversion(keras.Model(inp, L.Dense(2, name="ok")(x)), 0.5)
    reasons = {d.name: d.reason for d in summary.digital}
    assert "groups=2" in reasons["grouped"]
    assert reasons["rnn"] == "no A-Connect counterpart yet"
    assert "subclass of Dense" in reasons["custom"]
    assert [d.name for d in summary.converted] == ["ok"]
    assert "1 layer(s) converted, 3 kept digital" in str(summary)


def test_subclassed_models_get_a_clear_error():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="subclassed model.*Sequential or Functional"):
        convert(net, 0.5)


def test_bad_overrides_name_the_pattern():
    with pytest.raises(ValueError, match=r"overrides\['fc'\].*sigma=-1"):
        plan_conversion(_cnn(), 0.5, overrides={"fc": {"sigma": -1}})


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_converted_layers_keep_every_shared_config_field(name):
    model = ARCHITECTURES[name][0]()
    converted = convert(model, 0.5)
    originals = {layer.name: layer for layer in _all_layers(model)}
    for layer in aconnect.aconnect_layers(converted):
        before, after = originals[layer.name].get_config(), layer.get_config()
        common = (set(before) & set(after)) - {"dtype"}
        assert {k: before[k] for k in common} == {k: after[k] for k in common}, layer.name
        assert {"activation", "use_bias"} <= common
