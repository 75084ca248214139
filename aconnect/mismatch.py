"""``Mismatch``: the one description of an analog device's imperfections.

The same object configures training (the layers), chips (``select_chip``) and, later, the
job spec of the command line and the service, so it validates itself once, here, with errors
that name the field, the value and the allowed range.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from aconnect import masks

SIGMA_MAX = 5.0
BITS_RANGE = (1, 8)
DETERMINISTIC_ERROR_RANGE = (0.0, 2.0)


def _check_sigma(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}={value!r} must be a number in [0, {SIGMA_MAX}]")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= SIGMA_MAX:
        raise ValueError(
            f"{name}={value!r} is outside the allowed range [0, {SIGMA_MAX}] "
            "(sigma is relative: 0.5 means a 50 % standard deviation)"
        )
    return value


def _check_bits(name: str, value: Any) -> int | None:
    if value is None:
        return None
    low, high = BITS_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(
            f"{name}={value!r} must be None (floating point) or an integer in [{low}, {high}]"
        )
    return value


@dataclass(frozen=True)
class Mismatch:
    """Device mismatch, quantization and masking granularity of analog layers.

    Args:
        sigma: relative standard deviation of weight masks (``sigma_W / |mu_W|``), in [0, 5].
        bias_sigma: the same for biases; defaults to ``sigma``.
        distribution: ``"normal"`` (``|1 + sigma n|``) or ``"lognormal"`` (``exp(-sigma n)``).
        weight_bits: ``None`` for float weights, 1 for binary, 2..8 for uniform levels.
        bias_bits: the same for biases.
        masks_per_batch: ``None`` (default) draws one mask per training example, which is what
            A-Connect is; ``k`` splits each batch into ``k`` groups that share a mask.
        deterministic_error: factor ``d`` in (0, 2] that scales the masks of non-positive
            binary weights (cells storing -1 that are systematically weaker or stronger).
            Only meaningful with ``weight_bits=1``.
    """

    sigma: float = 0.5
    bias_sigma: float | None = None
    distribution: str = "normal"
    weight_bits: int | None = None
    bias_bits: int | None = None
    masks_per_batch: int | None = None
    deterministic_error: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "sigma", _check_sigma("sigma", self.sigma))
        bias_sigma = self.sigma if self.bias_sigma is None else self.bias_sigma
        set_(self, "bias_sigma", _check_sigma("bias_sigma", bias_sigma))
        if self.distribution not in masks.DISTRIBUTIONS:
            raise ValueError(
                f"distribution={self.distribution!r} must be one of {list(masks.DISTRIBUTIONS)}"
            )
        set_(self, "weight_bits", _check_bits("weight_bits", self.weight_bits))
        set_(self, "bias_bits", _check_bits("bias_bits", self.bias_bits))
        k = self.masks_per_batch
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ValueError(
                f"masks_per_batch={k!r} must be None (one mask per example) or an integer >= 1"
            )
        d = self.deterministic_error
        if d is not None:
            low, high = DETERMINISTIC_ERROR_RANGE
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not low < d <= high:
                raise ValueError(
                    f"deterministic_error={d!r} must be None or a number in ({low}, {high}]"
                )
            if self.weight_bits != 1:
                raise ValueError(
                    f"deterministic_error={d!r} needs weight_bits=1 (binary weights); "
                    f"got weight_bits={self.weight_bits!r}"
                )
            set_(self, "deterministic_error", float(d))

    # -- derived quantities -------------------------------------------------------------
    @property
    def is_noiseless(self) -> bool:
        """True when no mask can change a weight or a bias."""
        return self.sigma == 0 and self.bias_sigma == 0

    def weight_moments(self) -> tuple[float, float]:
        """``(E[m], Var[m])`` of a weight mask."""
        return masks.mask_moments(self.sigma, self.distribution)

    def bias_moments(self) -> tuple[float, float]:
        """``(E[m], Var[m])`` of a bias mask."""
        return masks.mask_moments(self.bias_sigma, self.distribution)

    def sample_weight_masks(self, shape, seed, dtype="float32"):
        """Draw weight masks of ``shape`` (``seed``: int or ``keras.random.SeedGenerator``)."""
        return masks.sample_masks(shape, self.sigma, self.distribution, seed, dtype)

    def sample_bias_masks(self, shape, seed, dtype="float32"):
        """Draw bias masks of ``shape`` (``seed``: int or ``keras.random.SeedGenerator``)."""
        return masks.sample_masks(shape, self.bias_sigma, self.distribution, seed, dtype)

    def compensation(self, trained: "Mismatch") -> tuple[float, float]:
        """Mask factors (weight, bias) for evaluating at ``self`` a model trained at ``trained``.

        Only lognormal masks need it: their mean ``exp(sigma^2/2)`` depends on sigma.
        """
        if self.distribution != "lognormal":
            return 1.0, 1.0
        t_w = trained.sigma if trained.distribution == "lognormal" else 0.0
        t_b = trained.bias_sigma if trained.distribution == "lognormal" else 0.0
        return (
            masks.lognormal_compensation(t_w, self.sigma),
            masks.lognormal_compensation(t_b, self.bias_sigma),
        )

    # -- serialization -------------------------------------------------------------------
    def replace(self, **changes: Any) -> "Mismatch":
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Mismatch":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown mismatch field(s) {unknown}; allowed: {sorted(known)}")
        return cls(**config)

    @classmethod
    def coerce(cls, value: "Mismatch | Mapping[str, Any] | float | None") -> "Mismatch":
        """Accept a ``Mismatch``, its config dict, a bare sigma, or ``None`` (the default)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls.from_config(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(sigma=value)
        raise ValueError(
            f"mismatch={value!r} must be a Mismatch, a dict of its fields, or a sigma number"
        )
