"""The mask model: how one analog device deviates from its programmed value.

Every weight (and bias) is multiplied by a random mask ``m``. Two device models:

- ``normal``:    ``m = |1 + sigma * n|``, ``n ~ N(0, 1)`` (a folded normal; never negative,
  because a conductance cannot change sign).
- ``lognormal``: ``m = exp(-sigma * n)``.

The analytic moments are what the fast Dense path and the tests rely on, so they live here,
next to the sampler they describe.
"""

from __future__ import annotations

import math

import keras
from keras import ops

DISTRIBUTIONS = ("normal", "lognormal")


def mask_moments(sigma: float, distribution: str) -> tuple[float, float]:
    """Return ``(E[m], Var[m])`` of one mask, computed in closed form."""
    if sigma == 0:
        return 1.0, 0.0
    if distribution == "normal":
        # Folded normal |X| with X ~ N(1, sigma^2).
        z = 1.0 / sigma
        mean = sigma * math.sqrt(2.0 / math.pi) * math.exp(-0.5 * z * z) + math.erf(
            z / math.sqrt(2.0)
        )
        second = 1.0 + sigma * sigma
        return mean, max(second - mean * mean, 0.0)
    if distribution == "lognormal":
        s2 = sigma * sigma
        return math.exp(s2 / 2.0), math.expm1(s2) * math.exp(s2)
    raise ValueError(f"distribution={distribution!r} is not one of {DISTRIBUTIONS}")


def lognormal_compensation(trained_sigma: float, eval_sigma: float) -> float:
    """Factor that gives eval-sigma lognormal masks the mean the model was trained with.

    A model trained at ``sigma_t`` has learned weights that expect an average mask of
    ``exp(sigma_t^2 / 2)``; evaluating it at ``sigma_s`` without this factor would shift every
    weight's mean, which is a calibration error, not mismatch.
    """
    return math.exp(0.5 * (trained_sigma**2 - eval_sigma**2))


_BITS = 15  # two 15-bit uniforms per 30-bit random integer
_LEVELS = 2**_BITS


def random_bits(pairs, seed):
    """``pairs`` random 30-bit integers: the raw material of ``2 * pairs`` normals."""
    return keras.random.randint((pairs,), 0, _LEVELS**2, seed=seed, dtype="int32")


def normals_from_bits(bits):
    """Box-Muller on the two 15-bit halves of each integer: ``(..., p) -> (..., 2p)`` normals.

    Per-example masks need a million normals per step for a modest convolution, and
    ``keras.random.normal`` costs ~7 ns each on CPU; this costs about half. The 15-bit grid
    truncates ``|n|`` at 4.7 (probability 3e-6), which no device model can tell apart.
    """
    u1 = ops.cast(ops.bitwise_and(bits, _LEVELS - 1), "float32") * (1.0 / _LEVELS) + (
        0.5 / _LEVELS)
    angle = ops.cast(ops.right_shift(bits, _BITS), "float32") * (2.0 * math.pi / _LEVELS)
    radius = ops.sqrt(-2.0 * ops.log(u1))
    return ops.concatenate([radius * ops.cos(angle), radius * ops.sin(angle)], axis=-1)


def standard_normal(shape, seed, dtype="float32"):
    """``N(0, 1)`` samples of ``shape`` (see ``normals_from_bits``)."""
    size = math.prod(shape) if all(isinstance(d, int) for d in shape) else ops.prod(shape)
    normals = normals_from_bits(random_bits((size + 1) // 2, seed))
    if not isinstance(size, int) or size % 2:
        normals = normals[:size]
    return ops.cast(ops.reshape(normals, shape), dtype)


def masks_from_normals(normals, sigma: float, distribution: str):
    """The device model applied to standard normals."""
    if sigma == 0:
        return ops.ones_like(normals)
    if distribution == "normal":
        return ops.abs(1.0 + sigma * normals)
    if distribution == "lognormal":
        return ops.exp(-sigma * normals)
    raise ValueError(f"distribution={distribution!r} is not one of {DISTRIBUTIONS}")


def sample_masks(shape, sigma: float, distribution: str, seed, dtype="float32"):
    """Draw masks of ``shape``; ``seed`` is an int or a ``keras.random.SeedGenerator``."""
    if sigma == 0:
        return ops.ones(shape, dtype=dtype)
    return masks_from_normals(standard_normal(shape, seed, dtype), sigma, distribution)
