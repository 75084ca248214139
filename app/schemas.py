"""Response bodies of the API (requests are multipart uploads and the job spec)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

State = Literal["queued", "running", "succeeded", "failed", "canceled"]


class Progress(BaseModel):
    stage: str | None
    step: int
    total: int
    fraction: float
    eta_seconds: float | None


class Artifact(BaseModel):
    name: str
    size: int
    content_type: str
    url: str


class Job(BaseModel):
    id: str
    kind: Literal["harden", "evaluate"]
    state: State
    progress: Progress
    created: float
    started: float | None
    finished: float | None
    attempts: int = Field(description="runs started: more than 1 when a worker died mid-job")
    error: str | None
    links: dict[str, str]


class JobList(BaseModel):
    jobs: list[Job]
    total: int
    limit: int
    offset: int


class Problem(BaseModel):
    detail: Any
