"""The command line: the demo end to end on tiny settings, and argument errors."""

import keras
import pytest

import aconnect
from aconnect.cli import main


def test_demo_runs_end_to_end_and_saves_loadable_models(tmp_path, capsys):
    assert main(["demo", "--chips", "3", "--epochs", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "eval sigma" in out and "A-Connect (sigma 0.5)" in out
    assert all(f" {sigma} │" in out for sigma in ("0.3", "0.5", "0.7"))
    hardened = keras.models.load_model(tmp_path / "hardened.keras")
    layers = list(aconnect.aconnect_layers(hardened))
    assert [layer.mismatch.sigma for layer in layers] == [0.5, 0.5]
    assert (tmp_path / "baseline.keras").is_file()


@pytest.mark.parametrize("argv, message", [
    (["demo", "--sigma", "7"], "outside [0, 5.0]"),
    (["demo", "--sigma", "big"], "'big' is not a number"),
    (["demo", "--chips", "0"], "must be at least 1"),
    ([], "COMMAND"),
])
def test_bad_arguments_exit_with_a_usage_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert aconnect.__version__ in capsys.readouterr().out
