"""What every A-Connect layer shares: its mismatch, its mask stream, quantization and chips.

Subclasses own their kernel/bias and their arithmetic; this base decides *which* weights they
use: quantized always, masked per example in training, masked by the selected chip (if any) in
inference.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from aconnect.chip_batch import ChipMasks, draw_chip_masks, masks_for
from aconnect.mismatch import Mismatch
from aconnect.quantize import quantize

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


class AConnectLayer(keras.layers.Layer):
    """Base of the A-Connect layers.

    Args:
        mismatch: a ``Mismatch``, its config dict, or a bare sigma (default ``Mismatch()``).
        seed: seed of the training-mask stream, for reproducible training.
    """

    def __init__(self, mismatch: Mismatch | dict | float | None = None, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed={seed!r} must be None or an integer")
        policy = self.dtype_policy
        if getattr(policy, "quantization_mode", None):
            raise ValueError(
                f"dtype={policy.name!r}: Keras quantized dtype policies are not supported by "
                "A-Connect layers; quantize analog weights with Mismatch(weight_bits=...)"
            )
        if self.compute_dtype not in FLOAT_DTYPES:
            raise ValueError(
                f"dtype={policy.name!r} computes in {self.compute_dtype}; A-Connect layers need "
                f"a floating compute dtype, one of {list(FLOAT_DTYPES)}"
            )
        self.mismatch = Mismatch.coerce(mismatch)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    # -- weights ---------------------------------------------------------------------------
    def _build_chip(self, kernel_shape: tuple[int, ...], bias_shape: tuple[int, ...] | None):
        """Non-trainable chip state: masks (ones when no chip is selected) and an on/off flag."""
        self.chip_kernel_mask = self.add_weight(
            name="chip_kernel_mask", shape=kernel_shape, initializer="ones", trainable=False
        )
        self.chip_bias_mask = None
        if bias_shape is not None:
            self.chip_bias_mask = self.add_weight(
                name="chip_bias_mask", shape=bias_shape, initializer="ones", trainable=False
            )
        self.chip_active = self.add_weight(
            name="chip_active", shape=(), initializer="zeros", trainable=False
        )

    def _quantized(self):
        """``(Q(kernel), Q(bias) or None)``: what the analog cells are programmed with."""
        kernel = quantize(self.kernel, self.mismatch.weight_bits)
        bias = quantize(self.bias, self.mismatch.bias_bits) if self.bias is not None else None
        return kernel, bias

    def _deterministic_scale(self, kernel, amount=1.0):
        """Mask factor ``d`` on non-positive binary weights (``amount`` 0 turns it off)."""
        d = self.mismatch.deterministic_error
        if d is None:
            return None
        factor = 1.0 + amount * (d - 1.0)
        return ops.where(kernel > 0, ops.ones_like(kernel), ops.ones_like(kernel) * factor)

    def _inference_weights(self):
        """Quantized weights, masked by the selected chip (all-ones masks when none is)."""
        kernel, bias = self._quantized()
        kernel = kernel * self.chip_kernel_mask
        scale = self._deterministic_scale(kernel, ops.cast(self.chip_active, kernel.dtype))
        if scale is not None:
            kernel = kernel * scale
        if bias is not None:
            bias = bias * self.chip_bias_mask
        return kernel, bias

    def _outputs(self, x, training, nominal_op):
        """Pre-activation outputs: masked per example in training, else nominal or chip.

        ``nominal_op(x, kernel)`` is the layer's plain operation (matmul, convolution);
        subclasses provide ``_masked_outputs(x)`` for the training path, and for chip
        batches ``_grouped_outputs(x, kernels, biases, groups)`` and
        ``_shared_outputs(x, kernels, biases, chips)`` (every chip's weights on one shared
        input, chip-major outputs).
        """
        in_chip_batch = masks_for(self)
        if in_chip_batch is not None:
            return self._chip_batch_outputs(x, *in_chip_batch)
        if training and not self.mismatch.is_noiseless:
            return self._masked_outputs(x)
        kernel, bias = self._quantized() if training else self._inference_weights()
        y = nominal_op(x, kernel)
        return y if bias is None else ops.add(y, bias)

    def _chip_batch_outputs(self, x, chip_masks: ChipMasks, examples: int):
        """Chip-major outputs: chip ``c``'s masks on the ``c``-th group of ``examples``.

        ``x`` is chip-major already, or (with ``examples`` rows) shared by every chip.
        """
        kernel, bias = self._training_mask_inputs()  # deterministic error is a chip property
        kernels = ops.expand_dims(kernel, 0) * ops.cast(chip_masks.kernel, kernel.dtype)
        biases = None
        if bias is not None:
            biases = bias * ops.cast(chip_masks.bias, bias.dtype)
        chips = chip_masks.chips
        if chips > 1 and x.shape[0] == examples:
            return self._shared_outputs(x, kernels, biases, chips)
        return self._grouped_outputs(x, kernels, biases, chips)

    def _training_mask_inputs(self):
        """Quantized weights with the deterministic error applied, ready to be masked."""
        kernel, bias = self._quantized()
        scale = self._deterministic_scale(kernel)
        if scale is not None:
            kernel = kernel * scale
        return kernel, bias

    def _sample_group_masks(self, groups, kernel, bias, axis: int = 0):
        """``groups`` independent masked copies of the kernel (stacked on ``axis``) and bias."""
        dtype = kernel.dtype
        shape = list(kernel.shape)
        shape.insert(axis, groups)
        kernels = ops.expand_dims(kernel, axis) * self.mismatch.sample_weight_masks(
            tuple(shape), self.seed_generator, dtype
        )
        biases = None
        if bias is not None:
            biases = bias * self.mismatch.sample_bias_masks(
                (groups,) + tuple(bias.shape), self.seed_generator, dtype
            )
        return kernels, biases

    # -- chips -----------------------------------------------------------------------------
    def select_chip(self, seed: int, mismatch: Mismatch | dict | float | None = None) -> None:
        """Fix one draw of this layer's masks (a simulated chip) for inference.

        ``mismatch`` evaluates at another sigma than the layer was trained with (lognormal
        masks are rescaled so their mean matches training). Quantization and the
        deterministic error stay the layer's own: they describe how the model is stored.
        """
        if not self.built:
            raise RuntimeError(
                f"layer {self.name!r} is not built; call it (or its model) once before "
                "selecting a chip"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed={seed!r} must be an integer")
        self.install_chip(draw_chip_masks([self], [seed], mismatch)[0])

    def install_chip(self, masks: ChipMasks) -> None:
        """Use the first chip of ``masks`` (from ``draw_chip_masks``) in inference."""
        self.chip_kernel_mask.assign(masks.kernel[0])
        if self.chip_bias_mask is not None:
            self.chip_bias_mask.assign(masks.bias[0])
        self.chip_active.assign(1.0)

    def clear_chip(self) -> None:
        """Back to nominal weights in inference."""
        if not self.built:
            return
        self.chip_kernel_mask.assign(ops.ones(self.chip_kernel_mask.shape))
        if self.chip_bias_mask is not None:
            self.chip_bias_mask.assign(ops.ones(self.chip_bias_mask.shape))
        self.chip_active.assign(0.0)

    @property
    def chip_selected(self) -> bool:
        return self.built and bool(ops.convert_to_numpy(self.chip_active) > 0)

    # -- config ----------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "mismatch": self.mismatch.get_config(),
            "seed": self.seed,
            "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
        })
        return config
