"""The examples run as documented (on tiny settings)."""

import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_digits_cnn_example_trains_and_evaluates_chips(capsys):
    main = runpy.run_path(str(EXAMPLES / "digits_cnn.py"))["main"]
    summary = main(["--epochs", "3", "--chips", "3"])
    assert 0.5 < summary["nominal"] <= 1.0
    assert 0.0 < summary["chip_min"] <= summary["chip_median"] <= 1.0
    assert "over 3 chips at sigma 0.5" in capsys.readouterr().out
