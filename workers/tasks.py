"""Running one job: load it from the store, run the pipeline, record progress and the result.

Thin by design: the work is ``aconnect.pipeline.run_job``; this module only moves a job through
its states and translates exceptions into reasons a user can act on.
"""

from __future__ import annotations

import logging
import shutil
import time

from app.store import JobStore

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.5


class _ProgressWriter:
    """Writes progress to the store at stage changes and at most every half second."""

    def __init__(self, store: JobStore, job_id: str):
        self.store, self.job_id = store, job_id
        self.stage, self.stage_started, self.last = None, 0.0, 0.0

    def __call__(self, report) -> None:
        now = time.monotonic()
        new_stage = report.stage != self.stage
        if new_stage:
            self.stage, self.stage_started = report.stage, time.time()
        if new_stage or now - self.last >= PROGRESS_INTERVAL_S or report.step == report.total:
            self.store.update(self.job_id, stage=report.stage, step=report.step,
                              total=report.total, stage_started=self.stage_started)
            self.last = now


def execute(store: JobStore, job_id: str) -> str:
    """Run queued job ``job_id`` to a final state; return that state."""
    from aconnect.data import DataError  # TensorFlow loads here, in the worker process
    from aconnect.harden import Cancelled
    from aconnect.pipeline import ModelError, run_job
    from aconnect.spec import SpecError

    job, claimed = store.transition(job_id, ("queued",), state="running", started=time.time())
    if not claimed:
        return job["state"]
    store.update(job_id, attempts=job["attempts"] + 1)
    inputs, partial = store.inputs(job_id), store.job_dir(job_id) / "outputs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    outcome: dict = {}
    try:
        run_job(inputs / "model.keras", inputs / "data.npz", job["spec"], partial,
                progress=_ProgressWriter(store, job_id),
                should_cancel=lambda: store.cancel_requested(job_id))
        partial.rename(store.outputs(job_id))
        outcome = {"state": "succeeded", "artifacts": sorted(
            p.name for p in store.outputs(job_id).iterdir() if not p.name.startswith("."))}
    except Cancelled:
        outcome = {"state": "canceled"}
    except (SpecError, DataError, ModelError) as err:
        outcome = {"state": "failed", "error": str(err)}
    except Exception as err:  # the job fails; the worker stays up for the next one
        log.exception("job %s failed", job_id)
        outcome = {"state": "failed",
                   "error": f"internal error while running the job ({type(err).__name__}: "
                            f"{err}); the service log has the details"}
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    store.update(job_id, finished=time.time(), **outcome)
    return outcome["state"]
