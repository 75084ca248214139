"""``AConnectDepthwiseConv2D``: a depthwise convolution trained with per-example kernel masks."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from aconnect import per_example
from aconnect.chip_batch import to_chip_major
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

    def _shared_outputs(self, x, kernels, biases, chips):
        # (chips, kh, kw, C, m) -> (kh, kw, C, chips * m): outputs come out ordered (C, chip, m);
        # reorder them to (chip, C, m) so every chip's channels are contiguous.
        channels, multiplier = kernels.shape[-2], kernels.shape[-1]
        wide = ops.reshape(ops.moveaxis(kernels, 0, 3), self.kernel_size + (channels, -1))
        y = self._convolve(x, wide)
        spatial = tuple(y.shape[:-1])
        y = ops.reshape(y, spatial + (channels, chips, multiplier))
        rank = len(spatial)
        y = ops.transpose(y, tuple(range(rank)) + (rank + 1, rank, rank + 2))
        y = ops.reshape(y, spatial + (-1,))  # channels ordered (chip, C, m)
        if biases is not None:
            y = y + ops.reshape(biases, (-1,))
        return to_chip_major(y, chips, x.shape[0])

    def _convolve_per_example(self, x, kernels, groups=None):
        return per_example.per_example_depthwise(
            x, kernels, self.strides, self.padding, self.dilation_rate, groups
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier}
