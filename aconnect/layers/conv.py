"""``AConnectConv1D``, ``AConnectConv2D``: convolutions trained with per-example kernel masks.

One mask is shared by every spatial position of an example, so training runs one grouped
convolution with a masked kernel per example (see ``aconnect.per_example``).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from aconnect import per_example
from aconnect.layers.args import choice, int_tuple, positive_int
from aconnect.layers.base import AConnectLayer
from aconnect.chip_batch import to_chip_major
from aconnect.per_example import group_index


class AConnectConvBase(AConnectLayer):
    """Shared by the convolutions: argument checks, layout, masking and the bias."""

    rank: int = 2
    _example_axis: int  # where per-example kernels stack examples (see aconnect.per_example)

    # Constructor prefix of the kernel's initializer/regularizer/constraint arguments.
    _kernel_arg: str = "kernel"

    def __init__(self, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, mismatch=None, seed=None,
                 **kwargs: Any) -> None:
        super().__init__(
            mismatch=mismatch, seed=seed, activity_regularizer=activity_regularizer, **kwargs
        )
        self.kernel_size = int_tuple("kernel_size", kernel_size, self.rank)
        self.strides = int_tuple("strides", strides, self.rank)
        paddings = ("valid", "same", "causal") if self.rank == 1 else ("valid", "same")
        self.padding = choice("padding", padding, paddings)
        self.data_format = choice(
            "data_format", data_format or keras.config.image_data_format(),
            ("channels_last", "channels_first"),
        )
        self.dilation_rate = int_tuple("dilation_rate", dilation_rate, self.rank)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"strides={self.strides} with dilation_rate={self.dilation_rate}: strides > 1 "
                "and dilation_rate > 1 cannot be combined"
            )
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.input_spec = keras.layers.InputSpec(ndim=self.rank + 2)

    # Subclasses define the kernel's shape and the two convolutions.
    def _kernel_shape(self, channels: int) -> tuple[int, ...]:
        raise NotImplementedError

    def _out_channels(self, channels: int) -> int:
        raise NotImplementedError

    def _convolve(self, x, kernel):
        raise NotImplementedError

    def _convolve_per_example(self, x, kernels, groups=None):
        raise NotImplementedError

    @property
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def build(self, input_shape) -> None:
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(f"layer {self.name!r} needs a known number of input channels")
        self.kernel = self.add_weight(
            name="kernel", shape=self._kernel_shape(channels),
            initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        out = self._out_channels(channels)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(out,), initializer=self.bias_initializer,
                regularizer=self.bias_regularizer, constraint=self.bias_constraint,
            )
        self._build_chip(self.kernel.shape, (out,) if self.use_bias else None)
        self.input_spec = keras.layers.InputSpec(
            ndim=self.rank + 2, axes={self._channel_axis: channels}
        )

    def _conv_padding(self) -> str:
        return "valid" if self.padding == "causal" else self.padding

    def call(self, inputs, training=None):
        x = inputs
        if self.data_format == "channels_first":
            x = ops.moveaxis(x, 1, -1)
        if self.padding == "causal":
            left = self.dilation_rate[0] * (self.kernel_size[0] - 1)
            x = ops.pad(x, ((0, 0), (left, 0), (0, 0)))
        y = self._outputs(x, training, self._convolve)
        if self.data_format == "channels_first":
            y = ops.moveaxis(y, -1, 1)
        return self.activation(y) if self.activation is not None else y

    def _masked_outputs(self, x):
        kernel, bias = self._training_mask_inputs()
        batch = ops.shape(x)[0]
        groups = self.mismatch.masks_per_batch or batch
        axis = self._example_axis
        kernels, biases = self._sample_group_masks(groups, kernel, bias, axis)
        if self.mismatch.masks_per_batch is not None:
            # Kernels are small: hand every example its group's kernel and reuse one path.
            index = group_index(batch, groups)
            kernels = ops.take(kernels, index, axis=axis)
            biases = None if biases is None else ops.take(biases, index, axis=0)
        y = self._convolve_per_example(x, kernels)
        if biases is not None:
            y = y + ops.reshape(biases, (batch,) + (1,) * self.rank + (-1,))
        return y

    def _shared_outputs(self, x, kernels, biases, chips):
        # (chips, *k, C, F) -> (*k, C, chips * F): one wide convolution of the shared input.
        wide = ops.moveaxis(kernels, 0, self._example_axis)
        wide = ops.reshape(wide, tuple(wide.shape[:-2]) + (-1,))
        y = self._convolve(x, wide)
        if biases is not None:  # (chips, F) -> chips * F channels, matching the wide kernel
            y = y + ops.reshape(biases, (-1,))
        return to_chip_major(y, chips, x.shape[0])

    def _grouped_outputs(self, x, kernels, biases, groups):
        kernels = ops.moveaxis(kernels, 0, self._example_axis)
        y = self._convolve_per_example(x, kernels, groups)
        return y if biases is None else per_example.add_group_bias(y, biases, groups)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if self.data_format == "channels_first":
            shape = [shape[0]] + shape[2:] + [shape[1]]
        spatial = []
        for size, k, s, d in zip(shape[1:-1], self.kernel_size, self.strides,
                                 self.dilation_rate):
            if size is None:
                spatial.append(None)
            elif self.padding in ("same", "causal") and not (self.padding == "causal" and s > 1):
                spatial.append(-(-size // s))
            else:
                spatial.append((size - d * (k - 1) - 1) // s + 1)
        out = [shape[0]] + spatial + [self._out_channels(shape[-1])]
        if self.data_format == "channels_first":
            out = [out[0], out[-1]] + out[1:-1]
        return tuple(out)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            f"{self._kernel_arg}_initializer": keras.initializers.serialize(
                self.kernel_initializer),
            f"{self._kernel_arg}_regularizer": keras.regularizers.serialize(
                self.kernel_regularizer),
            f"{self._kernel_arg}_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        })
        return config


class _AConnectConv(AConnectConvBase):
    """Standard convolution with ``filters`` outputs (rank set by the subclass)."""

    def __init__(self, filters: int, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, **kwargs: Any) -> None:
        # Positional order as in Keras up to dilation_rate; everything else by keyword.
        super().__init__(kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate, **kwargs)
        self.filters = positive_int("filters", filters)

    @property
    def _example_axis(self) -> int:  # (*kernel_size, C, B, F)
        return self.rank + 1

    def _kernel_shape(self, channels: int) -> tuple[int, ...]:
        return self.kernel_size + (channels, self.filters)

    def _out_channels(self, channels: int) -> int:
        return self.filters

    def _convolve(self, x, kernel):
        return ops.conv(x, kernel, self.strides, self._conv_padding(), "channels_last",
                        self.dilation_rate)

    def _convolve_per_example(self, x, kernels, groups=None):
        return per_example.per_example_conv(
            x, kernels, self.strides, self._conv_padding(), self.dilation_rate, groups
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters}


@keras.saving.register_keras_serializable(package="aconnect")
class AConnectConv1D(_AConnectConv):
    """Drop-in for ``keras.layers.Conv1D`` (``padding`` also accepts ``"causal"``)."""

    rank = 1


@keras.saving.register_keras_serializable(package="aconnect")
class AConnectConv2D(_AConnectConv):
    """Drop-in for ``keras.layers.Conv2D`` with per-example kernel masks in training."""

    rank = 2
