"""The plain-Keras export loads without aconnect and gives the nominal outputs."""

import subprocess
import sys

import keras
import numpy as np

import aconnect
from aconnect import Mismatch
from aconnect.export import to_plain_keras


def _model():
    inp = keras.Input((8, 8, 2))
    x = aconnect.AConnectConv2D(4, 3, activation="relu", mismatch=Mismatch(0.5, weight_bits=3))(inp)
    x = aconnect.AConnectDepthwiseConv2D(3, depth_multiplier=2, mismatch=0.3)(x)
    x = keras.layers.BatchNormalization()(keras.layers.Flatten()(x))
    x = keras.layers.Reshape((16, 8))(x)
    x = aconnect.AConnectConv1D(2, 3, padding="causal")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, aconnect.AConnectDense(3, mismatch=Mismatch(0.5, weight_bits=1,
                                                                          bias_bits=4))(x))


def test_export_has_only_keras_layers_and_the_nominal_outputs(rng, tmp_path):
    model = _model()
    x = rng.normal(size=(4, 8, 8, 2)).astype("float32")
    plain = to_plain_keras(model)
    assert not list(aconnect.aconnect_layers(plain))
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    path = tmp_path / "plain.keras"
    plain.save(path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", model.predict(x, verbose=0))
    # A fresh interpreter that never imports aconnect loads and runs it.
    script = (
        "import sys, numpy as np, keras\n"
        f"m = keras.models.load_model({str(path)!r})\n"
        f"out = m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)\n"
        f"np.testing.assert_allclose(out, np.load({str(tmp_path / 'want.npy')!r}), rtol=1e-5, "
        "atol=1e-5)\n"
        "assert 'aconnect' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
