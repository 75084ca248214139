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

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier: int = 1,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, mismatch=None, seed=None,
                 **kwargs: Any) -> None:
        super().__init__(
            kernel_size, strides=strides, padding=padding, data_format=data_format,
            dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
            bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
            bias_constraint=bias_constraint, activity_regularizer=activity_regularizer,
            mismatch=mismatch, seed=seed, **kwargs,
        )
        self.depth_multiplier = positive_int("depth_multiplier", depth_multiplier)
        self.depthwise_initializer = keras.initializers.get(depthwise_initializer)
        self.depthwise_regularizer = keras.regularizers.get(depthwise_regularizer)
        self.depthwise_constraint = keras.constraints.get(depthwise_constraint)

    def _kernel_options(self) -> dict[str, Any]:
        return {"initializer": self.depthwise_initializer,
                "regularizer": self.depthwise_regularizer,
                "constraint": self.depthwise_constraint}

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
        config = super().get_config()
        config.update({
            "depth_multiplier": self.depth_multiplier,
            "depthwise_initializer": keras.initializers.serialize(self.depthwise_initializer),
            "depthwise_regularizer": keras.regularizers.serialize(self.depthwise_regularizer),
            "depthwise_constraint": keras.constraints.serialize(self.depthwise_constraint),
        })
        return config
