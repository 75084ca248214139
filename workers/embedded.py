"""The embedded worker: local processes that run queued jobs one at a time, no broker needed.

The job store is the queue: a worker takes the oldest queued job, so jobs submitted while the
workers were down are picked up when they start, and so are jobs whose worker died mid-run.
A supervisor thread in the serving process restarts a worker that died and kills one whose job
ran past its time limit plus ``job_kill_after_s`` (the hard limit; the soft one is checked by
the job itself between batches), so one stuck job never holds a worker forever.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time

from app.settings import Settings
from app.store import JobStore, timed_out

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 0.3
SUPERVISE_INTERVAL_S = 1.0


def worker_loop(settings: Settings, stop) -> None:
    from workers.tasks import execute

    store = JobStore(settings.jobs_dir)
    while not stop.is_set():
        try:
            job_id = store.next_runnable(settings.heartbeat_timeout_s)
            if job_id is None:
                stop.wait(POLL_INTERVAL_S)
                continue
            execute(store, job_id, settings)
        except Exception:  # e.g. a full disk while recording a state: wait, then go on
            log.exception("embedded worker: could not run or record a job")
            stop.wait(5 * POLL_INTERVAL_S)


class EmbeddedWorkers:
    """Start, supervise and stop ``settings.embedded_workers`` local worker processes
    (spawned: TensorFlow is not fork-safe)."""

    def __init__(self, settings: Settings):
        self.settings, self.store = settings, JobStore(settings.jobs_dir)
        self.context = multiprocessing.get_context("spawn")
        self.stop = self.context.Event()
        self.processes = [self._spawn(i) for i in range(settings.embedded_workers)]
        self.supervisor = threading.Thread(target=self._supervise, name="aconnect-supervisor",
                                           daemon=True)

    def _spawn(self, index: int):
        return self.context.Process(target=worker_loop, args=(self.settings, self.stop),
                                    name=f"aconnect-worker-{index}", daemon=True)

    def start(self) -> None:
        for process in self.processes:
            process.start()
        self.supervisor.start()

    def _supervise(self) -> None:
        while not self.stop.wait(SUPERVISE_INTERVAL_S):
            try:
                self._check()
            except Exception:  # the supervisor must outlive a bad moment (disk full, ...)
                log.exception("embedded worker supervisor")

    def _check(self) -> None:
        """Kill workers whose job passed the hard limit; restart workers that are gone."""
        hard_limit = self.settings.job_time_limit_s + self.settings.job_kill_after_s
        by_pid = {f"{socket.gethostname()}/{p.pid}": p for p in self.processes}
        for job in self.store.list():
            process = by_pid.get(job.get("worker") or "")
            if (job["state"] == "running" and process is not None and process.is_alive()
                    and time.time() - job["started"] > hard_limit):
                log.warning("job %s passed the hard time limit; killing worker %s",
                            job["id"], process.pid)
                os.kill(process.pid, signal.SIGKILL)
                process.join(5)
                self.store.transition(job["id"], ("running",), state="failed",
                                      finished=time.time(),
                                      error=timed_out(self.settings.job_time_limit_s))
        for index, process in enumerate(self.processes):
            if not process.is_alive() and not self.stop.is_set():
                log.warning("embedded worker %s exited (%s); starting another", process.pid,
                            process.exitcode)
                self.processes[index] = self._spawn(index)
                self.processes[index].start()

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        if self.supervisor.is_alive():
            self.supervisor.join(timeout)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
