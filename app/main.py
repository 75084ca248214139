"""``create_app``: the FastAPI application, wired to storage, tokens and a job dispatcher.

With no broker configured, jobs run in embedded local worker processes started with the app;
with ``ACONNECT_BROKER_URL`` set they are sent to Celery workers by id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import Response

from app.auth import TokenStore
from app.limits import BodyLimit
from app.metrics import Metrics
from app.routes import api, health
from app.settings import Settings
from app.store import JobStore, abandoned

log = logging.getLogger(__name__)
INCOMPLETE_UPLOAD_AGE_S = 3600  # an upload folder untouched this long belonged to a dead API


def create_app(settings: Settings | None = None, *, start_workers: bool = True) -> FastAPI:
    settings = settings or Settings()
    store = JobStore(settings.jobs_dir)
    metrics = Metrics(store)
    workers = None

    if settings.broker_url:
        from celery import Celery

        from workers.celery_app import broker_reachable

        sender = Celery("aconnect-api", broker=settings.broker_url)  # sends; runs nothing

        def dispatch(job_id: str) -> None:  # only the id travels; files stay in storage
            sender.send_task("aconnect.run_job", args=[job_id])

        broker_ok = lambda: broker_reachable(settings.broker_url)  # noqa: E731
    else:
        from workers.embedded import EmbeddedWorkers

        workers = EmbeddedWorkers(settings)

        def dispatch(job_id: str) -> None:  # the embedded workers poll the store
            return None

        broker_ok = None

    async def requeue_forever() -> None:
        while True:
            await asyncio.sleep(settings.requeue_interval_s)
            try:
                requeue_lost(store, dispatch, broker_ok, settings)
            except Exception:  # the sweep must outlive a bad moment (broker down, disk full)
                log.exception("requeue sweep failed")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        swept = store.sweep_incomplete(INCOMPLETE_UPLOAD_AGE_S)
        if swept:
            log.warning("removed %d upload folders left by an earlier crash", len(swept))
        if workers is not None and start_workers:
            workers.start()
        sweeper = asyncio.create_task(requeue_forever()) if settings.broker_url else None
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
            if workers is not None and start_workers:
                workers.close()

    app = FastAPI(title="aconnect", version=_version(), lifespan=lifespan,
                  description="Harden Keras models against analog-hardware mismatch.")
    app.state.settings, app.state.store = settings, store
    app.state.tokens = TokenStore(settings.tokens_file)
    app.state.dispatch, app.state.broker_ok = dispatch, broker_ok
    app.add_middleware(metrics.middleware())
    upload_limit = (settings.max_model_bytes + settings.max_data_bytes +
                    settings.max_spec_bytes + 2**16)  # + multipart framing
    app.add_middleware(BodyLimit, limit=upload_limit)
    app.include_router(api)
    app.include_router(health)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def requeue_lost(store: JobStore, dispatch, broker_ok, settings: Settings) -> list[str]:
    """Send again the jobs a broker may have lost: queued too long, or running with a dead
    worker. Duplicates are harmless: a worker claims a job atomically (``JobStore.claim``)."""
    if broker_ok is not None and not broker_ok():
        return []
    now, sent = time.time(), []
    for job in store.list():
        waiting = job["state"] == "queued" and (
            now - (job.get("dispatched") or job["created"]) > settings.requeue_after_s)
        orphaned = job["state"] == "running" and abandoned(job, settings.heartbeat_timeout_s)
        if waiting or orphaned:
            dispatch(job["id"])
            store.update(job["id"], dispatched=now)
            sent.append(job["id"])
    return sent


def _version() -> str:
    from importlib.metadata import version

    return version("aconnect")
