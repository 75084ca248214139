"""The Python client and the service commands, against a real server process."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import keras
import numpy as np
import pytest

import aconnect
from aconnect.cli import main
from aconnect.client import Client, InvalidRequest, NotFound, Unauthorized
from service_helpers import QUICK_SPEC, make_job_files

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`aconnect serve` in its own process: API plus an embedded worker process."""
    root = tmp_path_factory.mktemp("serve")
    home = root / "home"
    port = _free_port()
    env = {**os.environ, "ACONNECT_HOME": str(home)}
    env.pop("ACONNECT_BROKER_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "aconnect.cli", "serve", "--port", str(port), "--data-dir",
         str(root / "data")], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        process.kill()
        raise AssertionError(f"server did not start: {process.stdout.read()}")
    try:
        yield url, home, root
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
        assert "API token:" in output


def test_serve_writes_a_token_file_the_client_finds(server, monkeypatch):
    url, home, _ = server
    saved = json.loads((home / "server.json").read_text())
    assert saved["url"] == url and len(saved["token"]) > 20
    assert oct((home / "server.json").stat().st_mode)[-3:] == "600"
    monkeypatch.setenv("ACONNECT_HOME", str(home))
    assert Client().jobs()["jobs"] == []


def test_client_submits_in_memory_model_and_arrays_and_downloads(server, tmp_path):
    url, home, root = server
    saved = json.loads((home / "server.json").read_text())
    client = Client(url, saved["token"])
    model_path, data_path = make_job_files(tmp_path)
    model = keras.models.load_model(model_path)
    arrays = dict(np.load(data_path))
    job = client.submit(model, arrays, QUICK_SPEC)
    seen = []
    done = client.wait(job["id"], progress=seen.append, poll=0.3, timeout=240)
    assert done["state"] == "succeeded", done["error"]
    assert seen[-1]["state"] == "succeeded"
    files = client.download(job["id"], tmp_path / "out", names=["hardened.keras", "report.json"])
    assert sorted(p.name for p in files) == ["hardened.keras", "report.json"]
    assert list(aconnect.aconnect_layers(keras.models.load_model(tmp_path / "out" /
                                                                 "hardened.keras")))
    assert client.report(job["id"])["kind"] == "harden"
    with pytest.raises(NotFound, match="no job"):
        client.status("0" * 32)
    with pytest.raises(InvalidRequest, match="training.epochs"):
        client.submit(model_path, data_path, {"kind": "harden", "training": {"epochs": 0}})
    with pytest.raises(Unauthorized):
        Client(url, "wrong-token").jobs()


def test_cli_submit_wait_download_jobs_and_status(server, tmp_path, capsys, monkeypatch):
    url, home, _ = server
    monkeypatch.setenv("ACONNECT_HOME", str(home))
    model, data = make_job_files(tmp_path)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(QUICK_SPEC))
    code = main(["submit", str(model), "--data", str(data), "--spec", str(spec), "--wait",
                 "--out", str(tmp_path / "results")])
    out = capsys.readouterr().out
    assert code == 0, out
    job_id = out.split("submitted job ")[1].split()[0]
    assert (tmp_path / "results" / "report.html").is_file()
    assert main(["status", job_id]) == 0 and "succeeded" in capsys.readouterr().out
    assert main(["jobs", "--state", "succeeded"]) == 0 and job_id in capsys.readouterr().out
    assert main(["cancel", job_id]) == 2  # already finished: a clear error, not a traceback
    assert "already succeeded" in capsys.readouterr().err
