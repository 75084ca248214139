"""Embedded service under faults: time limits (soft, then hard), a full disk, an API restart."""

import errno
import os
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.auth import TokenStore
from app.main import create_app
from app.settings import Settings
from app.store import JobStore
from service_helpers import QUICK_SPEC, SLOW_SPEC, alive, make_job_files, submit, wait_for


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_job_files(tmp_path_factory.mktemp("faults"))


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


def _record(settings: Settings, job_id: str) -> dict:
    return JobStore(settings.jobs_dir).get(job_id)


def _alive(worker: str) -> bool:
    return alive(int(worker.rpartition("/")[2]))


def test_a_job_past_its_time_limit_fails_and_its_worker_goes_on(tmp_path, files):
    """The soft limit: the job itself stops at its next batch; the worker survives."""
    settings = Settings(data_dir=tmp_path / "data", job_time_limit_s=2, job_kill_after_s=600)
    token = TokenStore(settings.tokens_file).create("tim")
    with TestClient(create_app(settings)) as client:
        first = submit(client, token, *files, SLOW_SPEC).json()
        failed = wait_for(client, token, first["id"], ("failed", "succeeded", "canceled"))
        assert failed["state"] == "failed"
        assert "longer than this server's time limit of 2 s" in failed["error"]
        assert "ACONNECT_JOB_TIME_LIMIT_S" in failed["error"]
        worker = _record(settings, first["id"])["worker"]
        assert _alive(worker)
        second = submit(client, token, *files, SLOW_SPEC).json()
        wait_for(client, token, second["id"], ("failed", "succeeded"))
        assert _record(settings, second["id"])["worker"] == worker  # the same process
        assert not (settings.jobs_dir / first["id"] / "outputs.partial").exists()


def test_a_job_that_overruns_has_its_worker_killed_and_replaced(tmp_path, files):
    """The hard limit: loading a model (seconds, no batch boundary to stop at) outlasts a
    0.5 s limit plus 0.5 s grace, so the supervisor kills the worker and starts another."""
    settings = Settings(data_dir=tmp_path / "data", job_time_limit_s=0.5, job_kill_after_s=0.5)
    token = TokenStore(settings.tokens_file).create("tim")
    with TestClient(create_app(settings)) as client:
        first = submit(client, token, *files, SLOW_SPEC).json()
        failed = wait_for(client, token, first["id"], ("failed", "succeeded", "canceled"))
        assert failed["state"] == "failed" and "time limit of 0.5 s" in failed["error"]
        killed = _record(settings, first["id"])["worker"]
        assert not _alive(killed)
        second = submit(client, token, *files, QUICK_SPEC).json()
        wait_for(client, token, second["id"], ("failed", "succeeded"))
        replacement = _record(settings, second["id"])["worker"]
        assert replacement != killed  # a new worker process took the next job


def test_api_restart_keeps_every_job_state_and_artifact(tmp_path, files):
    settings = Settings(data_dir=tmp_path / "data")
    token = TokenStore(settings.tokens_file).create("ray")
    slow = {**SLOW_SPEC, "training": {**SLOW_SPEC["training"], "epochs": 25}}
    with TestClient(create_app(settings)) as client:
        done = submit(client, token, *files).json()
        wait_for(client, token, done["id"], ("succeeded",))
        report = client.get(f"/v1/jobs/{done['id']}/report", headers=_auth(token)).json()
        running = submit(client, token, *files, slow).json()
        queued = submit(client, token, *files).json()
        wait_for(client, token, running["id"], ("running",))
        before = client.get("/v1/jobs", headers=_auth(token)).json()
    # The API stopped with one job running (its worker was stopped too) and one queued.
    with TestClient(create_app(settings)) as client:
        after = client.get("/v1/jobs", headers=_auth(token)).json()
        assert [j["id"] for j in after["jobs"]] == [j["id"] for j in before["jobs"]]
        assert client.get(f"/v1/jobs/{done['id']}/report", headers=_auth(token)).json() == report
        for job in (running, queued):
            finished = wait_for(client, token, job["id"], ("succeeded", "failed"), timeout=300)
            assert finished["state"] == "succeeded", finished["error"]
        names = [a["name"] for a in client.get(f"/v1/jobs/{done['id']}/artifacts",
                                               headers=_auth(token)).json()]
        assert "hardened.keras" in names and "report.html" in names


def test_a_model_whose_load_breaks_the_memory_limit_fails_and_the_worker_survives(tmp_path,
                                                                                files):
    """Allow-listed, tiny on disk, a 5 GB kernel once built: it passes intake (202), its trial
    load in the limited child fails, and the same worker runs the next job."""
    from test_isolated_load import _with_units

    settings = Settings(data_dir=tmp_path / "data", load_memory_mb=2500)
    token = TokenStore(settings.tokens_file).create("max")
    huge = _with_units(files[0], tmp_path / "huge.keras", 20_000_000)
    with TestClient(create_app(settings)) as client:
        job = submit(client, token, huge, files[1]).json()
        failed = wait_for(client, token, job["id"], ("failed", "succeeded"))
        assert failed["state"] == "failed"
        assert failed["error"] == ("model.keras: loading the model needs more than 2500 MiB of "
                                   "memory (limit); check the layer sizes in its config")
        worker = _record(settings, job["id"])["worker"]
        again = submit(client, token, *files).json()
        done = wait_for(client, token, again["id"], ("failed", "succeeded"))
        assert done["state"] == "succeeded", done["error"]
        assert _record(settings, again["id"])["worker"] == worker


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MiB tmpfs: a real file system that fills up (needs root, as in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` up to ``leave`` free bytes."""
    stats = os.statvfs(folder)
    filler = folder / "filler"
    with open(filler, "wb") as out:
        try:
            out.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
        except OSError as err:
            assert err.errno == errno.ENOSPC
    return filler


def test_a_full_disk_fails_the_job_with_a_message_and_the_api_stays_up(small_disk, files):
    settings = Settings(data_dir=small_disk / "data")
    token = TokenStore(settings.tokens_file).create("dee")
    with TestClient(create_app(settings)) as client:
        filler = _fill(small_disk, 0)
        refused = submit(client, token, *files)
        assert refused.status_code == 507, refused.text
        assert "out of disk space" in refused.json()["detail"]
        assert [p.name for p in settings.jobs_dir.iterdir()] == []  # nothing half-written
        filler.unlink()

        job = submit(client, token, *files, {**QUICK_SPEC, "training": {
            **QUICK_SPEC["training"], "epochs": 40}}).json()
        wait_for(client, token, job["id"], ("running",))
        filler = _fill(small_disk, 48 * 1024)  # progress fits; the report and models do not
        failed = wait_for(client, token, job["id"], ("failed", "succeeded"))
        assert failed["state"] == "failed" and "ran out of disk space" in failed["error"]
        assert sorted(p.name for p in (settings.jobs_dir / job["id"]).iterdir()
                      if not p.name.startswith(".")) == ["inputs", "job.json"]
        assert client.get("/healthz").status_code == 200
        free = [line for line in client.get("/metrics").text.splitlines()
                if line.startswith("aconnect_storage_free_bytes ")]
        assert free and float(free[0].split()[1]) < 6 * 2**20
        assert client.get(f"/v1/jobs/{job['id']}/artifacts",
                          headers=_auth(token)).status_code == 409

        filler.unlink()  # space again: the same service runs the next job
        again = submit(client, token, *files).json()
        assert wait_for(client, token, again["id"], ("succeeded", "failed"))["state"] == \
            "succeeded"
