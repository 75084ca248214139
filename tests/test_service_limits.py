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


def test_oversized_uploads_are_cut_off_while_streaming(tmp_path, files):
    settings = Settings(data_dir=tmp_path, max_model_bytes=20_000, max_data_bytes=1_000_000,
                        max_spec_bytes=1000)
    token = TokenStore(settings.tokens_file).create("ian")
    limit = 20_000 + 1_000_000 + 1000 + 2**16
    boundary = "xyz"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"; "
            "filename=\"m.keras\"\r\n\r\n").encode()

    def chunks():  # no Content-Length: the server only learns the size as it reads
        yield head
        for _ in range(400):
            yield b"\0" * 4096

    headers = {"Authorization": f"Bearer {token}",
               "Content-Type": f"multipart/form-data; boundary={boundary}"}
    with TestClient(create_app(settings, start_workers=False)) as client:
        chunked = client.post("/v1/jobs", headers=headers, content=chunks())
        assert chunked.status_code == 413
        assert f"larger than the limit of {limit} bytes" in chunked.json()["detail"]
        declared = client.post("/v1/jobs", headers={**headers, "Content-Length": str(10**9)},
                               content=b"")
        assert declared.status_code == 413
        model, data = files  # within the per-file limits but the model is larger than 20 kB
        too_big_file = submit(client, token, model, data, QUICK_SPEC)
        assert too_big_file.status_code == 413 and "model: larger than the limit" in (
            too_big_file.text)
    assert list(settings.jobs_dir.iterdir()) == []
