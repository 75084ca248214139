"""A small end-to-end demonstration on scikit-learn's bundled digits (no download).

Trains a plain MLP, fine-tunes an A-Connect copy of it, and compares both on many simulated
chips per evaluation sigma. The plain model is built from A-Connect layers with zero mismatch,
which compute exactly what ``keras.layers.Dense`` computes, so the same chips apply to both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from aconnect.chips import clear_chip, select_chip
from aconnect.layers import AConnectDense
from aconnect.mismatch import Mismatch


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


def mlp(sigma: float, seed: int) -> keras.Model:
    mismatch = Mismatch(sigma)
    return keras.Sequential([
        keras.Input((64,)),
        AConnectDense(64, activation="relu", mismatch=mismatch, seed=seed, name="hidden"),
        AConnectDense(10, mismatch=mismatch, seed=seed + 1, name="logits"),
    ], name=f"mlp_sigma_{sigma:g}")


def _compile(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def chip_accuracies(model, x, y, sigma: float, chips: int, seed: int, advance=None) -> np.ndarray:
    """Top-1 accuracy of ``model`` on chips ``seed .. seed + chips - 1`` at ``sigma``."""
    accuracies = np.empty(chips)
    for i in range(chips):
        select_chip(model, seed + i, Mismatch(sigma))
        logits = keras.ops.convert_to_numpy(model(x, training=False))
        accuracies[i] = np.mean(logits.argmax(-1) == y)
        if advance:
            advance()
    clear_chip(model)
    return accuracies


def run_demo(sigma: float = 0.5, chips: int = 200, epochs: int = 30, seed: int = 0,
             out: Path | None = None, sigmas: tuple[float, ...] = (0.0, 0.3, 0.5, 0.7),
             progress=None) -> DemoResult:
    """Train, harden and compare; ``progress(stage, done, total)`` is called as work advances."""
    keras.utils.set_random_seed(seed)
    x_train, x_test, y_train, y_test = load_digits_split(seed)
    report = progress or (lambda stage, done, total: None)

    def epochs_callback(stage: str):
        return keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: report(stage, epoch + 1, epochs))

    baseline = mlp(0.0, seed)
    _compile(baseline, 3e-3)
    baseline.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0,
                 callbacks=[epochs_callback("train baseline")])

    hardened = mlp(sigma, seed)
    hardened.set_weights(baseline.get_weights())  # fine-tune from the baseline's weights
    _compile(hardened, 1e-3)
    hardened.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0,
                 callbacks=[epochs_callback(f"harden at sigma {sigma:g}")])

    result = DemoResult(sigmas=list(sigmas))
    total = 2 * len(sigmas) * chips
    done = 0

    def advance():
        nonlocal done
        done += 1
        report("Monte Carlo chips", done, total)

    for s in sigmas:
        # Chip seeds are shared by both models: the comparison is on the same simulated chips.
        result.baseline[s] = chip_accuracies(baseline, x_test, y_test, s, chips, seed, advance)
        result.hardened[s] = chip_accuracies(hardened, x_test, y_test, s, chips, seed, advance)

    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for model, name in ((baseline, "baseline.keras"), (hardened, "hardened.keras")):
            model.save(out / name)
            result.saved.append(out / name)
    return result
