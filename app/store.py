"""The job store: one folder per job under ``data_dir/jobs``, shared by the API and workers.

``job.json`` holds the state and is replaced atomically under a per-job file lock, so readers
never see a half-written state and concurrent updates do not lose each other. Inputs live in
``inputs/``; a worker writes results to ``outputs.partial/`` and renames it to ``outputs/`` only
when the job succeeded, so nothing incomplete is ever listed as an artifact.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from aconnect.files import atomic_write

STATES = ("queued", "running", "succeeded", "failed", "canceled")
FINISHED = ("succeeded", "failed", "canceled")


class JobNotFound(KeyError):
    pass


def _now() -> float:
    return time.time()


class JobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    # -- paths -----------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        if not job_id or not all(c in "0123456789abcdef" for c in job_id):
            raise JobNotFound(job_id)  # ids are hex; anything else never names a folder
        return self.root / job_id

    def inputs(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "inputs"

    def outputs(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "outputs"

    # -- state -----------------------------------------------------------------------------
    @contextmanager
    def _locked(self, job_id: str) -> Iterator[None]:
        path = self.job_dir(job_id)
        if not path.is_dir():
            raise JobNotFound(job_id)
        with open(path / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, job_id: str, job: dict[str, Any]) -> None:
        atomic_write(self.job_dir(job_id) / "job.json", json.dumps(job).encode())

    def reserve(self) -> str:
        """A new job folder with an empty ``inputs/``. It is not a job until ``create`` writes
        its ``job.json``: an API killed mid-upload leaves no half-made job, only a folder that
        ``sweep_incomplete`` removes."""
        job_id = uuid.uuid4().hex
        (self.root / job_id / "inputs").mkdir(parents=True)
        return job_id

    def create(self, job_id: str, owner: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Make reserved folder ``job_id`` (inputs in place) a job in state ``queued``."""
        job = {"id": job_id, "owner": owner, "kind": kind, "state": "queued", "stage": None,
               "step": 0, "total": 0, "created": _now(), "started": None, "finished": None,
               "error": None, "attempts": 0, "spec": spec, "artifacts": []}
        self._write(job_id, job)
        return job

    def sweep_incomplete(self, older_than_s: float) -> list[str]:
        """Remove reserved folders that never became jobs (an upload cut off by a crash)."""
        swept = []
        for folder in self.root.iterdir():
            if not folder.is_dir() or (folder / "job.json").exists():
                continue
            touched = max(p.stat().st_mtime for p in (folder, *folder.rglob("*")))
            if _now() - touched > older_than_s:  # an upload still streaming keeps it fresh
                shutil.rmtree(folder, ignore_errors=True)
                swept.append(folder.name)
        return swept

    def get(self, job_id: str) -> dict[str, Any]:
        try:
            return json.loads((self.job_dir(job_id) / "job.json").read_text())
        except FileNotFoundError:
            raise JobNotFound(job_id) from None

    def update(self, job_id: str, **changes: Any) -> dict[str, Any]:
        with self._locked(job_id):
            job = self.get(job_id)
            job.update(changes)
            self._write(job_id, job)
            return job

    def transition(self, job_id: str, allowed_from: tuple[str, ...], **changes: Any):
        """Apply ``changes`` only if the job's state is in ``allowed_from``; return the job
        and whether it changed."""
        with self._locked(job_id):
            job = self.get(job_id)
            if job["state"] not in allowed_from:
                return job, False
            job.update(changes)
            self._write(job_id, job)
            return job, True

    def claim(self, job_id: str, worker: str, max_attempts: int, stale_after: float,
              time_limit: float):
        """Take a job for ``worker``: a queued one, or a running one whose worker is gone
        (a crash redelivered it). Returns the job and whether this worker should run it. A job
        abandoned ``max_attempts`` times, or whose worker was killed past ``time_limit``, is
        failed with the reason instead of run again."""
        with self._locked(job_id):
            job = self.get(job_id)
            if job["state"] == "running" and abandoned(job, stale_after):
                error = None
                if _now() - (job.get("started") or _now()) > time_limit:
                    error = timed_out(time_limit)
                elif job["attempts"] >= max_attempts:
                    error = (f"the worker running this job stopped {job['attempts']} times "
                             f"(last: {job.get('worker')}); giving up")
                if error:
                    job.update(state="failed", finished=_now(), error=error)
                    self._write(job_id, job)
                    return job, False
            elif job["state"] != "queued":
                return job, False
            job.update(state="running", started=_now(), attempts=job["attempts"] + 1,
                       worker=worker, heartbeat=_now())
            self._write(job_id, job)
            return job, True

    def add_progress(self, job_id: str, steps: int) -> None:
        """Add ``steps`` done (several workers report on one job: add, never overwrite)."""
        with self._locked(job_id):
            job = self.get(job_id)
            job["step"] += steps
            self._write(job_id, job)

    def list(self, owner: str | None = None) -> list[dict[str, Any]]:
        jobs = []
        for folder in self.root.iterdir():
            try:
                job = self.get(folder.name)
            except (JobNotFound, json.JSONDecodeError):
                continue
            if owner is None or job["owner"] == owner:
                jobs.append(job)
        return sorted(jobs, key=lambda j: j["created"], reverse=True)

    def next_runnable(self, stale_after: float) -> str | None:
        """The oldest queued job, or a running one whose worker is gone."""
        ready = [j for j in self.list() if j["state"] == "queued" or (
            j["state"] == "running" and abandoned(j, stale_after))]
        return min(ready, key=lambda j: j["created"])["id"] if ready else None

    # -- cancel and delete -----------------------------------------------------------------
    def request_cancel(self, job_id: str) -> dict[str, Any]:
        (self.job_dir(job_id) / "cancel").touch()
        job, _ = self.transition(job_id, ("queued",), state="canceled", finished=_now())
        return job

    def cancel_requested(self, job_id: str) -> bool:
        return (self.job_dir(job_id) / "cancel").exists()

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)


def timed_out(time_limit: float) -> str:
    """The reason a job that ran past the server's time limit failed."""
    return (f"the job ran longer than this server's time limit of {time_limit:g} s "
            "(ACONNECT_JOB_TIME_LIMIT_S); lower training.epochs or validation.samples, or ask "
            "the operator for a longer limit")


def worker_id() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


def abandoned(job: dict[str, Any], stale_after: float) -> bool:
    """A running job whose worker process is gone (same host) or silent too long."""
    host, _, pid = (job.get("worker") or "").rpartition("/")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
    return _now() - (job.get("heartbeat") or 0) > stale_after
