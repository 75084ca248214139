"""Workers: run jobs from the job store, embedded (one local process) or as Celery tasks."""
