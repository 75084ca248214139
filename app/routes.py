"""The HTTP API, versioned under ``/v1``; health and metrics at the root."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app import schemas
from app.store import FINISHED, STATES, JobNotFound, JobStore

api = APIRouter(prefix="/v1")
health = APIRouter()
_bearer = HTTPBearer(auto_error=False)
CHUNK = 1 << 20
CONTENT_TYPES = {".json": "application/json", ".html": "text/html; charset=utf-8",
                 ".png": "image/png", ".keras": "application/octet-stream"}


def _content_type(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")


def store(request: Request) -> JobStore:
    return request.app.state.store


def owner(request: Request,
          credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    who = credentials and request.app.state.tokens.owner(credentials.credentials)
    if not who:
        raise HTTPException(401, "missing or unknown bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    return who


Owner = Annotated[str, Depends(owner)]
Store = Annotated[JobStore, Depends(store)]


def _job_or_404(jobs: JobStore, job_id: str, who: str) -> dict:
    try:
        job = jobs.get(job_id)
    except JobNotFound:
        job = None
    if job is None or job["owner"] != who:  # another owner's job does not exist for you
        raise HTTPException(404, f"no job {job_id}")
    return job


def _view(request: Request, job: dict) -> schemas.Job:
    step, total = job["step"], job["total"]
    eta = None
    if job["state"] == "running" and 0 < step < total and job.get("stage_started"):
        eta = (time.time() - job["stage_started"]) / step * (total - step)
    base = str(request.url_for("get_job", job_id=job["id"]))
    links = {"self": base, "cancel": f"{base}/cancel", "report": f"{base}/report",
             "artifacts": f"{base}/artifacts"}
    return schemas.Job(
        id=job["id"], kind=job["kind"], state=job["state"],
        progress=schemas.Progress(stage=job["stage"], step=step, total=total,
                                  fraction=1.0 if job["state"] == "succeeded" else (
                                      step / total if total else 0.0), eta_seconds=eta),
        created=job["created"], started=job["started"], finished=job["finished"],
        attempts=job["attempts"], error=job["error"], links=links)


async def _save(upload: UploadFile, path: Path, limit: int, field: str) -> None:
    size = 0
    with open(path, "wb") as out:
        while chunk := await upload.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"{field}: larger than the limit of {limit} bytes")
            out.write(chunk)
    if size == 0:
        raise HTTPException(422, f"{field}: the uploaded file is empty")


@api.post("/jobs", status_code=202, response_model=schemas.Job,
          responses={413: {"model": schemas.Problem}, 422: {"model": schemas.Problem},
                     429: {"model": schemas.Problem}, 503: {"model": schemas.Problem},
                     507: {"model": schemas.Problem}})
async def submit(request: Request, who: Owner, jobs: Store,
                 model: Annotated[UploadFile, File(description="trained model, .keras")],
                 data: Annotated[UploadFile, File(description=".npz data set")],
                 spec: Annotated[str, Form(description="job spec, JSON")]):
    """Upload a model, a data set and a spec; the job is queued and runs in a worker."""
    from aconnect.data import OPTIONAL, REQUIRED
    from aconnect.intake import MAX_RATIO, UnsafeFile, inspect_model_file, inspect_npz
    from aconnect.spec import SpecError, parse_spec

    settings = request.app.state.settings
    if len(spec.encode()) > settings.max_spec_bytes:
        raise HTTPException(413, f"spec: larger than the limit of {settings.max_spec_bytes} bytes")
    try:
        parsed = parse_spec(json.loads(spec))
    except json.JSONDecodeError as err:
        raise HTTPException(422, f"spec: not valid JSON ({err})") from None
    except RecursionError:
        raise HTTPException(422, "spec: nested too deeply") from None
    except SpecError as err:
        raise HTTPException(422, str(err)) from None
    for field, value, cap in (("validation.samples", parsed.validation.samples,
                               settings.max_samples),
                              ("training.epochs", parsed.training.epochs, settings.max_epochs)):
        if value > cap:
            raise HTTPException(422, f"{field}: {value} is over this server's limit of {cap}")
    active = [j for j in jobs.list(who) if j["state"] in ("queued", "running")]
    if len(active) >= settings.max_active_jobs:
        raise HTTPException(429, f"you have {len(active)} jobs queued or running (limit "
                                 f"{settings.max_active_jobs}); wait for one to finish",
                            headers={"Retry-After": "30"})
    broker_ok = request.app.state.broker_ok
    if broker_ok is not None and not broker_ok():
        raise HTTPException(503, "the job queue (broker) is unreachable; status and downloads "
                                 "still work, retry the submission later",
                            headers={"Retry-After": "30"})
    job_id = None
    try:
        job_id = jobs.reserve()
        inputs = jobs.inputs(job_id)
        await _save(model, inputs / "model.keras", settings.max_model_bytes, "model")
        await _save(data, inputs / "data.npz", settings.max_data_bytes, "data")
        # Inspect before any worker deserialises: files are judged by content, not by name.
        inspect_model_file(inputs / "model.keras", settings.max_model_bytes * MAX_RATIO)
        inspect_npz(inputs / "data.npz", settings.max_data_bytes * 4, set(REQUIRED + OPTIONAL))
        job = jobs.create(job_id, who, parsed.kind, parsed.model_dump())
    except BaseException as err:
        if job_id is not None:
            jobs.delete(job_id)  # nothing half-written stays behind
        if isinstance(err, UnsafeFile):
            raise HTTPException(422, str(err)) from None
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise HTTPException(507, "the server is out of disk space for uploads; nothing was "
                                     "kept. Retry later", headers={"Retry-After": "300"}) from None
        raise
    request.app.state.dispatch(job["id"])
    return _view(request, jobs.update(job["id"], dispatched=time.time()))


@api.get("/jobs", response_model=schemas.JobList)
def list_jobs(request: Request, who: Owner, jobs: Store,
              state: Annotated[str | None, Query(description=f"one of {STATES}")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0)] = 0):
    """The caller's jobs, newest first."""
    if state is not None and state not in STATES:
        raise HTTPException(422, f"state: must be one of {list(STATES)}, got {state!r}")
    mine = [j for j in jobs.list(who) if state is None or j["state"] == state]
    page = [_view(request, j) for j in mine[offset:offset + limit]]
    return schemas.JobList(jobs=page, total=len(mine), limit=limit, offset=offset)


