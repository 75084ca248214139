"""``Client``: submit jobs to an aconnect service, follow them and fetch their results.

The server URL and token come from the arguments, else ``ACONNECT_URL``/``ACONNECT_TOKEN``,
else the file ``aconnect serve`` writes for the local embedded server (``~/.aconnect/server.json``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import httpx

FINISHED = ("succeeded", "failed", "canceled")


def local_server_file() -> Path:
    return Path(os.environ.get("ACONNECT_HOME", Path.home() / ".aconnect")) / "server.json"


class ServiceError(Exception):
    """The server refused a request; ``status`` is the HTTP status, the message its reason."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class Unauthorized(ServiceError):
    pass


class NotFound(ServiceError):
    pass


class Conflict(ServiceError):
    pass


class InvalidRequest(ServiceError):
    """422 (a bad spec field) or 413 (an upload over the limit)."""


_ERRORS = {401: Unauthorized, 404: NotFound, 409: Conflict, 413: InvalidRequest,
           422: InvalidRequest}


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, *,
                 http: httpx.Client | None = None, timeout: float = 60.0):
        saved: dict[str, str] = {}
        if (url is None or token is None) and local_server_file().is_file():
            saved = json.loads(local_server_file().read_text())
        self.url = (url or os.environ.get("ACONNECT_URL") or saved.get("url") or
                    "http://127.0.0.1:8000").rstrip("/")
        self.token = token or os.environ.get("ACONNECT_TOKEN") or saved.get("token")
        if not self.token:
            raise ValueError("no API token: pass token=, set ACONNECT_TOKEN, or start the "
                             "local server with `aconnect serve` (it writes one)")
        self.http = http or httpx.Client(base_url=self.url, timeout=timeout)
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise _ERRORS.get(response.status_code, ServiceError)(
                response.status_code, detail if isinstance(detail, str) else json.dumps(detail))
        return response

    # -- jobs --------------------------------------------------------------------------------
    def submit(self, model, data, spec: Mapping[str, Any] | str | Path) -> dict:
        """Submit a job. ``model``: a ``.keras`` path or a Keras model; ``data``: an ``.npz``
        path or a dict of arrays; ``spec``: a dict, JSON text, or a JSON file path."""
        if isinstance(spec, Path) or (isinstance(spec, str) and not spec.lstrip().startswith("{")):
            spec = Path(spec).read_text()
        spec_text = spec if isinstance(spec, str) else json.dumps(spec)
        with tempfile.TemporaryDirectory() as scratch:
            model_path = _as_file(model, Path(scratch) / "model.keras")
            data_path = _as_file(data, Path(scratch) / "data.npz")
            with open(model_path, "rb") as m, open(data_path, "rb") as d:
                return self._call("POST", "/v1/jobs", data={"spec": spec_text},
                                  files={"model": ("model.keras", m),
                                         "data": ("data.npz", d)}).json()

    def status(self, job_id: str) -> dict:
        return self._call("GET", f"/v1/jobs/{job_id}").json()

    def jobs(self, state: str | None = None, limit: int = 50, offset: int = 0) -> dict:
        params = {"limit": limit, "offset": offset, **({"state": state} if state else {})}
        return self._call("GET", "/v1/jobs", params=params).json()

    def cancel(self, job_id: str) -> dict:
        return self._call("POST", f"/v1/jobs/{job_id}/cancel").json()

    def delete(self, job_id: str) -> None:
        self._call("DELETE", f"/v1/jobs/{job_id}")

    def report(self, job_id: str) -> dict:
        return self._call("GET", f"/v1/jobs/{job_id}/report").json()

    def artifacts(self, job_id: str) -> list[dict]:
        return self._call("GET", f"/v1/jobs/{job_id}/artifacts").json()

    def download(self, job_id: str, out: str | Path, names: list[str] | None = None
                 ) -> list[Path]:
        """Save the job's artifacts (all, or ``names``) into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        saved = []
        for artifact in self.artifacts(job_id):
            if names is not None and artifact["name"] not in names:
                continue
            target = out / Path(artifact["name"]).name
            partial = target.with_name(f".{target.name}.partial")
            with self.http.stream("GET", f"/v1/jobs/{job_id}/artifacts/{artifact['name']}") as r:
                if r.status_code >= 400:
                    r.read()
                    raise ServiceError(r.status_code, r.text)
                with open(partial, "wb") as handle:
                    for chunk in r.iter_bytes():
                        handle.write(chunk)
            partial.replace(target)
            saved.append(target)
        return saved

    def wait(self, job_id: str, progress: Callable[[dict], Any] | None = None,
             poll: float = 1.0, timeout: float | None = None) -> dict:
        """Poll until the job finishes; ``progress(job)`` sees every status on the way."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.status(job_id)
            if progress:
                progress(job)
            if job["state"] in FINISHED:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout} s")
            time.sleep(poll)


def _as_file(value, path: Path) -> Path:
    if isinstance(value, (str, Path)):
        return Path(value)
    if isinstance(value, Mapping):
        import numpy as np

        np.savez(path, **value)
        return path
    value.save(path)  # a Keras model
    return path
