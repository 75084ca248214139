"""The method's whole point: on digits, A-Connect fine-tuning makes chips more accurate."""

import numpy as np

from aconnect.demo import run_demo


def test_hardened_digits_mlp_beats_the_baseline_on_simulated_chips():
    result = run_demo(sigma=0.5, chips=100, epochs=20, seed=0, sigmas=(0.0, 0.5))
    baseline, hardened = result.baseline[0.5], result.hardened[0.5]
    assert np.median(hardened) >= np.median(baseline) + 0.02
    assert np.percentile(hardened, 5) > np.percentile(baseline, 5)  # the bad chips improve most
    # Without mismatch both are ordinary, accurate classifiers.
    assert min(result.baseline[0.0].min(), result.hardened[0.0].min()) > 0.9
