"""The whole job: load, (convert + harden), Monte Carlo sweep, report and exports.

The command line runs it in-process; the service's workers will run the same function.
Outputs are written only after every stage succeeded, each file atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import keras

from aconnect.data import check_fits, load_npz
from aconnect.export import to_plain_keras
from aconnect.harden import Progress, harden
from aconnect.mismatch import Mismatch
from aconnect.montecarlo import MonteCarloResult, monte_carlo
from aconnect.report import build_report, write_report
from aconnect.spec import JobSpec, parse_spec


class ModelError(ValueError):
    """A model file that cannot be used, with what to do instead."""


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` model without compiling it and with Keras' safe mode on."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelError(f"{path}: only the .keras format is accepted (got {path.suffix or 'no '}"
                         " suffix); re-save the model with model.save('model.keras')")
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for unreadable or unsafe files
        raise ModelError(f"{path} could not be loaded as a Keras model: {err}") from None


def sweep(model: keras.Model, x, y, spec: JobSpec, classes: int, name: str,
          progress: Callable[[Progress], Any] | None) -> dict[float, MonteCarloResult]:
    """Monte Carlo of ``model`` at each of the spec's sigmas."""
    v = spec.validation
    top_k = [k for k in v.top_k if k < classes] or [1]  # k >= classes is trivially 100 %
    base = spec.mismatch.to_mismatch()
    results = {}
    for i, sigma in enumerate(v.sigmas):
        stage = f"Monte Carlo {name}"

        def report(done: int, total: int, i=i, stage=stage) -> None:
            if progress:
                progress(Progress(stage, i * v.samples + done, len(v.sigmas) * v.samples))

        mismatch = Mismatch(sigma, bias_sigma=sigma, distribution=base.distribution)
        results[sigma] = monte_carlo(model, x, y, mismatch, samples=v.samples, seed=v.seed,
                                     top_k=top_k, progress=report)
    return results


def run_job(model_path: str | Path, data_path: str | Path, spec: JobSpec | dict | str | Path,
            out: str | Path, *, progress: Callable[[Progress], Any] | None = None,
            should_cancel: Callable[[], bool] | None = None) -> dict[str, Path]:
    """Run a ``harden`` or ``evaluate`` job; return the files written, by name."""
    spec = parse_spec(spec)
    out = Path(out)
    model = load_model(model_path)
    data = load_npz(data_path, need_train=spec.kind == "harden")
    task = check_fits(model, data)
    classes = int(model.outputs[0].shape[-1] or 1)
    sizes = {"train": len(data.x_train), "test": len(data.x_test),
             "val": 0 if data.x_val is None else len(data.x_val)}

    conversion = history = hardened = None
    if spec.kind == "harden":
        result = harden(model, data, spec, progress=progress, should_cancel=should_cancel)
        hardened, history, conversion = result.model, result.history, result.summary.to_dict()
    sweeps = {"baseline": sweep(model, data.x_test, data.y_test, spec, classes, "baseline",
                                progress)}
    if hardened is not None:
        sweeps["hardened"] = sweep(hardened, data.x_test, data.y_test, spec, classes,
                                   "hardened", progress)
    report = build_report(kind=spec.kind, task=task, spec=spec.model_dump(),
                          model_name=model.name, data_sizes=sizes, sweeps=sweeps,
                          conversion=conversion, history=history)
    written = write_report(report, out)
    if hardened is not None:
        for name, to_save in (("hardened.keras", hardened),
                              ("hardened_plain.keras", to_plain_keras(hardened))):
            partial = out / f".{name}.partial.keras"
            to_save.save(partial)
            partial.replace(out / name)
            written[name] = out / name
    return written
