"""The job spec: one schema for the library, the command line and the service.

Every field but ``kind`` has a default; bounds are part of the schema, so an invalid spec is
rejected with the field's path and the limit before any work starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aconnect.mismatch import SIGMA_MAX, Mismatch


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MismatchSpec(_Strict):
    sigma: float = Field(0.5, ge=0, le=SIGMA_MAX)
    bias_sigma: float | None = Field(None, ge=0, le=SIGMA_MAX)
    distribution: Literal["normal", "lognormal"] = "normal"
    weight_bits: int | None = Field(None, ge=1, le=8)
    bias_bits: int | None = Field(None, ge=1, le=8)
    masks_per_batch: int | None = Field(None, ge=1)
    deterministic_error: float | None = Field(None, gt=0, le=2)

    def to_mismatch(self) -> Mismatch:
        return Mismatch(**self.model_dump())


class LayersSpec(_Strict):
    include: list[str] | None = None
    exclude: list[str] = []
    overrides: dict[str, dict[str, Any]] = {}


class TrainingSpec(_Strict):
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(256, ge=1, le=65536)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    learning_rate: float = Field(1e-3, gt=0, le=10)
    validation_split: float = Field(0.1, ge=0, lt=1)
    early_stopping: int | None = Field(3, ge=1, description="patience in epochs; null: off")


class ValidationSpec(_Strict):
    samples: int = Field(1000, ge=1, le=100_000)
    sigmas: list[float] = Field([0.0, 0.3, 0.5, 0.7], min_length=1, max_length=32)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    top_k: list[int] = Field([1, 5], min_length=1)

    @field_validator("sigmas")
    @classmethod
    def _sigmas_in_range(cls, sigmas: list[float]) -> list[float]:
        for s in sigmas:
            if not 0 <= s <= SIGMA_MAX:
                raise ValueError(f"each sigma must be in [0, {SIGMA_MAX}], got {s}")
        return sigmas

    @field_validator("top_k")
    @classmethod
    def _positive_k(cls, top_k: list[int]) -> list[int]:
        if any(k < 1 for k in top_k):
            raise ValueError(f"each k must be >= 1, got {top_k}")
        return top_k


class JobSpec(_Strict):
    kind: Literal["harden", "evaluate"]
    mismatch: MismatchSpec = MismatchSpec()
    layers: LayersSpec = LayersSpec()
    training: TrainingSpec = TrainingSpec()
    validation: ValidationSpec = ValidationSpec()


class SpecError(ValueError):
    """An invalid spec; the message lists each bad field as ``path: problem``."""


def parse_spec(value: JobSpec | dict | str | Path) -> JobSpec:
    """A validated ``JobSpec`` from a spec, a dict, a JSON string or a JSON file path."""
    if isinstance(value, JobSpec):
        return value
    source = "spec"
    if isinstance(value, Path) or (isinstance(value, str) and not value.lstrip().startswith("{")):
        source = str(value)
        try:
            value = Path(value).read_text()
        except OSError as err:
            raise SpecError(f"cannot read spec file {source}: {err.strerror}") from None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise SpecError(f"{source} is not valid JSON: {err}") from None
    try:
        spec = JobSpec.model_validate(value)
        spec.mismatch.to_mismatch()  # cross-field rules (deterministic_error needs 1 bit)
        return spec
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in err.errors())
        raise SpecError(f"invalid {source}: {problems}") from None
    except ValueError as err:
        raise SpecError(f"invalid {source}: mismatch: {err}") from None
