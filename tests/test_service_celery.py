"""The service with Celery: a real Redis broker and a real Celery worker process."""

import json
import os
from contextlib import contextmanager
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from app.auth import TokenStore
from app.main import create_app
from app.settings import Settings
from app.store import JobStore
from service_helpers import QUICK_SPEC, SLOW_SPEC, make_job_files, submit, wait_for

BROKER = "redis://127.0.0.1:6379/15"
ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def celery_workers(settings: Settings, count: int = 1, **env_extra: str):
    """``count`` real Celery worker processes for ``settings``; stopped on exit."""
    env = {**os.environ, "ACONNECT_BROKER_URL": settings.broker_url,
           "ACONNECT_DATA_DIR": str(settings.data_dir), **env_extra}
    workers = [subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app:celery_app", "worker",
         "--concurrency=1", "--loglevel=WARNING", "--without-gossip", "--without-mingle",
         "-n", f"w{i}-{os.getpid()}@%h"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL) for i in range(count)]
    try:
        yield workers
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()


def _redis(port: int) -> subprocess.Popen:
    """A private Redis without persistence (so a restart forgets every queued message)."""
    server = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                               "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=1)
    for _ in range(100):
        try:
            client.ping()
            return server
        except redis.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"redis-server did not start on port {port}")


@pytest.fixture(scope="module", autouse=True)
def redis_server():
    """Use the Redis on 127.0.0.1:6379, or start one there for these tests."""
    client = redis.Redis.from_url(BROKER, socket_connect_timeout=1)
    try:
        client.ping()
        yield
        return
    except redis.ConnectionError:
        pass
    if shutil.which("redis-server") is None:
        pytest.fail("these tests need a Redis server: nothing answers on 127.0.0.1:6379 and "
                    "redis-server is not installed (apt-get install redis-server)")
    server = _redis(6379)
    yield
    server.terminate()
    server.wait(10)


