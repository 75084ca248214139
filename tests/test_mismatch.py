"""The mismatch model: validation, serialization, analytic vs sampled moments."""

import json
import math

import numpy as np
import pytest
from keras import ops

from aconnect import Mismatch
from aconnect.masks import mask_moments, sample_masks, standard_normal


@pytest.mark.parametrize(
    "kwargs, field, fragment",
    [
        ({"sigma": -0.1}, "sigma=-0.1", "[0, 5.0]"),
        ({"sigma": 50}, "sigma=50", "[0, 5.0]"),
        ({"sigma": float("nan")}, "sigma=nan", "[0, 5.0]"),
        ({"sigma": "0.5"}, "sigma='0.5'", "number"),
        ({"bias_sigma": -1}, "bias_sigma=-1", "[0, 5.0]"),
        ({"distribution": "uniform"}, "distribution='uniform'", "['normal', 'lognormal']"),
        ({"weight_bits": 0}, "weight_bits=0", "[1, 8]"),
        ({"weight_bits": 9}, "weight_bits=9", "[1, 8]"),
        ({"bias_bits": 2.5}, "bias_bits=2.5", "[1, 8]"),
        ({"weight_bits": True}, "weight_bits=True", "[1, 8]"),
        ({"masks_per_batch": 0}, "masks_per_batch=0", ">= 1"),
        ({"deterministic_error": 0.8}, "deterministic_error=0.8", "weight_bits=1"),
        ({"weight_bits": 1, "deterministic_error": 0}, "deterministic_error=0", "(0.0, 2.0]"),
        ({"weight_bits": 1, "deterministic_error": 3}, "deterministic_error=3", "(0.0, 2.0]"),
    ],
)
def test_invalid_fields_name_field_value_and_range(kwargs, field, fragment):
    with pytest.raises(ValueError) as err:
        Mismatch(**kwargs)
    assert field in str(err.value)
    assert fragment in str(err.value)


def test_bias_sigma_defaults_to_sigma_and_config_round_trips_through_json():
    m = Mismatch(sigma=0.3, distribution="lognormal", weight_bits=1, deterministic_error=0.9,
                 masks_per_batch=4)
    assert m.bias_sigma == 0.3
    restored = Mismatch.from_config(json.loads(json.dumps(m.get_config())))
    assert restored == m


def test_from_config_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown mismatch field.*'sigmaa'"):
        Mismatch.from_config({"sigmaa": 0.5})


def test_coerce_accepts_number_dict_instance_and_none():
    assert Mismatch.coerce(0.7).sigma == 0.7
    assert Mismatch.coerce({"sigma": 0.2}).bias_sigma == 0.2
    assert Mismatch.coerce(None) == Mismatch()
    with pytest.raises(ValueError, match="mismatch="):
        Mismatch.coerce("big")


def test_documented_folded_normal_means():
    assert mask_moments(0.5, "normal")[0] == pytest.approx(1.0085, abs=1e-4)
    assert mask_moments(0.7, "normal")[0] == pytest.approx(1.048, abs=1e-3)
    assert mask_moments(0.0, "lognormal") == (1.0, 0.0)


@pytest.mark.parametrize("distribution", ["normal", "lognormal"])
@pytest.mark.parametrize("sigma", [0.1, 0.5, 0.9])
def test_sampled_moments_match_analytic(distribution, sigma):
    n = 4_000_000
    samples = ops.convert_to_numpy(
        sample_masks((n,), sigma, distribution, seed=11)).astype(np.float64)
    mean, var = mask_moments(sigma, distribution)
    # Standard errors at this sample size are < 3e-4 of the values checked here.
    assert samples.mean() == pytest.approx(mean, rel=2e-3)
    assert samples.var() == pytest.approx(var, rel=1e-2)
    assert samples.min() >= 0.0


def test_standard_normal_is_standard_and_seeded():
    z = ops.convert_to_numpy(standard_normal((1_000_001,), seed=3)).astype(np.float64)
    assert z.shape == (1_000_001,)
    assert abs(z.mean()) < 5e-3
    assert z.var() == pytest.approx(1.0, abs=6e-3)
    assert np.mean(np.abs(z) < 1.0) == pytest.approx(0.6827, abs=3e-3)
    again = ops.convert_to_numpy(standard_normal((1_000_001,), seed=3))
    np.testing.assert_array_equal(z.astype(np.float32), again)


def test_lognormal_compensation_restores_the_training_mean():
    trained = Mismatch(sigma=0.5, distribution="lognormal")
    evaluation = Mismatch(sigma=0.8, distribution="lognormal")
    w_factor, b_factor = evaluation.compensation(trained)
    assert w_factor * evaluation.weight_moments()[0] == pytest.approx(
        trained.weight_moments()[0])
    assert b_factor == pytest.approx(math.exp(0.5 * (0.25 - 0.64)))
    assert Mismatch(sigma=0.8).compensation(trained) == (1.0, 1.0)
