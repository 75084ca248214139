"""``harden``: convert a trained model to A-Connect layers and fine-tune it under mismatch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import keras
import numpy as np

from aconnect.convert import ConversionSummary, convert, plan_conversion
from aconnect.data import Dataset, check_fits
from aconnect.spec import JobSpec, parse_spec
from aconnect.targets import are_probabilities


class Cancelled(RuntimeError):
    """The caller asked to stop; raised between training batches."""


@dataclass(frozen=True)
class Progress:
    """One progress report: ``step`` of ``total`` in ``stage``, with the latest metrics.

    Training reports also carry the (0-based) ``epoch`` and ``batch`` within it.
    """

    stage: str
    step: int
    total: int
    metrics: dict[str, float] = field(default_factory=dict)
    epoch: int | None = None
    batch: int | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 1.0


@dataclass
class HardenResult:
    model: keras.Model
    summary: ConversionSummary
    history: dict[str, list[float]]
    task: str
    epochs_run: int


def outputs_probabilities(model: keras.Model, x: np.ndarray) -> bool:
    """Whether ``model`` ends in a softmax (non-negative rows summing to 1) rather than logits."""
    return are_probabilities(model.predict(x[:16], verbose=0))


def loss_and_metrics(task: str, model: keras.Model, data: Dataset):
    if task == "regression":
        return keras.losses.MeanSquaredError(), ["mae"]
    from_logits = not outputs_probabilities(model, data.x_train)
    if data.y_train.ndim == 1:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits), ["accuracy"]
    return keras.losses.CategoricalCrossentropy(from_logits=from_logits), ["accuracy"]


class _Reporter(keras.callbacks.Callback):
    """Forwards batch progress and stops training between batches when asked to cancel."""

    def __init__(self, progress, should_cancel, epochs: int, steps: int):
        super().__init__()
        self.progress, self.should_cancel = progress, should_cancel
        self.total, self.steps = epochs * steps, steps
        self.epoch, self.cancelled = 0, False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.progress:
            metrics = {k: float(v) for k, v in (logs or {}).items()}
            self.progress(Progress("harden", self.epoch * self.steps + batch + 1, self.total,
                                   metrics, epoch=self.epoch, batch=batch))
        if self.should_cancel and self.should_cancel():
            self.cancelled = True
            self.model.stop_training = True


def harden(model: keras.Model, data: Dataset, spec: JobSpec | dict | str, *,
           callbacks: Sequence[keras.callbacks.Callback] = (),
           progress: Callable[[Progress], Any] | None = None,
           should_cancel: Callable[[], bool] | None = None) -> HardenResult:
    """Convert ``model`` per ``spec`` and fine-tune it from its own weights under mismatch.

    The loss follows the data: class indices -> sparse cross-entropy, one-hot -> categorical,
    other targets -> MSE (logits or softmax outputs are detected). ``progress`` receives a
    ``Progress`` after every batch; ``should_cancel`` is polled there too and raises
    ``Cancelled`` once training has stopped. ``model`` itself is never modified.
    """
    spec = parse_spec(spec)
    task = check_fits(model, data)
    if len(data.x_train) == 0:
        raise ValueError("hardening needs training data (x_train, y_train)")
    layers, training = spec.layers, spec.training
    options = dict(include=layers.include, exclude=layers.exclude, overrides=layers.overrides)
    mismatch = spec.mismatch.to_mismatch()
    summary = plan_conversion(model, mismatch, **options)
    hardened = convert(model, mismatch, **options)
    loss, metrics = loss_and_metrics(task, model, data)
    optimizer = keras.optimizers.get({"class_name": training.optimizer,
                                      "config": {"learning_rate": training.learning_rate}})
    hardened.compile(optimizer=optimizer, loss=loss, metrics=metrics)

    validation = data.validation
    split = 0.0 if validation is not None else training.validation_split
    fit_rows = int(len(data.x_train) * (1 - split))
    steps = max(1, -(-fit_rows // training.batch_size))
    reporter = _Reporter(progress, should_cancel, training.epochs, steps)
    extra: list[keras.callbacks.Callback] = [reporter]
    if training.early_stopping:
        monitor = "val_loss" if validation is not None or split > 0 else "loss"
        extra.append(keras.callbacks.EarlyStopping(monitor=monitor,
                                                   patience=training.early_stopping,
                                                   restore_best_weights=True))
    history = hardened.fit(data.x_train, data.y_train, epochs=training.epochs,
                           batch_size=training.batch_size, validation_data=validation,
                           validation_split=split, callbacks=extra + list(callbacks), verbose=0)
    if reporter.cancelled:
        raise Cancelled("hardening was canceled")
    record = {k: [float(v) for v in values] for k, values in history.history.items()}
    return HardenResult(hardened, summary, record, task, len(record.get("loss", [])))
