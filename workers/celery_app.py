"""The Celery application: Redis broker, one task that runs a job by id.

Settings suit long TensorFlow jobs: a task is acknowledged only when it finished (a worker that
dies mid-job leaves it to be redelivered), each worker process takes one task at a time, the
broker's visibility timeout outlasts the longest allowed job, and worker children are recycled.
"""

from __future__ import annotations

from celery import Celery

from app.settings import Settings

settings = Settings()
celery_app = Celery("aconnect", broker=settings.broker_url or "redis://127.0.0.1:6379/0")
celery_app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={"visibility_timeout": settings.job_time_limit_s + 3600},
    task_soft_time_limit=settings.job_time_limit_s,
    task_time_limit=settings.job_time_limit_s + 300,
    worker_max_tasks_per_child=20,
    worker_max_memory_per_child=6_000_000,  # KiB
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
)


@celery_app.task(name="aconnect.run_job")
def run_job(job_id: str) -> str:
    from app.store import JobStore
    from workers.tasks import execute  # TensorFlow is imported inside the worker child

    return execute(JobStore(Settings().jobs_dir), job_id)


def broker_reachable(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False
