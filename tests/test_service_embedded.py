"""The service end to end in its embedded shape: real HTTP app, real local worker process."""

import io
import json

import keras
import pytest
from fastapi.testclient import TestClient

import aconnect
from app.auth import TokenStore
from app.main import create_app
from app.settings import Settings
from app.store import JobStore
from service_helpers import QUICK_SPEC, SLOW_SPEC, make_job_files, submit, wait_for


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("service")
    model, data = make_job_files(root)
    settings = Settings(data_dir=root / "data")
    tokens = TokenStore(settings.tokens_file)
    alice, bob = tokens.create("alice"), tokens.create("bob")
    with TestClient(create_app(settings)) as client:
        yield client, alice, bob, model, data, settings


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_submit_follow_download_and_report(service, tmp_path):
    client, alice, _, model, data, _ = service
    response = submit(client, alice, model, data)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] in ("queued", "running") and job["links"]["self"].endswith(job["id"])
    done = wait_for(client, alice, job["id"], ("succeeded", "failed"))
    assert done["state"] == "succeeded", done["error"]
    assert done["progress"]["fraction"] == 1.0 and done["finished"] >= done["started"]

    report = client.get(f"/v1/jobs/{job['id']}/report", headers=_auth(alice)).json()
    assert report["schema_version"] == 1 and report["kind"] == "harden"
    assert len(report["validation"]["models"]["hardened"]["0.5"]["per_chip"]["accuracy"]) == 3
    artifacts = {a["name"]: a for a in
                 client.get(f"/v1/jobs/{job['id']}/artifacts", headers=_auth(alice)).json()}
    assert {"hardened.keras", "hardened_plain.keras", "report.html", "report.json",
            "accuracy_vs_sigma.png"} <= set(artifacts)
    assert artifacts["report.html"]["content_type"].startswith("text/html")
    download = client.get(artifacts["hardened.keras"]["url"], headers=_auth(alice))
    assert download.status_code == 200
    assert int(download.headers["content-length"]) == artifacts["hardened.keras"]["size"]
    (tmp_path / "hardened.keras").write_bytes(download.content)
    hardened = keras.models.load_model(tmp_path / "hardened.keras")
    assert len(list(aconnect.aconnect_layers(hardened))) == 2
    png = client.get(artifacts["accuracy_vs_sigma.png"]["url"], headers=_auth(alice))
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"


def test_owners_see_only_their_jobs(service):
    client, alice, bob, model, data, _ = service
    job = submit(client, alice, model, data).json()
    assert client.get(f"/v1/jobs/{job['id']}", headers=_auth(bob)).status_code == 404
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=_auth(bob)).status_code == 404
    assert all(j["id"] != job["id"] for j in
               client.get("/v1/jobs", headers=_auth(bob)).json()["jobs"])
    listed = client.get("/v1/jobs", headers=_auth(alice)).json()
    assert listed["jobs"][0]["id"] == job["id"]  # newest first
    assert client.get("/v1/jobs").status_code == 401
    assert client.get("/v1/jobs", headers=_auth("made-up")).status_code == 401
    wait_for(client, alice, job["id"], ("succeeded", "failed"))


def test_cancel_a_running_job_frees_the_worker(service):
    client, alice, _, model, data, _ = service
    slow = submit(client, alice, model, data, SLOW_SPEC).json()
    wait_for(client, alice, slow["id"], ("running",))
    canceled = client.post(f"/v1/jobs/{slow['id']}/cancel", headers=_auth(alice))
    assert canceled.status_code == 202
    assert wait_for(client, alice, slow["id"], ("canceled", "succeeded", "failed"),
                    timeout=60)["state"] == "canceled"
    after = submit(client, alice, model, data).json()
    assert wait_for(client, alice, after["id"], ("succeeded", "failed"))["state"] == "succeeded"
    assert client.post(f"/v1/jobs/{slow['id']}/cancel", headers=_auth(alice)).status_code == 409
    assert client.delete(f"/v1/jobs/{slow['id']}", headers=_auth(alice)).status_code == 204
    assert client.get(f"/v1/jobs/{slow['id']}", headers=_auth(alice)).status_code == 404


def test_bad_submissions_are_refused_and_leave_nothing(service):
    client, alice, _, model, data, settings = service
    before = set(settings.jobs_dir.iterdir())
    bad_spec = submit(client, alice, model, data, {"kind": "harden", "mismatch": {"sigma": 9}})
    assert bad_spec.status_code == 422 and "mismatch.sigma" in bad_spec.json()["detail"]
    not_json = client.post("/v1/jobs", headers=_auth(alice), data={"spec": "{"},
                           files={"model": ("m", io.BytesIO(b"x")), "data": ("d", io.BytesIO(b"y"))})
    assert not_json.status_code == 422 and "not valid JSON" in not_json.json()["detail"]
    empty = client.post("/v1/jobs", headers=_auth(alice), data={"spec": json.dumps(QUICK_SPEC)},
                        files={"model": ("m", io.BytesIO(b"")), "data": ("d", io.BytesIO(b"y"))})
    assert empty.status_code == 422 and "model" in empty.json()["detail"]
    assert set(settings.jobs_dir.iterdir()) == before


def test_failed_jobs_say_why(service, tmp_path):
    client, alice, _, model, _, _ = service
    wrong = tmp_path / "wrong.npz"
    import numpy as np
    np.savez(wrong, x_train=np.zeros((4, 5)), y_train=[0, 1, 2, 3], x_test=np.zeros((2, 5)),
             y_test=[0, 1])
    job = submit(client, alice, model, wrong).json()
    failed = wait_for(client, alice, job["id"], ("failed", "succeeded"))
    assert failed["state"] == "failed" and "the model takes (64,)" in failed["error"]
    assert client.get(f"/v1/jobs/{job['id']}/report", headers=_auth(alice)).status_code == 409


def test_health_readiness_metrics_and_openapi(service):
    client = service[0]
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    metrics = client.get("/metrics").text
    assert 'aconnect_jobs{state="succeeded"}' in metrics and "aconnect_queue_depth" in metrics
    assert "aconnect_request_seconds_bucket" in metrics
    assert 'aconnect_stage_duration_seconds_count{stage="harden"}' in metrics
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel",
            "/v1/jobs/{job_id}/report", "/v1/jobs/{job_id}/artifacts/{name}"} <= set(paths)


def test_a_killed_worker_is_replaced_and_its_job_resumes(tmp_path):
    """SIGKILL the embedded worker mid-training: the supervisor starts another, which takes the
    abandoned job again (attempt 2) and finishes it; no API restart needed."""
    import os
    import signal
    import time

    from service_helpers import make_job_files

    model, data = make_job_files(tmp_path)
    settings = Settings(data_dir=tmp_path / "data")
    token = TokenStore(settings.tokens_file).create("hal")
    spec = {"kind": "harden", "training": {"epochs": 30, "batch_size": 8, "early_stopping": None},
            "validation": {"samples": 2, "sigmas": [0.5]}}
    with TestClient(create_app(settings)) as client:
        job = submit(client, token, model, data, spec).json()
        deadline = time.monotonic() + 120
        while (record := JobStore(settings.jobs_dir).get(job["id"])).get("step", 0) == 0 and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        killed = record["worker"]
        os.kill(int(killed.rpartition("/")[2]), signal.SIGKILL)
        done = wait_for(client, token, job["id"], ("succeeded", "failed"))
        assert done["state"] == "succeeded", done["error"]
        assert done["attempts"] == 2  # the API says the job was run again
        assert JobStore(settings.jobs_dir).get(job["id"])["worker"] != killed
