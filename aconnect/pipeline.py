"""The whole job: load, (convert + harden), Monte Carlo sweep, report and exports.

The command line runs it in-process; the service's workers will run the same function.
Outputs are written only after every stage succeeded, each file atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np

from aconnect.data import Dataset, check_fits, load_npz
from aconnect.export import to_plain_keras
from aconnect.harden import Cancelled, Progress, harden
from aconnect.intake import UnsafeFile, inspect_model_file
from aconnect.isolated_load import LoadLimits, LoadRefused, trial_load
from aconnect.mismatch import Mismatch
from aconnect.montecarlo import MonteCarloResult, monte_carlo
from aconnect.report import build_report, write_report
from aconnect.spec import JobSpec, parse_spec


class ModelError(ValueError):
    """A model file that cannot be used, with what to do instead."""


def load_model(path: str | Path, limits: LoadLimits | None = None) -> keras.Model:
    """Load a ``.keras`` model: inspected first (``aconnect.intake``), then loaded without
    compiling and with Keras' safe mode on. With ``limits`` (files from strangers), it is first
    loaded in a child process under those limits (``aconnect.isolated_load``)."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelError(f"{path}: only the .keras format is accepted (got {path.suffix or 'no '}"
                         " suffix); re-save the model with model.save('model.keras')")
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    try:
        inspect_model_file(path)  # refuse unsafe content before Keras deserialises anything
    except UnsafeFile as err:
        raise ModelError(f"{path}: {err}") from None
    if limits is not None:
        try:
            trial_load(path, limits)
        except LoadRefused as err:
            raise ModelError(f"{path}: {err}") from None
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for unreadable or unsafe files
        raise ModelError(f"{path} could not be loaded as a Keras model: {err}") from None


@dataclass
class Prepared:
    """What the Monte Carlo and report stages need after loading (and hardening)."""

    kind: str
    task: str
    classes: int
    model_name: str
    data_sizes: dict[str, int]
    models: dict[str, str | None]  # role ("baseline", "hardened") -> .keras path, if saved
    conversion: dict | None = None
    history: dict | None = None


def prepare(model_path: str | Path, data_path: str | Path, spec: JobSpec, work: Path | None,
            *, progress=None, should_cancel=None, load_limits: LoadLimits | None = None):
    """Load and check the inputs; for ``harden`` jobs convert and fine-tune, and save the model
    to ``work`` when other processes need it (``None``: kept in memory only); ``load_limits``
    as in ``load_model``. Returns the
    ``Prepared`` record, the loaded models by role, and the data."""
    model = load_model(model_path, load_limits)
    data = load_npz(data_path, need_train=spec.kind == "harden")
    task = check_fits(model, data)
    prepared = Prepared(kind=spec.kind, task=task, classes=int(model.outputs[0].shape[-1] or 1),
                        model_name=model.name, models={"baseline": str(model_path)},
                        data_sizes={"train": len(data.x_train), "test": len(data.x_test),
                                    "val": 0 if data.x_val is None else len(data.x_val)})
    models = {"baseline": model}
    if spec.kind == "harden":
        result = harden(model, data, spec, progress=progress, should_cancel=should_cancel)
        prepared.models["hardened"] = None
        if work is not None:
            work.mkdir(parents=True, exist_ok=True)
            result.model.save(work / "hardened.keras")
            prepared.models["hardened"] = str(work / "hardened.keras")
        prepared.history, prepared.conversion = result.history, result.summary.to_dict()
        models["hardened"] = result.model
    return prepared, models, data


def chip_chunks(spec: JobSpec, roles, chunk: int) -> list[tuple[str, float, int, int]]:
    """``(role, sigma, first_chip, chips)`` pieces that together cover every chip once."""
    samples = spec.validation.samples
    return [(role, sigma, first, min(chunk, samples - first))
            for role in roles for sigma in spec.validation.sigmas
            for first in range(0, samples, chunk)]


def evaluate_chips(model: keras.Model, data: Dataset, spec: JobSpec, classes: int, sigma: float,
                   first_chip: int, chips: int, *, progress=None,
                   should_cancel=None) -> dict[str, list[float]]:
    """Per-chip metrics of chips ``first_chip .. first_chip + chips - 1`` at ``sigma``."""
    v = spec.validation
    top_k = [k for k in v.top_k if k < classes] or [1]  # k >= classes is trivially 100 %

    def report(done: int, total: int) -> None:
        if should_cancel and should_cancel():
            raise Cancelled("Monte Carlo was canceled")
        if progress:
            progress(done, total)

    mismatch = Mismatch(sigma, bias_sigma=sigma, distribution=spec.mismatch.distribution)
    result = monte_carlo(model, data.x_test, data.y_test, mismatch, samples=chips, seed=v.seed,
                         first_chip=first_chip, top_k=top_k, progress=report)
    return {name: values.tolist() for name, values in result.per_chip.items()}


def finish(prepared: Prepared, spec: JobSpec, per_chip: dict[str, dict[float, dict]], out: Path,
           hardened: keras.Model | None = None) -> dict[str, Path]:
    """Write the report and, for ``harden`` jobs, the hardened model and its plain export."""
    sweeps = {role: {sigma: MonteCarloResult(
        mismatch=Mismatch(sigma, bias_sigma=sigma, distribution=spec.mismatch.distribution),
        seed=spec.validation.seed, task=prepared.task,
        per_chip={k: np.asarray(v) for k, v in metrics.items()})
        for sigma, metrics in sorted(by_sigma.items())} for role, by_sigma in per_chip.items()}
    report = build_report(kind=spec.kind, task=prepared.task, spec=spec.model_dump(),
                          model_name=prepared.model_name, data_sizes=prepared.data_sizes,
                          sweeps=sweeps, conversion=prepared.conversion,
                          history=prepared.history)
    written = write_report(report, out)
    if "hardened" in prepared.models:
        hardened = hardened or keras.models.load_model(prepared.models["hardened"])
        for name, to_save in (("hardened.keras", hardened),
                              ("hardened_plain.keras", to_plain_keras(hardened))):
            partial = out / f".{name}.partial.keras"
            to_save.save(partial)
            partial.replace(out / name)
            written[name] = out / name
    return written


def run_job(model_path: str | Path, data_path: str | Path, spec: JobSpec | dict | str | Path,
            out: str | Path, *, progress: Callable[[Progress], Any] | None = None,
            should_cancel: Callable[[], bool] | None = None,
            load_limits: LoadLimits | None = None) -> dict[str, Path]:
    """Run a ``harden`` or ``evaluate`` job in this process; return the files written."""
    spec = parse_spec(spec)
    out = Path(out)
    prepared, models, data = prepare(model_path, data_path, spec, None, progress=progress,
                                     should_cancel=should_cancel, load_limits=load_limits)
    per_chip: dict[str, dict[float, dict]] = {}
    samples, sigmas = spec.validation.samples, spec.validation.sigmas
    for role, model in models.items():
        per_chip[role] = {}
        for i, sigma in enumerate(sigmas):
            def report(done: int, total: int, i=i, role=role) -> None:
                if progress:
                    progress(Progress(f"Monte Carlo {role}", i * samples + done,
                                      len(sigmas) * samples))

            per_chip[role][sigma] = evaluate_chips(model, data, spec, prepared.classes, sigma,
                                                   0, samples, progress=report,
                                                   should_cancel=should_cancel)
    return finish(prepared, spec, per_chip, out, models.get("hardened"))
