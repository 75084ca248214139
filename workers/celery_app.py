"""The Celery application: Redis broker, one task that runs a job by id.

Settings suit long TensorFlow jobs: a task is acknowledged only when it finished (a worker that
dies mid-job leaves it to be redelivered), each worker process takes one task at a time, the
broker's visibility timeout outlasts the longest allowed job, and worker children are recycled.
"""

from __future__ import annotations

from celery import Celery, chord
from celery.signals import worker_process_init

from app.settings import Settings

settings = Settings()
_url = settings.broker_url or "redis://127.0.0.1:6379/0"
celery_app = Celery("aconnect", broker=_url, backend=_url)  # the backend joins chunk results
celery_app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={"visibility_timeout": settings.job_time_limit_s +
                              settings.job_kill_after_s + 3600},
    task_soft_time_limit=settings.job_time_limit_s,
    task_time_limit=settings.job_time_limit_s + settings.job_kill_after_s,
    worker_max_tasks_per_child=20,
    worker_max_memory_per_child=6_000_000,  # KiB
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)


@worker_process_init.connect
def _import_tensorflow(**_) -> None:
    """Import TensorFlow once per worker child, before its first task: the import takes
    seconds, and a task's time limits should measure the job, not the import."""
    import workers.tasks  # noqa: F401
    import aconnect  # noqa: F401


def _store():
    from app.store import JobStore

    return JobStore(settings.jobs_dir)


@celery_app.task(name="aconnect.run_job", ignore_result=True)
def run_job(job_id: str) -> None:
    """Run a job; with ``mc_chunk_chips`` set, its Monte Carlo fans out as a chord of chunks."""
    from workers import tasks  # TensorFlow is imported inside the worker child

    chunk = settings.mc_chunk_chips
    if not chunk:
        tasks.execute(_store(), job_id, settings)
        return
    chunks = tasks.begin(_store(), job_id, chunk, settings)
    if chunks:
        chord(run_chunk.si(job_id, *c) for c in chunks)(complete.si(job_id))


@celery_app.task(name="aconnect.run_chunk")
def run_chunk(job_id: str, role: str, sigma: float, first: int, chips: int) -> None:
    from workers import tasks

    tasks.run_chunk(_store(), job_id, role, sigma, first, chips, settings)


@celery_app.task(name="aconnect.complete", ignore_result=True)
def complete(job_id: str) -> None:
    from workers import tasks

    tasks.complete(_store(), job_id, settings)


def broker_reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False
