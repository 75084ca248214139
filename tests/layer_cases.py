"""The four A-Connect layers beside their plain Keras counterparts, for parametrized tests."""

from dataclasses import dataclass
from typing import Callable

import keras

import aconnect


@dataclass
class Case:
    name: str
    make: Callable[..., keras.layers.Layer]  # make(mismatch=..., **extra) -> A-Connect layer
    plain: Callable[[], keras.layers.Layer]
    input_shape: tuple[int, ...]  # without the batch axis


CASES = [
    Case("dense", lambda **kw: aconnect.AConnectDense(6, **kw), lambda: keras.layers.Dense(6),
         (5,)),
    Case("dense_exact", lambda **kw: aconnect.AConnectDense(6, exact=True, **kw),
         lambda: keras.layers.Dense(6), (5,)),
    Case("conv1d", lambda **kw: aconnect.AConnectConv1D(4, 3, padding="same", **kw),
         lambda: keras.layers.Conv1D(4, 3, padding="same"), (9, 3)),
    Case("conv2d", lambda **kw: aconnect.AConnectConv2D(4, 3, strides=2, padding="same", **kw),
         lambda: keras.layers.Conv2D(4, 3, strides=2, padding="same"), (7, 7, 3)),
    Case("depthwise",
         lambda **kw: aconnect.AConnectDepthwiseConv2D(3, depth_multiplier=2, **kw),
         lambda: keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (6, 6, 3)),
]
CASE_IDS = [c.name for c in CASES]


def built(layer, case: Case):
    layer.build((None,) + case.input_shape)
    return layer