@api.get("/jobs/{job_id}", response_model=schemas.Job)
def get_job(request: Request, job_id: str, who: Owner, jobs: Store):
    return _view(request, _job_or_404(jobs, job_id, who))


@api.post("/jobs/{job_id}/cancel", status_code=202, response_model=schemas.Job)
def cancel_job(request: Request, job_id: str, who: Owner, jobs: Store):
    """Queued jobs are canceled at once; running ones stop at the next batch or chip pass."""
    job = _job_or_404(jobs, job_id, who)
    if job["state"] in FINISHED:
        raise HTTPException(409, f"job {job_id} already {job['state']}")
    return _view(request, jobs.request_cancel(job_id))


@api.delete("/jobs/{job_id}", status_code=204)
def delete_job(job_id: str, who: Owner, jobs: Store):
    job = _job_or_404(jobs, job_id, who)
    if job["state"] not in FINISHED:
        raise HTTPException(409, f"job {job_id} is {job['state']}; cancel it first")
    jobs.delete(job_id)
    return Response(status_code=204)


def _artifact_dir(jobs: JobStore, job: dict) -> Path:
    if job["state"] != "succeeded":
        raise HTTPException(409, f"job {job['id']} is {job['state']}; results exist once it "
                                 "has succeeded")
    return jobs.outputs(job["id"])


@api.get("/jobs/{job_id}/report")
def get_report(job_id: str, who: Owner, jobs: Store):
    folder = _artifact_dir(jobs, _job_or_404(jobs, job_id, who))
    return JSONResponse(json.loads((folder / "report.json").read_text()))


@api.get("/jobs/{job_id}/artifacts", response_model=list[schemas.Artifact])
def list_artifacts(request: Request, job_id: str, who: Owner, jobs: Store):
    job = _job_or_404(jobs, job_id, who)
    folder = _artifact_dir(jobs, job)
    return [schemas.Artifact(
        name=name, size=(folder / name).stat().st_size,
        content_type=_content_type(name),
        url=str(request.url_for("get_artifact", job_id=job_id, name=name)))
        for name in job["artifacts"]]


@api.get("/jobs/{job_id}/artifacts/{name}")
def get_artifact(job_id: str, name: str, who: Owner, jobs: Store):
    job = _job_or_404(jobs, job_id, who)
    folder = _artifact_dir(jobs, job)
    if name not in job["artifacts"]:  # only names the worker listed; never a client path
        raise HTTPException(404, f"job {job_id} has no artifact {name!r}")
    return FileResponse(folder / name, filename=name, media_type=_content_type(name))


@health.get("/healthz")
def healthz():
    return {"status": "ok"}


@health.get("/readyz")
def readyz(request: Request):
    problems = []
    root = request.app.state.store.root
    try:
        probe = root / ".ready"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        problems.append(f"storage {root} not writable: {err.strerror}")
    broker = request.app.state.broker_ok
    if broker is not None and not broker():
        problems.append("broker unreachable")
    if problems:
        return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
    return {"status": "ready"}

