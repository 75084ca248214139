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
    n_in, n_out = ops.shape(x)[-1], ops.shape(kernels)[-1]
    if isinstance(batch, int) and isinstance(groups, int) and batch % groups == 0:
        # Equal contiguous groups (chip batches, even batches): a plain batched matmul.
        y = ops.matmul(ops.reshape(x, (groups, -1, n_in)), kernels)
        if biases is not None:
            y = y + ops.expand_dims(biases, 1)
        return ops.reshape(y, (batch,) + tuple(middle) + (n_out,))
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
    y = ops.take(ops.reshape(y, (groups * size, positions, n_out)), slot, axis=0)
    return ops.reshape(y, (batch,) + tuple(middle) + (n_out,))


def _fold_groups_into_channels(x, groups):
    """``(G * s, *spatial, C) -> (s, *spatial, G * C)``: group ``g`` owns channels ``g*C..``."""
    shape = ops.shape(x)
    rank = len(x.shape)
    x = ops.reshape(x, (groups, -1) + tuple(shape[1:]))  # (G, s, *spatial, C)
    x = ops.transpose(x, tuple(range(1, rank)) + (0, rank))  # (s, *spatial, G, C)
    return ops.reshape(x, (-1,) + tuple(shape[1:-1]) + (groups * shape[-1],))


def _unfold_channels_into_groups(y, groups):
    """``(s, *spatial, G * F) -> (G * s, *spatial, F)``."""
    shape = ops.shape(y)
    rank = len(y.shape)
    y = ops.reshape(y, tuple(shape[:-1]) + (groups, -1))  # (s, *spatial, G, F)
    y = ops.transpose(y, (rank - 1,) + tuple(range(rank - 1)) + (rank,))  # (G, s, *spatial, F)
    return ops.reshape(y, (-1,) + tuple(shape[1:-1]) + (ops.shape(y)[-1],))


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


def per_example_conv(x, kernels, strides, padding: str, dilation_rate, groups=None):
    """Convolve each example of ``x`` (channels last) with its own kernel.

    ``kernels``: ``(*kernel_size, C, G, F)`` (group axis next to the output axis, so the
    grouped kernel is a reshape, not a transpose). ``groups`` (default: the batch size, one
    kernel per example) splits the batch into equal contiguous groups that share a kernel.
    One grouped convolution, no Python loop.
    """
    groups = ops.shape(x)[0] if groups is None else groups
    kernel = ops.reshape(kernels, tuple(ops.shape(kernels)[:-2]) + (-1,))
    y = _grouped_conv(_fold_groups_into_channels(x, groups), kernel, strides, padding,
                      dilation_rate)
    return _unfold_channels_into_groups(y, groups)


def per_example_depthwise(x, kernels, strides, padding: str, dilation_rate, groups=None):
    """Depthwise-convolve each example of ``x`` (channels last) with its own kernel.

    ``kernels``: ``(kh, kw, G, C, multiplier)``; ``groups`` as in ``per_example_conv``.
    Folding the groups into channels keeps it a plain depthwise convolution.
    """
    groups = ops.shape(x)[0] if groups is None else groups
    kernel = ops.reshape(kernels, tuple(ops.shape(kernels)[:2]) + (-1, ops.shape(kernels)[-1]))
    y = ops.depthwise_conv(_fold_groups_into_channels(x, groups), kernel, strides, padding,
                           "channels_last", dilation_rate)
    return _unfold_channels_into_groups(y, groups)


def add_group_bias(y, biases, groups):
    """``y`` (``G * s`` examples) plus ``biases[g]`` (``(G, F)``) on the examples of group g."""
    shape = ops.shape(y)
    y = ops.reshape(y, (groups, -1) + tuple(shape[1:]))
    y = y + ops.reshape(biases, (groups,) + (1,) * (len(shape) - 1) + (-1,))
    return ops.reshape(y, shape)
