"""Monte Carlo validation: accuracy of a model across many simulated chips.

A chip is one draw of every analog layer's masks; chip ``c`` of a run with seed ``s`` is
``select_chip(model, chip_seed(s, c))``, so any single chip can be reproduced and inspected.
Chips are evaluated many at a time (chips become a batch dimension, see ``chip_batch``), in
passes sized to a memory budget; the result does not depend on how the work was split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np
from keras import ops

from aconnect.chip_batch import chip_batch, draw_chip_masks
from aconnect.chips import aconnect_layers, chip_seed
from aconnect.convert import convert
from aconnect.mismatch import Mismatch
from aconnect.targets import are_probabilities, is_one_hot

STATISTICS = ("median", "q1", "q3", "iqr", "min", "max", "mean", "std", "p5", "p95")


def statistics(values: Sequence[float]) -> dict[str, float]:
    """Summary of per-chip values: quartiles, IQR, extremes, mean, std, 5th/95th percentiles."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("statistics of an empty set of chips")
    p5, q1, median, q3, p95 = np.percentile(v, [5, 25, 50, 75, 95])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1),
            "min": float(v.min()), "max": float(v.max()), "mean": float(v.mean()),
            "std": float(v.std()), "p5": float(p5), "p95": float(p95)}


@dataclass
class MonteCarloResult:
    """Per-chip metric values of one Monte Carlo run, and their statistics."""

    mismatch: Mismatch
    seed: int
    task: str
    per_chip: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> (samples,)

    @property
    def samples(self) -> int:
        return len(next(iter(self.per_chip.values())))

    def stats(self) -> dict[str, dict[str, float]]:
        return {name: statistics(values) for name, values in self.per_chip.items()}

    def to_dict(self, per_chip: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"mismatch": self.mismatch.get_config(), "seed": self.seed,
                               "task": self.task, "samples": self.samples,
                               "statistics": self.stats()}
        if per_chip:
            out["per_chip"] = {k: v.tolist() for k, v in self.per_chip.items()}
        return out


def _as_list(x) -> list[np.ndarray]:
    return [np.asarray(a) for a in (x if isinstance(x, (list, tuple)) else [x])]


def _task(y: np.ndarray, outputs: int, task: str) -> str:
    if task != "auto":
        if task not in ("classification", "regression"):
            raise ValueError(f"task={task!r} must be 'auto', 'classification' or 'regression'")
        return task
    integer_labels = np.issubdtype(y.dtype, np.integer) and y.ndim == 1
    one_hot = is_one_hot(y) and y.shape[1] == outputs
    return "classification" if (integer_labels or one_hot) and outputs > 1 else "regression"


class _Accumulator:
    """Per-chip sums of metric values over example batches (computed with ``keras.ops``)."""

    def __init__(self, task: str, top_k: Sequence[int]):
        self.task = task
        self.top_k = sorted(set(top_k) | ({1} if task == "classification" else set()))
        self.sums: dict[str, np.ndarray] = {}
        self.count = 0
        self.probabilities: bool | None = None  # classification outputs: probabilities?

    def _add(self, name: str, per_example) -> None:
        total = ops.convert_to_numpy(ops.sum(ops.cast(per_example, "float64"), axis=1))
        self.sums[name] = self.sums.get(name, 0.0) + total

    def add(self, outputs, y) -> None:
        """``outputs``: ``(chips, n, ...)`` tensor for ``n`` examples with targets ``y``."""
        self.count += int(y.shape[0])
        outputs = ops.cast(outputs, "float32")
        if self.task == "regression":
            err = ops.reshape(outputs, tuple(outputs.shape[:2]) + (-1,)) - ops.reshape(
                ops.cast(y, "float32"), (1, y.shape[0], -1))
            self._add("mse", ops.mean(err**2, axis=-1))
            self._add("mae", ops.mean(ops.abs(err), axis=-1))
            return
        if self.probabilities is None:  # judged once, on the first batch of outputs
            self.probabilities = are_probabilities(ops.convert_to_numpy(outputs))
        logp = (ops.log(ops.clip(outputs, 1e-12, 1.0)) if self.probabilities
                else ops.log_softmax(outputs, axis=-1))
        labels = ops.cast(y if len(y.shape) == 1 else ops.argmax(y, -1), "int32")
        index = ops.broadcast_to(ops.reshape(labels, (1, -1, 1)), tuple(logp.shape[:2]) + (1,))
        picked = ops.take_along_axis(logp, index, axis=-1)  # (chips, n, 1)
        self._add("loss", -picked[..., 0])
        rank = ops.sum(ops.cast(logp > picked, "int32"), axis=-1)  # classes beating the label
        for k in self.top_k:
            self._add("accuracy" if k == 1 else f"top_{k}_accuracy", ops.cast(rank < k, "float32"))

    def result(self) -> dict[str, np.ndarray]:
        return {name: total / self.count for name, total in self.sums.items()}


def _per_example_floats(model: keras.Model) -> int:
    """Floats one example occupies across all layer outputs (an upper bound on live memory)."""
    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        for node in getattr(layer, "_inbound_nodes", []):
            for tensor in node.output_tensors:
                total += math.prod(d or 1 for d in tensor.shape[1:])
    return max(total, 1)


