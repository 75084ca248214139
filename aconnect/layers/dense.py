"""``AConnectDense``: a Dense layer trained with per-example weight and bias masks."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from aconnect import per_example
from aconnect.layers.args import positive_int
from aconnect.layers.base import AConnectLayer


@keras.saving.register_keras_serializable(package="aconnect")
class AConnectDense(AConnectLayer):
    """Drop-in for ``keras.layers.Dense`` whose weights live on a mismatched analog array.

    Training draws one mask per example. By default (``exact=False``) each example's outputs
    are sampled from their exact distribution under those masks, which costs two matmuls;
    ``exact=True`` samples the masks themselves (the reference, ``B x in x out`` memory).
    Inputs of rank > 2 share one mask across the positions of an example and always take the
    exact path, as do shared-mask groups (``Mismatch(masks_per_batch=k)``).
    """

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        mismatch=None,
        seed: int | None = None,
        exact: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            mismatch=mismatch, seed=seed, activity_regularizer=activity_regularizer, **kwargs
        )
        self.units = positive_int("units", units)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        if not isinstance(exact, bool):
            raise ValueError(f"exact={exact!r} must be True or False")
        self.exact = exact
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape) -> None:
        n_in = input_shape[-1]
        if n_in is None:
            raise ValueError(f"layer {self.name!r} needs a known last input dimension")
        self.kernel = self.add_weight(
            name="kernel", shape=(n_in, self.units), initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.units,), initializer=self.bias_initializer,
                regularizer=self.bias_regularizer, constraint=self.bias_constraint,
            )
        self._build_chip(self.kernel.shape, (self.units,) if self.use_bias else None)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: n_in})

    def call(self, inputs, training=None):
        y = self._outputs(inputs, training, ops.matmul)
        return self.activation(y) if self.activation is not None else y

    def _masked_outputs(self, x):
        kernel, bias = self._training_mask_inputs()
        m = self.mismatch
        if m.masks_per_batch is None and not self.exact and len(x.shape) == 2:
            mu_w, var_w = m.weight_moments()
            mu_b, var_b = m.bias_moments()
            return per_example.sample_dense_outputs(
                x,
                kernel * mu_w,
                ops.square(kernel) * var_w,
                None if bias is None else bias * mu_b,
                None if bias is None or var_b == 0 else ops.square(bias) * var_b,
                self.seed_generator,
            )
        groups = m.masks_per_batch or ops.shape(x)[0]
        kernels, biases = self._sample_group_masks(groups, kernel, bias)
        return per_example.grouped_dense(x, kernels, biases, groups)

    def _grouped_outputs(self, x, kernels, biases, groups):
        return per_example.grouped_dense(x, kernels, biases, groups)

    def _shared_outputs(self, x, kernels, biases, chips):
        # One broadcast batched matmul: every chip's weights on the same rows, chip-major out.
        rows = ops.reshape(x, (1, -1, x.shape[-1]))
        y = ops.matmul(rows, kernels)  # (chips, n * positions, units)
        if biases is not None:
            y = y + ops.expand_dims(biases, 1)
        return ops.reshape(y, (-1,) + tuple(x.shape[1:-1]) + (self.units,))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "exact": self.exact,
        })
        return config
