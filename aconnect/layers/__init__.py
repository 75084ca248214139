"""The A-Connect layers: drop-in Keras layers that train with per-example error masks."""

from aconnect.layers.base import AConnectLayer
from aconnect.layers.conv import AConnectConv1D, AConnectConv2D
from aconnect.layers.dense import AConnectDense
from aconnect.layers.depthwise import AConnectDepthwiseConv2D

__all__ = [
    "AConnectLayer",
    "AConnectDense",
    "AConnectConv1D",
    "AConnectConv2D",
    "AConnectDepthwiseConv2D",
]
