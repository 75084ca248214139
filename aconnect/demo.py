"""A small end-to-end demonstration on scikit-learn's bundled digits (no download).

Trains a plain Keras MLP, converts it to A-Connect layers and fine-tunes it at the training
sigma, then compares both by Monte Carlo on the same simulated chips at several sigmas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from aconnect.convert import convert
from aconnect.harden import Progress
from aconnect.mismatch import Mismatch
from aconnect.montecarlo import monte_carlo


@dataclass
class DemoResult:
    sigmas: list[float]
    baseline: dict[float, np.ndarray] = field(default_factory=dict)  # sigma -> per-chip accuracy
    hardened: dict[float, np.ndarray] = field(default_factory=dict)
    saved: list[Path] = field(default_factory=list)


def load_digits_split(seed: int):
    """Digits scaled to [0, 1], split 70/30 with every class in both parts."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)


def mlp(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(64, activation="relu", name="hidden"),
        keras.layers.Dense(10, name="logits"),
    ], name="digits_mlp")


def _compile(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def run_demo(sigma: float = 0.5, chips: int = 200, epochs: int = 30, seed: int = 0,
             out: Path | None = None, sigmas: tuple[float, ...] = (0.0, 0.3, 0.5, 0.7),
             progress=None) -> DemoResult:
    """Train, harden and compare; ``progress(Progress)`` is called as work advances."""
    keras.utils.set_random_seed(seed)
    x_train, x_test, y_train, y_test = load_digits_split(seed)

    def report(stage: str, done: int, total: int) -> None:
        if progress:
            progress(Progress(stage, done, total))

    def epochs_callback(stage: str):
        return keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: report(stage, epoch + 1, epochs))

    baseline = mlp(seed)
    _compile(baseline, 3e-3)
    baseline.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0,
                 callbacks=[epochs_callback("train baseline")])

    hardened = convert(baseline, Mismatch(sigma))  # same weights, A-Connect layers
    _compile(hardened, 1e-3)
    hardened.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0,
                 callbacks=[epochs_callback(f"harden at sigma {sigma:g}")])

    result = DemoResult(sigmas=list(sigmas))
    total = 2 * len(sigmas) * chips
    done = 0

    def advance(chips_done: int, _total: int) -> None:
        report("Monte Carlo chips", done + chips_done, total)

    for s in sigmas:
        # Same seed for both models: the comparison is on the same simulated chips.
        for model, results in ((baseline, result.baseline), (hardened, result.hardened)):
            results[s] = monte_carlo(model, x_test, y_test, Mismatch(s), samples=chips,
                                     seed=seed, progress=advance).per_chip["accuracy"]
            done += chips

    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for model, name in ((baseline, "baseline.keras"), (hardened, "hardened.keras")):
            model.save(out / name)
            result.saved.append(out / name)
    return result
