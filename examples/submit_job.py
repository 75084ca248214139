"""Train a small model, submit it to an aconnect service, wait, and print the report summary.

    aconnect serve &            # in another terminal: the local service (prints a token)
    python examples/submit_job.py [--url URL --token TOKEN] [--samples 100]

Without --url/--token the client uses the local server's token file.
"""

import argparse

import keras
import numpy as np
from sklearn.datasets import load_digits

from aconnect.client import Client


def main(argv=None, http=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--samples", type=int, default=100, help="chips per sigma")
    parser.add_argument("--epochs", type=int, default=10, help="hardening epochs")
    args = parser.parse_args(argv)

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1200], y[:1200], epochs=20, verbose=0)

    client = Client(args.url, args.token, http=http)
    job = client.submit(model, {"x_train": x[:1200], "y_train": y[:1200],
                                "x_test": x[1200:], "y_test": y[1200:]},
                        {"kind": "harden", "mismatch": {"sigma": 0.5},
                         "training": {"epochs": args.epochs, "batch_size": 32},
                         "validation": {"samples": args.samples, "sigmas": [0.0, 0.5, 0.7]}})
    print(f"job {job['id']} submitted")
    done = client.wait(job["id"], progress=lambda j: print(
        f"  {j['state']:<9} {j['progress']['stage'] or ''} {100 * j['progress']['fraction']:.0f}%"),
        poll=1.0)
    if done["state"] != "succeeded":
        raise SystemExit(f"job {done['state']}: {done['error']}")
    report = client.report(job["id"])
    for row in report["summary"]:
        print(f"sigma {row['sigma']:.1f}: baseline median {100 * row['baseline']['median']:.1f} %"
              f", hardened median {100 * row['hardened']['median']:.1f} %")
    return report


if __name__ == "__main__":
    main()
