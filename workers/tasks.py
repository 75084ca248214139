"""Running one job: load it from the store, run the pipeline, record progress and the result.

Thin by design: the work is ``aconnect.pipeline.run_job``; this module only moves a job through
its states and translates exceptions into reasons a user can act on.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import asdict
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded

from app.settings import Settings
from app.store import JobStore, timed_out, worker_id

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.5


class _ProgressWriter:
    """Writes progress to the store at stage changes and at most every half second."""

    def __init__(self, store: JobStore, job_id: str):
        self.store, self.job_id = store, job_id
        self.stage, self.stage_started, self.last = None, 0.0, 0.0
        self.durations: dict[str, float] = {}  # seconds per finished stage, for /metrics

    def _close_stage(self) -> None:
        if self.stage is not None:
            self.durations[self.stage] = time.time() - self.stage_started

    def __call__(self, report) -> None:
        now = time.monotonic()
        new_stage = report.stage != self.stage
        if new_stage:
            self._close_stage()
            self.stage, self.stage_started = report.stage, time.time()
        if new_stage or now - self.last >= PROGRESS_INTERVAL_S or report.step == report.total:
            self.store.update(self.job_id, stage=report.stage, step=report.step,
                              total=report.total, stage_started=self.stage_started,
                              stage_seconds=self.durations, heartbeat=time.time())
            self.last = now

    def finish(self) -> dict[str, float]:
        self._close_stage()
        return self.durations


def _fail_reason(err: BaseException, settings: Settings, folder: Path) -> str:
    """What a user reads when a job fails: our own errors as they are (without the server's
    paths: ``folder`` is the job's), the server's limits and a full disk named as such,
    anything else as an internal error (logged here)."""
    from aconnect.data import DataError
    from aconnect.pipeline import ModelError
    from aconnect.spec import SpecError

    if isinstance(err, (SpecError, DataError, ModelError)):
        return str(err).replace(f"{folder}/inputs/", "").replace(f"{folder}/", "")
    if isinstance(err, SoftTimeLimitExceeded):
        return timed_out(settings.job_time_limit_s)
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return ("the server ran out of disk space while running the job; its partial results "
                "were removed. Resubmit later, or ask the operator to free space")
    log.error("job failed", exc_info=err)
    return (f"internal error while running the job ({type(err).__name__}: {err}); the service "
            "log has the details")


def _publish(store: JobStore, job_id: str, partial: Path) -> list[str]:
    """Move complete results into place in one rename; return their names."""
    partial.rename(store.outputs(job_id))
    return sorted(p.name for p in store.outputs(job_id).iterdir() if not p.name.startswith("."))


def _claim(store: JobStore, job_id: str, settings: Settings):
    return store.claim(job_id, worker_id(), settings.max_attempts, settings.heartbeat_timeout_s,
                       settings.job_time_limit_s)


class _Stop:
    """``should_cancel`` for the pipeline: the user canceled, or the run passed its time limit
    (checked between batches and chip passes: the soft limit)."""

    def __init__(self, store: JobStore, job: dict, settings: Settings):
        self.store, self.job_id = store, job["id"]
        self.deadline = job["started"] + settings.job_time_limit_s
        self.limit = settings.job_time_limit_s

    def __call__(self) -> bool:
        return self.store.cancel_requested(self.job_id) or self.past_deadline()

    def past_deadline(self) -> bool:
        return time.time() > self.deadline

    def outcome(self) -> dict:
        """The final state after the pipeline stopped early."""
        if self.store.cancel_requested(self.job_id):
            return {"state": "canceled"}
        return {"state": "failed", "error": timed_out(self.limit)}


def execute(store: JobStore, job_id: str, settings: Settings) -> str:
    """Run queued job ``job_id`` to a final state; return that state."""
    from aconnect.harden import Cancelled  # TensorFlow loads here, in the worker process
    from aconnect.pipeline import run_job

    job, claimed = _claim(store, job_id, settings)
    if not claimed:
        return job["state"]
    inputs, partial = store.inputs(job_id), store.job_dir(job_id) / "outputs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    writer, stop = _ProgressWriter(store, job_id), _Stop(store, job, settings)
    try:
        run_job(inputs / "model.keras", inputs / "data.npz", job["spec"], partial,
                progress=writer, should_cancel=stop, load_limits=settings.load_limits)
        outcome = {"state": "succeeded", "artifacts": _publish(store, job_id, partial)}
    except Cancelled:
        outcome = stop.outcome()
    except Exception as err:  # the job fails; the worker stays up for the next one
        outcome = {"state": "failed",
                   "error": _fail_reason(err, settings, store.job_dir(job_id))}
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # frees the space first if the disk is full
    store.update(job_id, finished=time.time(), stage_seconds=writer.finish(), **outcome)
    return outcome["state"]


# -- fanned out over Celery: prepare, many Monte Carlo chunks, finish --------------------------

def _work(store: JobStore, job_id: str) -> Path:
    return store.job_dir(job_id) / "work"


def begin(store: JobStore, job_id: str, chunk: int,
          settings: Settings) -> list[tuple] | None:
    """Claim the job, load and harden it; return the Monte Carlo chunks, or ``None`` when the
    job already ended (canceled, failed, taken by another worker)."""
    from aconnect.harden import Cancelled
    from aconnect.pipeline import chip_chunks, prepare
    from aconnect.spec import parse_spec

    job, claimed = _claim(store, job_id, settings)
    if not claimed:
        return None
    spec, work, inputs = parse_spec(job["spec"]), _work(store, job_id), store.inputs(job_id)
    shutil.rmtree(work, ignore_errors=True)  # a rerun after a crash starts clean
    writer, stop = _ProgressWriter(store, job_id), _Stop(store, job, settings)
    try:
        prepared, _, _ = prepare(inputs / "model.keras", inputs / "data.npz", spec, work,
                                 progress=writer, should_cancel=stop,
                                 load_limits=settings.load_limits)
        (work / "chips").mkdir(parents=True, exist_ok=True)
        (work / "prepared.json").write_text(json.dumps(asdict(prepared)))
    except Cancelled:
        shutil.rmtree(work, ignore_errors=True)
        store.update(job_id, finished=time.time(), **stop.outcome())
        return None
    except Exception as err:
        shutil.rmtree(work, ignore_errors=True)
        store.update(job_id, state="failed", finished=time.time(),
                     error=_fail_reason(err, settings, store.job_dir(job_id)))
        return None
    chunks = chip_chunks(spec, prepared.models, chunk)
    store.update(job_id, stage="Monte Carlo", step=0,
                 total=len(spec.validation.sigmas) * spec.validation.samples * len(
                     prepared.models), stage_started=time.time(), stage_seconds=writer.finish())
    return chunks


def run_chunk(store: JobStore, job_id: str, role: str, sigma: float, first: int,
              chips: int, settings: Settings) -> None:
    """Evaluate one chunk of chips; its per-chip metrics go to a file in the job's work folder."""
    import keras

    from aconnect.data import load_npz
    from aconnect.pipeline import Prepared, evaluate_chips
    from aconnect.spec import parse_spec

    job = store.get(job_id)
    if job["state"] != "running" or store.cancel_requested(job_id):
        return
    if _Stop(store, job, settings).past_deadline():
        store.transition(job_id, ("running",), state="failed", finished=time.time(),
                         error=timed_out(settings.job_time_limit_s))
        return
    work = _work(store, job_id)
    prepared = Prepared(**json.loads((work / "prepared.json").read_text()))
    try:
        spec = parse_spec(job["spec"])
        model = keras.models.load_model(prepared.models[role], compile=False, safe_mode=True)
        data = load_npz(store.inputs(job_id) / "data.npz", need_train=False)
        metrics = evaluate_chips(model, data, spec, prepared.classes, sigma, first, chips)
        target = work / "chips" / f"{role}-{sigma!r}-{first}.json"
        target.write_text(json.dumps({"role": role, "sigma": sigma, "first": first,
                                      "worker": socket.gethostname() + f"/{os.getpid()}",
                                      "metrics": metrics}))
    except Exception as err:
        store.transition(job_id, ("running",), state="failed",
                         error=_fail_reason(err, settings, store.job_dir(job_id)),
                         finished=time.time())
        raise
    store.add_progress(job_id, chips)


def complete(store: JobStore, job_id: str, settings: Settings) -> str:
    """Merge the chunks in chip order, write report and models, and end the job."""
    from aconnect.pipeline import Prepared, finish
    from aconnect.spec import parse_spec

    job = store.get(job_id)
    if job["state"] != "running":
        return job["state"]
    if store.cancel_requested(job_id):
        store.update(job_id, state="canceled", finished=time.time())
        return "canceled"
    work, partial = _work(store, job_id), store.job_dir(job_id) / "outputs.partial"
    prepared = Prepared(**json.loads((work / "prepared.json").read_text()))
    per_chip: dict = {}
    pieces = [json.loads(p.read_text()) for p in (work / "chips").glob("*.json")]
    for piece in sorted(pieces, key=lambda p: (p["role"], p["sigma"], p["first"])):
        merged = per_chip.setdefault(piece["role"], {}).setdefault(piece["sigma"], {})
        for name, values in piece["metrics"].items():
            merged.setdefault(name, []).extend(values)
    try:
        finish(prepared, parse_spec(job["spec"]), per_chip, partial)
        artifacts = _publish(store, job_id, partial)
    except Exception as err:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        store.update(job_id, state="failed", finished=time.time(),
                     error=_fail_reason(err, settings, store.job_dir(job_id)))
        return "failed"
    shutil.rmtree(work, ignore_errors=True)  # chunk files and the hardened copy are merged
    stages = {**job.get("stage_seconds", {}), "Monte Carlo": time.time() - job["stage_started"]}
    store.update(job_id, state="succeeded", artifacts=artifacts, finished=time.time(),
                 workers=sorted({p["worker"] for p in pieces}), stage_seconds=stages)
    return "succeeded"
