"""Service configuration, from ``ACONNECT_*`` environment variables (defaults work locally)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from aconnect.isolated_load import LoadLimits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACONNECT_")

    data_dir: Path = Field(Path("aconnect-data"), description="jobs, uploads and tokens")
    broker_url: str | None = Field(None, description="redis://... switches to Celery workers")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_model_bytes: int = Field(200 * 2**20, ge=1)
    max_data_bytes: int = Field(1024 * 2**20, ge=1)
    max_spec_bytes: int = Field(64 * 2**10, ge=1)
    embedded_workers: int = Field(1, ge=1, le=64, description="local worker processes")
    job_time_limit_s: float = Field(6 * 3600, gt=0, description="per run of a job: past it the "
                                  "job stops at its next batch or chip pass and fails")
    job_kill_after_s: float = Field(300, gt=0, description="a job still running this long after "
                                  "its time limit has its worker process killed")
    load_memory_mb: int = Field(4096, ge=512, description="address space for loading an "
                                "uploaded model (in a child process)")
    load_cpu_s: int = Field(120, ge=1, description="CPU seconds for loading an uploaded model")
    load_timeout_s: float = Field(180, gt=0, description="wall-clock limit for that load")
    max_active_jobs: int = Field(4, ge=1, description="queued + running jobs per owner")
    max_samples: int = Field(20_000, ge=1, description="cap on validation.samples")
    max_epochs: int = Field(500, ge=1, description="cap on training.epochs")
    max_attempts: int = Field(3, ge=1, description="runs of a job whose worker died")
    heartbeat_timeout_s: int = Field(600, ge=10, description="silence before a running job "
                                                            "counts as abandoned")
    requeue_after_s: float = Field(120, gt=0, description="Celery: resend a job still queued "
                                                          "(or abandoned) after this long")
    requeue_interval_s: float = Field(30, gt=0, description="how often the API checks")
    mc_chunk_chips: int = Field(250, ge=0, description="Celery: chips per Monte Carlo task "
                                                       "(0: one task runs the whole job)")

    @property
    def load_limits(self) -> "LoadLimits":
        from aconnect.isolated_load import LoadLimits

        return LoadLimits(self.load_memory_mb, self.load_cpu_s, self.load_timeout_s)

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def tokens_file(self) -> Path:
        return self.data_dir / "tokens.json"
