"""``AConnectDepthwiseConv2D``: a depthwise convolution trained with per-example kernel masks."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from aconnect import per_example
from aconnect.layers.args import positive_int
from aconnect.layers.conv import AConnectConvBase


@keras.saving.register_keras_serializable(package="aconnect")
class AConnectDepthwiseConv2D(AConnectConvBase):
    """Drop-in for ``keras.layers.DepthwiseConv2D``; kernel shape ``(kh, kw, C, multiplier)``."""

    rank = 2
    _example_axis = 2  # per-example kernels are (kh, kw, B, C, multiplier)
    _kernel_arg = "depthwise"

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier: int = 1,
                 data_format=None, dilation_rate=1, depthwise_initializer="glorot_uniform",
                 depthwise_regularizer=None, depthwise_constraint=None, **kwargs: Any) -> None:
        super().__init__(
            kernel_size, strides=strides, padding=padding, data_format=data_format,
            dilation_rate=dilation_rate,
            kernel_initializer=depthwise_initializer, kernel_regularizer=depthwise_regularizer,
            kernel_constraint=depthwise_constraint, **kwargs,
        )
        self.depth_multiplier = positive_int("depth_multiplier", depth_multiplier)

    def _kernel_shape(self, channels: int) -> tuple[int, ...]:
        return self.kernel_size + (channels, self.depth_multiplier)

    def _out_channels(self, channels: int) -> int:
        return channels * self.depth_multiplier

    def _convolve(self, x, kernel):
        return ops.depthwise_conv(x, kernel, self.strides, self.padding, "channels_last",
                                  self.dilation_rate)

    def _convolve_per_example(self, x, kernels):
        return per_example.per_example_depthwise(
            x, kernels, self.strides, self.padding, self.dilation_rate
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier}