def _fresh(tmp_path: Path, db: int, owner: str, **settings_extra):
    """Job files, settings on an emptied Redis database ``db``, and a token for ``owner``."""
    broker = BROKER.replace("/15", f"/{db}")
    redis.Redis.from_url(broker).flushdb()
    model, data = make_job_files(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", broker_url=broker, **settings_extra)
    return model, data, settings, TokenStore(settings.tokens_file).create(owner)


@pytest.fixture(scope="module")
def celery_service(tmp_path_factory, redis_server):
    redis.Redis.from_url(BROKER, socket_connect_timeout=1).flushdb()
    root = tmp_path_factory.mktemp("celery")
    model, data = make_job_files(root)
    settings = Settings(data_dir=root / "data", broker_url=BROKER)
    token = TokenStore(settings.tokens_file).create("alice")
    with celery_workers(settings), TestClient(create_app(settings)) as client:
        yield client, token, model, data


def test_a_celery_worker_runs_submitted_jobs(celery_service, tmp_path):
    client, token, model, data = celery_service
    job = submit(client, token, model, data)
    assert job.status_code == 202, job.text
    done = wait_for(client, token, job.json()["id"], ("succeeded", "failed"), timeout=240)
    assert done["state"] == "succeeded", done["error"]
    headers = {"Authorization": f"Bearer {token}"}
    report = client.get(f"/v1/jobs/{done['id']}/report", headers=headers).json()
    assert report["kind"] == "harden"
    import keras

    import aconnect

    blob = client.get(f"/v1/jobs/{done['id']}/artifacts/hardened.keras", headers=headers)
    (tmp_path / "h.keras").write_bytes(blob.content)
    assert list(aconnect.aconnect_layers(keras.models.load_model(tmp_path / "h.keras")))
    assert client.get("/readyz").json() == {"status": "ready"}


def test_cancel_reaches_a_celery_worker_and_frees_it(celery_service):
    client, token, model, data = celery_service
    slow = submit(client, token, model, data, SLOW_SPEC).json()
    wait_for(client, token, slow["id"], ("running",), timeout=120)
    client.post(f"/v1/jobs/{slow['id']}/cancel", headers={"Authorization": f"Bearer {token}"})
    assert wait_for(client, token, slow["id"], ("canceled", "failed", "succeeded"),
                    timeout=60)["state"] == "canceled"
    started = time.monotonic()
    quick = submit(client, token, model, data).json()
    assert wait_for(client, token, quick["id"], ("succeeded", "failed"))["state"] == "succeeded"
    assert time.monotonic() - started < 120


def test_monte_carlo_fanned_out_over_two_workers_equals_one_process(tmp_path):
    """Chips split into chunks on two worker processes give the single-process statistics."""
    from celery import Celery

    from aconnect.pipeline import run_job

    model, data, settings, token = _fresh(tmp_path, 14, "carol")
    spec = {"kind": "evaluate", "validation": {"samples": 6, "sigmas": [0.3, 0.6], "seed": 4}}
    with celery_workers(settings, 2, ACONNECT_MC_CHUNK_CHIPS="2"):
        control = Celery(broker=settings.broker_url).control
        deadline = time.monotonic() + 60
        while len(control.ping(timeout=1)) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        with TestClient(create_app(settings)) as client:
            job = submit(client, token, model, data, spec).json()
            done = wait_for(client, token, job["id"], ("succeeded", "failed"), timeout=240)
            assert done["state"] == "succeeded", done["error"]
            fanned = client.get(f"/v1/jobs/{job['id']}/report",
                                headers={"Authorization": f"Bearer {token}"}).json()
        stored = JobStore(settings.jobs_dir).get(job["id"])
        assert len(stored["workers"]) == 2  # both worker processes evaluated chunks
    single = json.loads(run_job(model, data, spec, tmp_path / "single")["report.json"]
                        .read_text())
    for sigma in ("0.3", "0.6"):
        ours = fanned["validation"]["models"]["baseline"][sigma]
        theirs = single["validation"]["models"]["baseline"][sigma]
        for metric, values in theirs["per_chip"].items():
            np.testing.assert_allclose(ours["per_chip"][metric], values, rtol=1e-6)
        assert ours["statistics"]["accuracy"] == pytest.approx(theirs["statistics"]["accuracy"])


MEDIUM_SPEC = {"kind": "harden", "training": {"epochs": 40, "batch_size": 8,
                                              "early_stopping": None},
               "validation": {"samples": 2, "sigmas": [0.5]}}


def _kill_worker_of(jobs_dir: Path, job_id: str, attempt: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = JobStore(jobs_dir).get(job_id)
        if job["state"] == "running" and job["attempts"] == attempt and job.get("step", 0) > 0:
            os.kill(int(job["worker"].rpartition("/")[2]), signal.SIGKILL)
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never ran attempt {attempt}: {job}")


def test_a_killed_worker_process_is_retried_then_given_up(tmp_path):
    model, data, settings, token = _fresh(tmp_path, 13, "gil")
    with celery_workers(settings, ACONNECT_MAX_ATTEMPTS="2", ACONNECT_MC_CHUNK_CHIPS="0"):
        with TestClient(create_app(settings)) as client:
            once = submit(client, token, model, data, MEDIUM_SPEC).json()
            _kill_worker_of(settings.jobs_dir, once["id"], attempt=1)
            done = wait_for(client, token, once["id"], ("succeeded", "failed"), timeout=240)
            assert done["state"] == "succeeded", done["error"]
            stored = JobStore(settings.jobs_dir).get(once["id"])
            assert stored["attempts"] == 2

            twice = submit(client, token, model, data, MEDIUM_SPEC).json()
            _kill_worker_of(settings.jobs_dir, twice["id"], attempt=1)
            _kill_worker_of(settings.jobs_dir, twice["id"], attempt=2)
            failed = wait_for(client, token, twice["id"], ("succeeded", "failed"), timeout=120)
            assert failed["state"] == "failed"
            assert "stopped 2 times" in failed["error"]
            assert client.get(f"/v1/jobs/{twice['id']}/artifacts",
                              headers={"Authorization": f"Bearer {token}"}).status_code == 409


def test_a_redis_restart_with_jobs_queued_and_running_loses_none(tmp_path):
    """Stop Redis with one job running and two queued: the API answers 503 to new jobs and
    still serves status; Redis comes back empty; the API's sweep sends the lost jobs again and
    every job ends succeeded."""
    if shutil.which("redis-server") is None:
        pytest.fail("this test starts its own redis-server: apt-get install redis-server")
    port = 16400 + os.getpid() % 1000
    broker = f"redis://127.0.0.1:{port}/0"
    model, data = make_job_files(tmp_path)
    settings = Settings(data_dir=tmp_path / "data", broker_url=broker, requeue_after_s=1,
                        requeue_interval_s=0.5)
    token = TokenStore(settings.tokens_file).create("jo")
    server = _redis(port)
    try:
        with celery_workers(settings, ACONNECT_MC_CHUNK_CHIPS="0"), \
                TestClient(create_app(settings)) as client:
            ids = [submit(client, token, model, data, spec).json()["id"]
                   for spec in (MEDIUM_SPEC, QUICK_SPEC, QUICK_SPEC)]
            wait_for(client, token, ids[0], ("running",), timeout=120)
            server.terminate()
            server.wait(10)
            refused = submit(client, token, model, data)
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
            assert client.get(f"/v1/jobs/{ids[1]}", headers={
                "Authorization": f"Bearer {token}"}).json()["state"] == "queued"
            server = _redis(port)  # empty: the queued messages are gone
            for job_id in ids:
                done = wait_for(client, token, job_id, ("succeeded", "failed"), timeout=300)
                assert done["state"] == "succeeded", done["error"]
    finally:
        server.terminate()
        server.wait(10)


def _serve(settings: Settings, port: int, home: Path) -> subprocess.Popen:
    """``aconnect serve`` as its own process, Celery mode, on ``port``."""
    env = {**os.environ, "ACONNECT_BROKER_URL": settings.broker_url, "ACONNECT_PORT": str(port),
           "ACONNECT_DATA_DIR": str(settings.data_dir), "ACONNECT_HOME": str(home)}
    return subprocess.Popen([str(Path(sys.executable).with_name("aconnect")), "serve"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _healthy(http) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if http.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the API did not come up")


def test_an_api_killed_mid_work_and_restarted_loses_nothing(tmp_path):
    """SIGKILL the API process with jobs queued and running; workers go on; after a restart
    every job is listed, ends succeeded, and its artifacts download."""
    import httpx

    model, data, settings, token = _fresh(tmp_path, 11, "kim")
    headers = {"Authorization": f"Bearer {token}"}
    port = 18000 + os.getpid() % 1000
    with celery_workers(settings, ACONNECT_MC_CHUNK_CHIPS="0"), \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        api = _serve(settings, port, tmp_path / "home")
        try:
            _healthy(http)
            ids = [submit(http, token, model, data, spec).json()["id"]
                   for spec in (MEDIUM_SPEC, QUICK_SPEC, QUICK_SPEC)]
            wait_for(http, token, ids[0], ("running",), timeout=120)
            api.kill()
            api.wait(10)
            api = _serve(settings, port, tmp_path / "home")
            _healthy(http)
            listed = http.get("/v1/jobs", headers=headers).json()
            assert sorted(j["id"] for j in listed["jobs"]) == sorted(ids)
            for job_id in ids:
                done = wait_for(http, token, job_id, ("succeeded", "failed"), timeout=240)
                assert done["state"] == "succeeded", done["error"]
                blob = http.get(f"/v1/jobs/{job_id}/artifacts/hardened.keras", headers=headers)
                assert blob.status_code == 200 and blob.content[:2] == b"PK"
        finally:
            api.kill()
            api.wait(10)


def test_a_celery_job_past_its_time_limit_fails_with_the_reason(tmp_path):
    model, data, settings, token = _fresh(tmp_path, 10, "tia")
    with celery_workers(settings, ACONNECT_JOB_TIME_LIMIT_S="3", ACONNECT_MC_CHUNK_CHIPS="0"), \
            TestClient(create_app(settings)) as client:
        job = submit(client, token, model, data, SLOW_SPEC).json()
        failed = wait_for(client, token, job["id"], ("succeeded", "failed"), timeout=120)
        assert failed["state"] == "failed"
        assert "longer than this server's time limit of 3 s" in failed["error"]
