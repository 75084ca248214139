"""The job spec: defaults, bounds and errors that name the field."""

import json

import pytest

from aconnect import JobSpec, SpecError, parse_spec


def test_only_kind_is_required_and_defaults_follow_the_design():
    spec = parse_spec({"kind": "harden"})
    assert spec.mismatch.to_mismatch().bias_sigma == 0.5
    assert spec.training.epochs == 10 and spec.training.batch_size == 256
    assert spec.validation.sigmas == [0.0, 0.3, 0.5, 0.7] and spec.validation.top_k == [1, 5]


def test_the_design_example_parses(tmp_path):
    example = {
        "kind": "harden",
        "mismatch": {"sigma": 0.5, "bias_sigma": 0.5, "distribution": "normal",
                     "weight_bits": None, "bias_bits": None, "masks_per_batch": None,
                     "deterministic_error": None},
        "layers": {"exclude": ["first_dense"], "overrides": {"logits": {"sigma": 0.3}}},
        "training": {"epochs": 10, "batch_size": 256, "optimizer": "adam",
                     "learning_rate": 0.001, "validation_split": 0.1, "early_stopping": 3},
        "validation": {"samples": 1000, "sigmas": [0.0, 0.3, 0.5, 0.7], "seed": 0,
                       "top_k": [1, 5]},
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(example))
    assert parse_spec(path) == parse_spec(json.dumps(example)) == JobSpec(**example)


@pytest.mark.parametrize("spec, fragment", [
    ({}, "kind: Field required"),
    ({"kind": "train"}, "kind: Input should be 'harden' or 'evaluate'"),
    ({"kind": "harden", "mismatch": {"sigma": 7}}, "mismatch.sigma: Input should be less"),
    ({"kind": "harden", "mismatch": {"weight_bits": 12}}, "mismatch.weight_bits"),
    ({"kind": "harden", "mismatch": {"deterministic_error": 0.5}}, "needs weight_bits=1"),
    ({"kind": "harden", "training": {"epochs": 0}}, "training.epochs: Input should be greater"),
    ({"kind": "harden", "training": {"optimizer": "lbfgs"}}, "training.optimizer"),
    ({"kind": "harden", "validation": {"sigmas": [0.5, 9]}}, "validation.sigmas"),
    ({"kind": "harden", "validation": {"samples": 10**7}}, "validation.samples"),
    ({"kind": "harden", "extra": 1}, "extra: Extra inputs are not permitted"),
])
def test_invalid_specs_name_the_field(spec, fragment):
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert fragment in str(err.value)


def test_unreadable_spec_files(tmp_path):
    with pytest.raises(SpecError, match="cannot read spec file"):
        parse_spec(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        parse_spec(bad)
