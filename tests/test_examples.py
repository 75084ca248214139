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


def test_submit_job_example_against_the_embedded_service(tmp_path, capsys):
    from fastapi.testclient import TestClient

    from app.auth import TokenStore
    from app.main import create_app
    from app.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    token = TokenStore(settings.tokens_file).create("me")
    main = runpy.run_path(str(EXAMPLES / "submit_job.py"))["main"]
    with TestClient(create_app(settings)) as http:
        report = main(["--url", "http://testserver", "--token", token, "--samples", "3",
                       "--epochs", "1"], http=http)
    assert [row["sigma"] for row in report["summary"]] == [0.0, 0.5, 0.7]
    assert "hardened median" in capsys.readouterr().out
