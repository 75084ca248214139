"""The whole job from files: command line harden/evaluate, report contents, exports, errors."""

import json

import keras
import numpy as np
import pytest

import aconnect
from aconnect.cli import main
from aconnect.pipeline import ModelError, load_model, run_job
from service_helpers import make_job_files


@pytest.fixture(scope="module")
def job_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("job")
    make_job_files(folder, train=600, test=slice(1500, None), hidden=32, epochs=10)
    return folder


def test_cli_harden_writes_report_plots_and_both_models(job_files, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["harden", str(job_files / "model.keras"), "--data",
                 str(job_files / "digits.npz"), "--sigma", "0.5", "--epochs", "2",
                 "--samples", "6", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "baseline" in printed and "hardened" in printed and "report.html" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 1 and report["kind"] == "harden"
    assert report["inputs"]["data"] == {"train": 600, "test": 297, "val": 0}
    assert [d["converted"] for d in report["conversion"]["layers"]] == [True, True]
    assert len(report["training"]["history"]["loss"]) == 2
    chips = report["validation"]["models"]["hardened"]["0.5"]["per_chip"]["accuracy"]
    assert len(chips) == 6
    assert report["summary"][2]["hardened"]["median"] == pytest.approx(np.median(chips))
    assert set(report["validation"]["models"]["baseline"]["0.5"]["per_chip"]) == {
        "accuracy", "top_5_accuracy", "loss"}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html
    for png in ("accuracy_vs_sigma.png", "training_curves.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    hardened = keras.models.load_model(out / "hardened.keras")
    plain = keras.models.load_model(out / "hardened_plain.keras")
    assert len(list(aconnect.aconnect_layers(hardened))) == 2
    assert not list(aconnect.aconnect_layers(plain))
    x = np.load(job_files / "digits.npz")["x_test"]
    np.testing.assert_allclose(plain.predict(x, verbose=0), hardened.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    assert not list(out.glob(".*"))  # no partial files left behind


def test_cli_evaluate_reports_the_model_as_it_is(job_files, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", str(job_files / "model.keras"), "--data",
                 str(job_files / "digits.npz"), "--sigmas", "0,0.5", "--samples", "4",
                 "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "evaluate" and list(report["validation"]["models"]) == ["baseline"]
    assert report["validation"]["sigmas"] == [0.0, 0.5]
    assert report["conversion"] is None and not (out / "hardened.keras").exists()


def test_spec_file_drives_the_job(job_files, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"kind": "harden", "mismatch": {"sigma": 0.3},
                                "layers": {"exclude": ["hid*"]},
                                "training": {"epochs": 1},
                                "validation": {"samples": 2, "sigmas": [0.3]}}))
    written = run_job(job_files / "model.keras", job_files / "digits.npz", spec, tmp_path / "o")
    report = json.loads(written["report.json"].read_text())
    assert report["inputs"]["spec"]["mismatch"]["sigma"] == 0.3
    reasons = {d["name"]: d["reason"] for d in report["conversion"]["layers"]}
    assert reasons == {"hidden": "excluded", "logits": "converted"}


@pytest.mark.parametrize("argv, message", [
    (["harden", "MODEL", "--data", "DATA", "--out", "OUT", "--spec", "missing.json"],
     "cannot read spec file"),
    (["harden", "nope.keras", "--data", "DATA", "--out", "OUT"], "does not exist"),
    (["evaluate", "MODEL", "--data", "bad.npz"], "is not a readable .npz"),
    (["harden", "MODEL", "--data", "DATA", "--out", "OUT", "--sigma", "0.5", "--spec", "s"],
     "not allowed with argument"),
])
def test_cli_errors_are_one_clear_line(job_files, tmp_path, capsys, argv, message):
    (tmp_path / "bad.npz").write_text("junk")
    replace = {"MODEL": str(job_files / "model.keras"), "DATA": str(job_files / "digits.npz"),
               "OUT": str(tmp_path / "never"), "bad.npz": str(tmp_path / "bad.npz"),
               "missing.json": str(tmp_path / "missing.json"),
               "nope.keras": str(tmp_path / "nope.keras")}
    argv = [replace.get(a, a) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()  # nothing half-written


def test_only_keras_files_are_loaded(tmp_path):
    (tmp_path / "m.h5").write_bytes(b"x")
    with pytest.raises(ModelError, match="only the .keras format"):
        load_model(tmp_path / "m.h5")
    (tmp_path / "m.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a .keras file"):
        load_model(tmp_path / "m.keras")
