"""A bounded load run of the service on loopback: N clients submit and poll at once.

    python bench/api_load.py [--clients 8] [--jobs 3] [--active-limit 2]

Starts `aconnect serve` (embedded worker) on a free port with a per-owner limit of
`--active-limit` active jobs, gives every client its own token, and lets each submit `--jobs`
small evaluate jobs back to back (no retries), then poll them to the end. Prints accepted,
rejected with 429, finished, lost (accepted but never finished: must be 0), and the latency
percentiles of the status calls made while polling.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPEC = {"kind": "evaluate", "validation": {"samples": 2, "sigmas": [0.5]}}


def _files(folder: Path) -> tuple[Path, Path]:
    import keras
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    np.savez(folder / "data.npz", x_test=x[:300], y_test=y[:300])
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10)])
    model.save(folder / "model.keras")
    return folder / "model.keras", folder / "data.npz"


def _client(url, token, model, data, jobs, results, lock):
    http = httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"})
    accepted, rejected, latencies, finished = [], 0, [], {}
    for _ in range(jobs):
        with open(model, "rb") as m, open(data, "rb") as d:
            r = http.post("/v1/jobs", data={"spec": json.dumps(SPEC)},
                          files={"model": ("model.keras", m), "data": ("data.npz", d)})
        if r.status_code == 202:
            accepted.append(r.json()["id"])
        elif r.status_code == 429:
            rejected += 1
        else:
            raise RuntimeError(f"unexpected {r.status_code}: {r.text}")
    deadline = time.monotonic() + 600
    pending = set(accepted)
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            start = time.perf_counter()
            state = http.get(f"/v1/jobs/{job_id}").json()["state"]
            latencies.append(time.perf_counter() - start)
            if state in ("succeeded", "failed", "canceled"):
                finished[job_id] = state
                pending.discard(job_id)
        time.sleep(0.2)
    with lock:
        results["accepted"] += len(accepted)
        results["rejected_429"] += rejected
        results["succeeded"] += sum(s == "succeeded" for s in finished.values())
        results["failed"] += sum(s != "succeeded" for s in finished.values())
        results["lost"] += len(pending)
        results["latencies"] += latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=3, help="submissions per client")
    parser.add_argument("--active-limit", type=int, default=2, help="active jobs per owner")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model, data = _files(scratch)
        from app.auth import TokenStore

        tokens = [TokenStore(scratch / "data" / "tokens.json").create(f"client{i}")
                  for i in range(args.clients)]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "ACONNECT_HOME": str(scratch / "home"),
               "ACONNECT_MAX_ACTIVE_JOBS": str(args.active_limit)}
        env.pop("ACONNECT_BROKER_URL", None)
        server = subprocess.Popen([sys.executable, "-m", "aconnect.cli", "serve", "--port",
                                   str(port), "--data-dir", str(scratch / "data")], cwd=ROOT,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            results = {"accepted": 0, "rejected_429": 0, "succeeded": 0, "failed": 0,
                       "lost": 0, "latencies": []}
            lock = threading.Lock()
            start = time.perf_counter()
            threads = [threading.Thread(target=_client, args=(url, t, model, data, args.jobs,
                                                              results, lock)) for t in tokens]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - start
        finally:
            server.terminate()
            server.wait(30)

    lat = sorted(results.pop("latencies"))
    pct = {p: 1000 * lat[min(len(lat) - 1, int(p / 100 * len(lat)))] for p in (50, 95, 99)}
    print(f"{args.clients} clients x {args.jobs} submissions, {args.active_limit} active jobs "
          f"per owner, 1 embedded worker, {elapsed:.1f} s")
    for key, value in results.items():
        print(f"{key:<14}{value:>6}")
    print(f"status calls  {len(lat):>6}  p50 {pct[50]:.1f} ms  p95 {pct[95]:.1f} ms  "
          f"p99 {pct[99]:.1f} ms  (mean {1000 * statistics.mean(lat):.1f} ms)")


if __name__ == "__main__":
    main()
