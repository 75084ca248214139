"""Prometheus metrics: jobs by state, queue depth, stage durations and free storage (read at
scrape time), request latencies per route."""

from __future__ import annotations

import shutil
import time

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from starlette.middleware.base import BaseHTTPMiddleware

from app.store import STATES, JobStore


class _JobCollector:
    def __init__(self, store: JobStore):
        self.store = store

    def collect(self):
        counts = dict.fromkeys(STATES, 0)
        stages: dict[str, list[float]] = {}
        for job in self.store.list():
            counts[job["state"]] = counts.get(job["state"], 0) + 1
            for stage, seconds in (job.get("stage_seconds") or {}).items():
                stages.setdefault(stage, []).append(seconds)
        jobs = GaugeMetricFamily("aconnect_jobs", "jobs by state", labels=["state"])
        for state, count in counts.items():
            jobs.add_metric([state], count)
        yield jobs
        yield GaugeMetricFamily("aconnect_queue_depth", "jobs waiting for a worker",
                                value=counts["queued"])
        durations = SummaryMetricFamily("aconnect_stage_duration_seconds",
                                        "time spent per pipeline stage", labels=["stage"])
        for stage, values in sorted(stages.items()):
            durations.add_metric([stage], count_value=len(values), sum_value=sum(values))
        yield durations
        disk = shutil.disk_usage(self.store.root)  # jobs fail when this reaches zero: alert
        yield GaugeMetricFamily("aconnect_storage_free_bytes",
                                "free space where jobs and uploads are stored", value=disk.free)


class Metrics:
    def __init__(self, store: JobStore):
        self.registry = CollectorRegistry()
        self.registry.register(_JobCollector(store))
        self.latency = Histogram("aconnect_request_seconds", "HTTP request latency",
                                 ["method", "route", "status"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def middleware(self):
        metrics = self

        class Timing(BaseHTTPMiddleware):
            async def dispatch(self, request, call_next):
                start = time.perf_counter()
                response = await call_next(request)
                route = request.scope.get("route")
                metrics.latency.labels(request.method, getattr(route, "path", "unmatched"),
                                       str(response.status_code)).observe(
                    time.perf_counter() - start)
                return response

        return Timing
