"""The embedded worker: a local process that runs queued jobs one at a time, no broker needed.

The job store is the queue: the worker takes the oldest queued job, so jobs submitted while the
worker was down are picked up when it starts, and so are jobs whose worker died mid-run.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

POLL_INTERVAL_S = 0.3


def worker_loop(jobs_dir: str, stop) -> None:
    from app.settings import Settings
    from app.store import JobStore
    from workers.tasks import execute

    store = JobStore(Path(jobs_dir))
    stale_after = Settings().heartbeat_timeout_s
    while not stop.is_set():
        job_id = store.next_runnable(stale_after)
        if job_id is None:
            stop.wait(POLL_INTERVAL_S)
            continue
        execute(store, job_id)


class EmbeddedWorkers:
    """Start and stop ``count`` local worker processes (spawned: TensorFlow is not fork-safe)."""

    def __init__(self, jobs_dir: Path, count: int = 1):
        context = multiprocessing.get_context("spawn")
        self.stop = context.Event()
        self.processes = [context.Process(target=worker_loop, args=(str(jobs_dir), self.stop),
                                          name=f"aconnect-worker-{i}", daemon=True)
                          for i in range(count)]

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
