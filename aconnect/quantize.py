"""Weight quantizers with a straight-through gradient.

Analog cells often store only a few levels. ``quantize`` maps float weights to those levels in
the forward pass while the backward pass treats it as (almost) the identity, so the float
"shadow" weights keep learning.

- 1 bit: ``sign`` with values in {-1, +1} (zero maps to -1: it is stored in the "non-positive"
  cell), gradient passed where ``|w| <= 1`` (the usual clipped straight-through estimator).
- n bits (2..8): uniform symmetric levels ``k * step`` for ``|k| <= 2**(n-1) - 1``, with
  ``step = max|w| / (2**(n-1) - 1)`` so the grid follows the tensor's own range; identity
  gradient.
"""

from __future__ import annotations

from keras import ops


def binary(w):
    """Sign quantizer: forward in {-1, +1}, clipped straight-through backward."""
    clipped = ops.clip(w, -1.0, 1.0)
    signed = ops.where(w > 0, ops.ones_like(w), -ops.ones_like(w))
    return clipped + ops.stop_gradient(signed - clipped)


def uniform(w, bits: int):
    """Symmetric uniform quantizer on ``2**bits - 1`` levels, straight-through backward."""
    top = float(2 ** (bits - 1) - 1)
    absmax = ops.stop_gradient(ops.max(ops.abs(w)))
    step = ops.where(absmax > 0, absmax / top, ops.ones_like(absmax))
    levels = ops.round(w / step) * step
    return w + ops.stop_gradient(levels - w)


def quantize(w, bits: int | None):
    """Quantize ``w`` to ``bits`` bits (``None`` leaves it in floating point)."""
    if bits is None:
        return w
    if bits == 1:
        return binary(w)
    return uniform(w, bits)
