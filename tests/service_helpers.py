"""Small real inputs for service tests: a trained digits model and its data, on disk."""

import json
import os
import time
from pathlib import Path

import keras
import numpy as np


def make_job_files(folder: Path, train: int = 400, test: slice = slice(1500, 1700),
                   hidden: int = 16, epochs: int = 3) -> tuple[Path, Path]:
    """A digits MLP trained briefly, saved as ``model.keras``, and its ``digits.npz``."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    data = folder / "digits.npz"
    np.savez(data, x_train=x[:train], y_train=y[:train], x_test=x[test], y_test=y[test])
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)),
                              keras.layers.Dense(hidden, activation="relu", name="hidden"),
                              keras.layers.Dense(10, name="logits")], name="digits")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:train], y[:train], epochs=epochs, verbose=0)
    path = folder / "model.keras"
    model.save(path)
    return path, data


QUICK_SPEC = {"kind": "harden", "training": {"epochs": 1, "batch_size": 64},
              "validation": {"samples": 3, "sigmas": [0.0, 0.5]}}
SLOW_SPEC = {"kind": "harden", "training": {"epochs": 400, "batch_size": 8,
                                            "early_stopping": None},
             "validation": {"samples": 3, "sigmas": [0.5]}}


def submit(client, token, model, data, spec=QUICK_SPEC):
    with open(model, "rb") as m, open(data, "rb") as d:
        return client.post("/v1/jobs", headers={"Authorization": f"Bearer {token}"},
                           files={"model": ("model.keras", m), "data": ("data.npz", d)},
                           data={"spec": json.dumps(spec)})


def wait_for(client, token, job_id, states, timeout=180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
        job = job.json()
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not reach {states} in {timeout}s: {job}")


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie is dead, just not yet reaped)."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False
