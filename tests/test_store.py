"""The job store's rules for taking, retrying and timing out jobs, and for unfinished uploads."""

import os
import socket
import subprocess
import time

import pytest

from app.store import JobStore, timed_out


@pytest.fixture
def store(tmp_path):
    return JobStore(tmp_path / "jobs")


def _job(store: JobStore) -> str:
    job_id = store.reserve()
    store.create(job_id, "ann", "harden", {"kind": "harden"})
    return job_id


def _dead_worker() -> str:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return f"{socket.gethostname()}/{gone.pid}"


def test_a_queued_job_is_claimed_once(store):
    job_id = _job(store)
    job, claimed = store.claim(job_id, "w/1", max_attempts=3, stale_after=60, time_limit=60)
    assert claimed and job["state"] == "running" and job["attempts"] == 1
    assert store.claim(job_id, "w/2", 3, 60, 60) == (store.get(job_id), False)


def test_a_job_whose_worker_died_is_taken_again_then_given_up(store):
    job_id = _job(store)
    store.update(job_id, state="running", attempts=1, worker=_dead_worker(),
                 started=time.time(), heartbeat=time.time())
    job, claimed = store.claim(job_id, "w/2", max_attempts=2, stale_after=60, time_limit=60)
    assert claimed and job["attempts"] == 2
    store.update(job_id, worker=_dead_worker())
    job, claimed = store.claim(job_id, "w/3", max_attempts=2, stale_after=60, time_limit=60)
    assert not claimed and job["state"] == "failed" and "stopped 2 times" in job["error"]


def test_a_job_killed_past_its_time_limit_fails_instead_of_running_again(store):
    job_id = _job(store)
    store.update(job_id, state="running", attempts=1, worker=_dead_worker(),
                 started=time.time() - 100, heartbeat=time.time())
    job, claimed = store.claim(job_id, "w/2", max_attempts=3, stale_after=60, time_limit=50)
    assert not claimed and job["state"] == "failed" and job["error"] == timed_out(50)


def test_a_reserved_folder_is_no_job_and_is_swept_once_stale(store):
    fresh, stale = store.reserve(), store.reserve()
    (store.inputs(stale) / "model.keras").write_bytes(b"PK")
    old = time.time() - 7200
    for path in (store.job_dir(stale), store.inputs(stale), store.inputs(stale) / "model.keras"):
        os.utime(path, (old, old))
    done = _job(store)
    assert [j["id"] for j in store.list()] == [done]
    assert store.sweep_incomplete(3600) == [stale]
    assert store.job_dir(fresh).is_dir() and not store.job_dir(stale).exists()
    assert store.job_dir(done).is_dir()