def _chip_masks(layers, chips: Sequence[int], seed: int, mismatch: Mismatch):
    """Every layer's masks for the given chip numbers, stacked chip-major."""
    drawn = draw_chip_masks(layers, [chip_seed(seed, c) for c in chips], mismatch)
    return dict(zip(layers, drawn))


def _forward(model, masks, part, chips: int, shared: bool):
    """Outputs for ``part`` on every chip, chip-major. ``shared``: no per-chip input copies."""
    examples = int(part[0].shape[0])
    inputs = part if shared else [ops.tile(p, (chips,) + (1,) * (len(p.shape) - 1))
                                  for p in part]
    with chip_batch(masks, examples):
        out = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    if out.shape[0] != chips * examples:  # no analog layer on the path to the output
        out = ops.tile(out, (chips,) + (1,) * (len(out.shape) - 1))
    return ops.reshape(out, (chips, examples) + tuple(out.shape[1:]))


def _shared_input_works(model, layers, xs, mismatch) -> bool:
    """Whether every chip can read one shared copy of the input.

    Not when a layer merges a chip-dependent tensor with one computed from the input alone
    (a residual from the model's input, say): then inputs are copied per chip. Decided on a
    two-example, two-chip probe against the copying path.
    """
    probe = [a[:2] for a in xs]
    masks = _chip_masks(layers, [0, 1], 0, mismatch)
    try:
        shared = _forward(model, masks, probe, 2, shared=True)
    except Exception:  # shape mismatch in a merge layer: fall back to per-chip copies
        return False
    copied = _forward(model, masks, probe, 2, shared=False)
    return bool(np.allclose(ops.convert_to_numpy(shared), ops.convert_to_numpy(copied),
                            rtol=1e-4, atol=1e-5))


def monte_carlo(model: keras.Model, x, y, mismatch: Mismatch | Mapping | float, *,
                samples: int = 1000, seed: int = 0, first_chip: int = 0,
                top_k: Sequence[int] = (1,), task: str = "auto",
                memory_budget_mb: float = 1024,
                progress: Callable[[int, int], None] | None = None) -> MonteCarloResult:
    """Evaluate ``model`` on ``samples`` simulated chips at ``mismatch``.

    A model without A-Connect layers is the baseline: its Dense/Conv layers are treated as
    analog layers trained without mismatch. Metrics per chip: top-1 (and ``top_k``) accuracy and
    cross-entropy loss for classification (outputs may be logits or probabilities), MSE and MAE
    for regression. ``memory_budget_mb`` bounds the chips and examples held per pass.
    ``first_chip`` numbers the chips from there, so a run split into chunks (on several
    workers, say) concatenates to exactly the single run.
    """
    mismatch = Mismatch.coerce(mismatch)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples={samples!r} must be an integer >= 1")
    if len(model.outputs) != 1:
        raise ValueError(
            f"model {model.name!r} has {len(model.outputs)} outputs; Monte Carlo scores one. "
            "Pick it with keras.Model(model.inputs, model.outputs[i])")
    if not list(aconnect_layers(model)):
        model = convert(model, Mismatch(0.0, distribution=mismatch.distribution))
    layers = list(aconnect_layers(model))
    xs, y = _as_list(x), np.asarray(y)
    n = len(y)
    if any(len(a) != n for a in xs):
        raise ValueError(f"x and y have different lengths: {[len(a) for a in xs]} vs {n}")
    task = _task(y, int(model.outputs[0].shape[-1] or 1), task)

    budget = memory_budget_mb * 2**20 / 4  # floats
    per_example = _per_example_floats(model) + sum(math.prod(a.shape[1:]) for a in xs)
    per_chip_masks = 3 * sum(int(np.prod(l.kernel.shape)) + (
        int(np.prod(l.bias.shape)) if l.bias is not None else 0) for l in layers)
    batch = int(max(1, min(n, budget // 2 // per_example)))
    chips_per_pass = int(max(1, min(samples, budget // (per_chip_masks + batch * per_example))))

    xs = [ops.convert_to_tensor(a) for a in xs]
    shared = _shared_input_works(model, layers, xs, mismatch)
    accumulators = []
    last = first_chip + samples
    for first in range(first_chip, last, chips_per_pass):
        chips = list(range(first, min(last, first + chips_per_pass)))
        masks = _chip_masks(layers, chips, seed, mismatch)
        acc = _Accumulator(task, top_k)
        for start in range(0, n, batch):
            part = [a[start:start + batch] for a in xs]
            acc.add(_forward(model, masks, part, len(chips), shared), y[start:start + batch])
        accumulators.append(acc.result())
        if progress:
            progress(chips[-1] + 1 - first_chip, samples)
    per_chip = {k: np.concatenate([a[k] for a in accumulators]) for k in accumulators[0]}
    return MonteCarloResult(mismatch=mismatch, seed=seed, task=task, per_chip=per_chip)


def sigma_sweep(models: Mapping[str, keras.Model], x, y, sigmas: Sequence[float], *,
                mismatch: Mismatch | Mapping | None = None, **kwargs: Any,
                ) -> dict[str, dict[float, MonteCarloResult]]:
    """``monte_carlo`` of every model at every sigma (same chip seeds for all models)."""
    base = Mismatch.coerce(mismatch) if mismatch is not None else Mismatch()
    return {name: {float(s): monte_carlo(model, x, y, base.replace(sigma=s, bias_sigma=s),
                                          **kwargs)
                   for s in sigmas}
            for name, model in models.items()}
