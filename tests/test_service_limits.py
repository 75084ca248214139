"""Resource limits at submission: caps on the spec, jobs per owner, an unreachable broker."""

import pytest
from fastapi.testclient import TestClient

from app.auth import TokenStore
from app.main import create_app
from app.settings import Settings
from service_helpers import QUICK_SPEC, make_job_files, submit


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_job_files(tmp_path_factory.mktemp("limits"))


def test_spec_caps_and_active_job_limit(tmp_path, files):
    settings = Settings(data_dir=tmp_path, max_samples=50, max_epochs=5, max_active_jobs=2)
    token = TokenStore(settings.tokens_file).create("dan")
    model, data = files
    with TestClient(create_app(settings, start_workers=False)) as client:  # jobs stay queued
        too_many = submit(client, token, model, data,
                          {"kind": "evaluate", "validation": {"samples": 51}})
        assert too_many.status_code == 422
        assert "validation.samples: 51 is over this server's limit of 50" in too_many.text
        long = submit(client, token, model, data, {"kind": "harden", "training": {"epochs": 9},
                                                    "validation": {"samples": 10}})
        assert long.status_code == 422 and "training.epochs" in long.text
        assert submit(client, token, model, data).status_code == 202
        assert submit(client, token, model, data).status_code == 202
        third = submit(client, token, model, data)
        assert third.status_code == 429 and third.headers["retry-after"] == "30"
        other = TokenStore(settings.tokens_file).create("erin")
        assert submit(client, other, model, data).status_code == 202  # limits are per owner


def test_unreachable_broker_refuses_new_jobs_but_serves_status(tmp_path, files):
    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0")
    token = TokenStore(settings.tokens_file).create("fay")
    model, data = files
    with TestClient(create_app(settings)) as client:
        refused = submit(client, token, model, data, QUICK_SPEC)
        assert refused.status_code == 503 and "retry" in refused.json()["detail"]
        assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"}
                          ).status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "broker unreachable" in ready.json()["problems"]
        assert list(settings.jobs_dir.iterdir()) == []
