"""Training-step cost of A-Connect layers vs plain Keras layers, measured side by side.

    python bench/train_step.py [--steps 30]

For each model the plain-Keras and A-Connect versions are compiled the same way and stepped
alternately on the same batch (``train_on_batch``), so both see the same machine state; the
table reports median step times and their ratio. ``exact`` is the reference per-example path
that materialises a ``batch x in x out`` masked weight tensor (the naive implementation).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import aconnect  # noqa: E402

SIGMA = 0.5


def mlp(kind: str) -> keras.Model:
    dense = {
        "plain": lambda n: keras.layers.Dense(n),
        "aconnect": lambda n: aconnect.AConnectDense(n, mismatch=SIGMA, seed=1),
        "exact": lambda n: aconnect.AConnectDense(n, mismatch=SIGMA, seed=1, exact=True),
    }[kind]
    return keras.Sequential([
        keras.Input((784,)), dense(128), keras.layers.BatchNormalization(),
        keras.layers.ReLU(), dense(10),
    ], name=f"mlp_{kind}")


def cnn(kind: str) -> keras.Model:
    if kind == "plain":
        conv = lambda f: keras.layers.Conv2D(f, 3, padding="same", activation="relu")  # noqa: E731
        dense = keras.layers.Dense
    else:
        conv = lambda f: aconnect.AConnectConv2D(  # noqa: E731
            f, 3, padding="same", activation="relu", mismatch=SIGMA, seed=1)
        dense = lambda n: aconnect.AConnectDense(n, mismatch=SIGMA, seed=2)  # noqa: E731
    return keras.Sequential([
        keras.Input((32, 32, 3)), conv(32), conv(64), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), dense(10),
    ], name=f"cnn_{kind}")


def step_times(models: dict[str, keras.Model], x, y, steps: int, warmup: int = 5):
    for model in models.values():
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        for _ in range(warmup):
            model.train_on_batch(x, y)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(steps):
        for name, model in models.items():  # alternate: both see the same machine state
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)

    print(f"keras {keras.__version__} ({keras.backend.backend()}), {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, sigma={SIGMA}, median of {args.steps} steps\n")
    print(f"{'model':<34}{'plain ms':>10}{'ours ms':>10}{'ratio':>8}")

    x = rng.normal(size=(256, 784)).astype("float32")
    y = rng.integers(0, 10, 256)
    t = step_times({k: mlp(k) for k in ("plain", "aconnect", "exact")}, x, y, args.steps)
    print(f"{'MLP 784-128-10, batch 256':<34}{t['plain']*1e3:>10.2f}{t['aconnect']*1e3:>10.2f}"
          f"{t['aconnect']/t['plain']:>7.2f}x")
    print(f"{'  exact path (naive B x in x out)':<34}{t['plain']*1e3:>10.2f}{t['exact']*1e3:>10.2f}"
          f"{t['exact']/t['plain']:>7.2f}x")

    x = rng.normal(size=(64, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 64)
    t = step_times({k: cnn(k) for k in ("plain", "aconnect")}, x, y, args.steps)
    print(f"{'CNN 32x32x3 conv32-conv64, batch 64':<34}{t['plain']*1e3:>10.2f}"
          f"{t['aconnect']*1e3:>10.2f}{t['aconnect']/t['plain']:>7.2f}x")


if __name__ == "__main__":
    main()
