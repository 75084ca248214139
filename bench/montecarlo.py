"""Monte Carlo cost per chip: ours vs the naive loop vs the matrix-multiply bound, side by side.

    python bench/montecarlo.py [--chips 60] [--naive-chips 3]

Model: MLP 784-128-10 on 10,000 examples, sigma 0.5. "naive" is how Monte Carlo is usually
written: draw noisy weights, ``set_weights``, ``model.evaluate`` (Keras' default batch size of
32), restore. The bound is ``2 * MACs * examples`` divided by the float32 matmul throughput
measured here, in this run, on a large square matmul.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from aconnect import Mismatch  # noqa: E402
from aconnect.montecarlo import monte_carlo  # noqa: E402

SIGMA = 0.5
EXAMPLES = 10_000


def matmul_flops_per_second(size: int = 2048, repeats: int = 10) -> float:
    a = ops.convert_to_tensor(np.random.default_rng(0).normal(size=(size, size)), "float32")
    ops.convert_to_numpy(ops.matmul(a, a))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ops.convert_to_numpy(ops.matmul(a, a))
        times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times)


def naive_chip(model: keras.Model, x, y, rng) -> float:
    """One chip the usual way: noisy weights in, evaluate, weights back."""
    nominal = model.get_weights()
    noisy = [w * np.abs(1 + SIGMA * rng.normal(size=w.shape)).astype("float32")
             if w.ndim >= 1 else w for w in nominal]
    start = time.perf_counter()
    model.set_weights(noisy)
    model.evaluate(x, y, verbose=0)
    model.set_weights(nominal)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=60, help="chips for our Monte Carlo")
    parser.add_argument("--naive-chips", type=int, default=3, help="chips for the naive loop")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x = rng.normal(size=(EXAMPLES, 784)).astype("float32")
    y = rng.integers(0, 10, EXAMPLES)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    macs = 784 * 128 + 128 * 10

    flops = matmul_flops_per_second()
    bound = 2 * macs * EXAMPLES / flops
    monte_carlo(model, x[:500], y[:500], Mismatch(SIGMA), samples=4)  # warm-up
    start = time.perf_counter()
    monte_carlo(model, x, y, Mismatch(SIGMA), samples=args.chips, seed=1)
    ours = (time.perf_counter() - start) / args.chips
    naive_chip(model, x, y, rng)  # warm-up (traces the evaluate function)
    naive = statistics.median(naive_chip(model, x, y, rng) for _ in range(args.naive_chips))

    print(f"keras {keras.__version__} ({keras.backend.backend()}), {os.cpu_count()} CPUs; "
          f"MLP 784-128-10, {EXAMPLES} examples, sigma {SIGMA}")
    print(f"measured matmul throughput: {flops / 1e9:.1f} GFLOP/s\n")
    print(f"{'per chip':<34}{'seconds':>10}{'vs ours':>10}")
    print(f"{'ours (' + str(args.chips) + ' chips)':<34}{ours:>10.4f}{1:>9.2f}x")
    print(f"{'naive loop (evaluate, batch 32)':<34}{naive:>10.4f}{naive / ours:>9.2f}x")
    print(f"{'matmul bound':<34}{bound:>10.4f}{bound / ours:>9.2f}x")
    print(f"\nours / bound = {ours / bound:.2f}x (target <= 1.25x); "
          f"naive / ours = {naive / ours:.1f}x (target >= 15x)")


if __name__ == "__main__":
    main()
