"""The per-example trick: every training example sees its own mask, at near plain-layer cost.

Materialising one ``in x out`` masked weight matrix per example costs ``B x in x out`` memory and
is ~35x slower than a plain Dense step. Two cheaper equivalents live here:

- Dense (``sample_dense_outputs``): the outputs of one example depend on disjoint mask columns,
  so each output can be drawn directly from its per-example distribution (mean and variance
  from the mask moments): two matmuls instead of ``B``.
- Convolutions (``per_example_conv``, ``per_example_depthwise``): one mask is shared by every
  spatial position of an example, so the output trick is wrong there. Instead the batch is
  folded into the channel axis and run as one grouped convolution with one kernel per example.

``grouped_dense`` is the exact reference (and the path for shared-mask groups): examples are
placed in per-group slots so each group runs one matmul with its own masked weights.
"""

from __future__ import annotations

import keras
from keras import ops

from aconnect.masks import standard_normal


def safe_sqrt(x):
    """``sqrt`` with a finite gradient at 0.

    Adding 1e-30 changes no variance that matters (float32 carries 7 digits) and costs one add,
    where a ``maximum`` or ``where`` guard costs two ops and a comparison in the backward pass.
    Where the variance is exactly 0 its inputs are 0 too, so the large local derivative is
    multiplied by 0.
    """
    return ops.sqrt(x + 1e-30)


def sample_dense_outputs(x, w_mean, w_var, b_mean, b_var, seed):
    """Draw ``y_i`` from its per-example distribution under independent masks.

    ``y_ij = sum_k x_ik W_kj m_ikj + b_j m_ij``: mean ``x @ w_mean + b_mean`` and variance
    ``x**2 @ w_var + b_var`` (exact for Gaussian masks, a moment match otherwise).
    ``b_mean``/``b_var`` may be ``None`` (no bias, or a noiseless bias).
    """
    mean = ops.matmul(x, w_mean)
    if b_mean is not None:
        mean = mean + b_mean
    var_dtype = "float32" if x.dtype == "float16" else x.dtype  # x**2 overflows float16 early
    var = ops.matmul(ops.square(ops.cast(x, var_dtype)), ops.cast(w_var, var_dtype))
    if b_var is not None:
        var = var + ops.cast(b_var, var_dtype)
    noise = standard_normal(ops.shape(mean), seed, var_dtype)
    return mean + ops.cast(safe_sqrt(var) * noise, mean.dtype)


def group_index(batch, groups: int):
    """Group of each example when ``batch`` examples share ``groups`` masks.

    Example ``i`` goes to group ``floor(i * groups / batch)``: groups differ in size by at most
    one, any batch size works, and a batch smaller than ``groups`` gives every example its own.
    """
    return (ops.arange(batch, dtype="int32") * groups) // ops.cast(batch, "int32")


def grouped_dense(x, kernels, biases, groups: int):
    """Exact ``y_i = x_i @ kernels[g(i)] + biases[g(i)]`` without a per-example weight copy.

    Args:
        x: ``(B, ..., in)``; every position of an example uses that example's mask.
        kernels: ``(groups, in, out)``; biases: ``(groups, out)`` or ``None``.
    """
    batch = ops.shape(x)[0]
    middle = ops.shape(x)[1:-1]
    n_in = ops.shape(x)[-1]
    x3 = ops.reshape(x, (batch, -1, n_in))
    g = group_index(batch, groups)
    size = (batch + groups - 1) // groups  # slots per group
    start = (g * batch + groups - 1) // groups  # first example of each example's group
    slot = g * size + (ops.arange(batch, dtype="int32") - start)
    positions = ops.shape(x3)[1]
    slots = ops.scatter(ops.expand_dims(slot, 1), x3, (groups * size, positions, n_in))
    slots = ops.reshape(slots, (groups, -1, n_in))  # (groups, size * positions, in)
    y = ops.matmul(slots, kernels)
    if biases is not None:
        y = y + ops.expand_dims(biases, 1)
    n_out = ops.shape(kernels)[-1]
    y = ops.take(ops.reshape(y, (groups * size, positions, n_out)), slot, axis=0)
    return ops.reshape(y, (batch,) + tuple(middle) + (n_out,))


def _fold_batch_into_channels(x):
    """``(B, *spatial, C) -> (1, *spatial, B * C)``."""
    rank = len(x.shape)
    folded = ops.transpose(x, tuple(range(1, rank - 1)) + (0, rank - 1))
    return ops.expand_dims(ops.reshape(folded, tuple(ops.shape(folded)[:-2]) + (-1,)), 0)


def _unfold_channels_into_batch(y, batch):
    """``(1, *spatial, B * F) -> (B, *spatial, F)``."""
    spatial = len(y.shape) - 2
    y = ops.reshape(y, tuple(ops.shape(y)[1:-1]) + (batch, -1))  # a reshape, not y[0]: cheaper grad
    return ops.transpose(y, (spatial,) + tuple(range(spatial)) + (spatial + 1,))


def _grouped_conv(x, kernel, strides, padding, dilation_rate):
    # keras.ops.conv sends grouped convolutions through XLA on the TensorFlow backend, which
    # is ~200x slower on CPU than TensorFlow's own grouped kernel; call that one directly.
    if keras.backend.backend() != "tensorflow":
        return ops.conv(x, kernel, strides, padding, "channels_last", dilation_rate)
    import tensorflow as tf

    dtype = x.dtype
    if dtype == "float16":  # TensorFlow's grouped filter gradient fails for float16 on CPU
        x, kernel = ops.cast(x, "float32"), ops.cast(kernel, "float32")
    conv = tf.nn.conv2d if len(x.shape) == 4 else tf.nn.convolution
    y = conv(x, kernel, strides=strides, padding=padding.upper(), dilations=dilation_rate)
    return ops.cast(y, dtype)


def per_example_conv(x, kernels, strides, padding: str, dilation_rate):
    """Convolve example ``i`` of ``x`` (channels last) with its own kernel.

    ``kernels``: ``(*kernel_size, C, B, F)`` (example axis next to the output axis, so the
    grouped kernel is a reshape, not a transpose). One grouped convolution, no Python loop:
    group ``b`` reads input channels ``b*C .. b*C+C-1`` and writes outputs ``b*F .. b*F+F-1``.
    """
    batch = ops.shape(x)[0]
    kernel = ops.reshape(kernels, tuple(ops.shape(kernels)[:-2]) + (-1,))
    y = _grouped_conv(_fold_batch_into_channels(x), kernel, strides, padding, dilation_rate)
    return _unfold_channels_into_batch(y, batch)


def per_example_depthwise(x, kernels, strides, padding: str, dilation_rate):
    """Depthwise-convolve example ``i`` of ``x`` (channels last) with its own kernel.

    ``kernels``: ``(kh, kw, B, C, multiplier)``; folding the batch into channels keeps it a
    plain depthwise convolution.
    """
    batch = ops.shape(x)[0]
    kernel = ops.reshape(kernels, tuple(ops.shape(kernels)[:2]) + (-1, ops.shape(kernels)[-1]))
    y = ops.depthwise_conv(
        _fold_batch_into_channels(x), kernel, strides, padding, "channels_last", dilation_rate
    )
    return _unfold_channels_into_batch(y, batch)
