"""Plain-Keras export: the hardened model with standard layers, loadable without aconnect.

Each A-Connect layer becomes its Keras counterpart holding the weights the analog cells are
programmed with (quantized, when the layer quantizes), so the export's outputs equal the
hardened model's nominal outputs.
"""

from __future__ import annotations

import keras
from keras import ops

from aconnect.layers import (
    AConnectConv1D,
    AConnectConv2D,
    AConnectDense,
    AConnectDepthwiseConv2D,
    AConnectLayer,
)
from aconnect.quantize import quantize

PLAIN = {AConnectDense: keras.layers.Dense, AConnectConv1D: keras.layers.Conv1D,
         AConnectConv2D: keras.layers.Conv2D,
         AConnectDepthwiseConv2D: keras.layers.DepthwiseConv2D}
_OURS_ONLY = ("mismatch", "seed", "exact")


def to_plain_keras(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with every A-Connect layer replaced by its plain Keras layer."""
    pairs = []

    def clone(layer):
        if isinstance(layer, AConnectLayer):
            config = {k: v for k, v in layer.get_config().items() if k not in _OURS_ONLY}
            new = PLAIN[type(layer)].from_config(config)
        else:
            new = layer.__class__.from_config(layer.get_config())
        pairs.append((layer, new))
        return new

    plain = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for old, new in pairs:
        if isinstance(old, AConnectLayer):
            weights = [ops.convert_to_numpy(quantize(old.kernel, old.mismatch.weight_bits))]
            if old.bias is not None:
                weights.append(ops.convert_to_numpy(quantize(old.bias, old.mismatch.bias_bits)))
            new.set_weights(weights)
        else:
            new.set_weights(old.get_weights())
    return plain
