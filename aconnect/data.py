"""Data sets for hardening and evaluation: ``.npz`` files checked before any work starts.

A data file holds ``x_train``, ``y_train``, ``x_test`` and ``y_test`` (``x_val``/``y_val``
optional): inputs with the example axis first, labels as class indices (classification) or
as targets shaped like the model's output (regression). Object arrays are refused (loading
them would unpickle), as are NaN/inf, mismatched lengths, shapes the model cannot take and
labels outside the model's classes; every member's header is checked before it is read.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from aconnect.intake import UnsafeFile, inspect_npz
from aconnect.targets import is_one_hot

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("x_val", "y_val")


class DataError(ValueError):
    """A data file that cannot be used, with what to fix."""


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @property
    def validation(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None if self.x_val is None else (self.x_val, self.y_val)


def load_npz(path: str | Path, *, need_train: bool = True, max_bytes: int = 4 * 2**30
             ) -> Dataset:
    """Read and check a data file (``need_train=False``: only the test arrays are required).

    Every member's header is checked (``aconnect.intake.inspect_npz``) before any array is
    read, so a file cannot make us allocate more than ``max_bytes`` or unpickle anything.
    """
    path = Path(path)
    required = REQUIRED if need_train else ("x_test", "y_test")
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path} is not a readable .npz file (not a zip archive); write it "
                        "with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
    try:
        inspect_npz(path, max_bytes, set(REQUIRED + OPTIONAL))
    except UnsafeFile as err:
        raise DataError(f"{path}: {err}") from None
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise DataError(f"{path} is not a readable .npz file ({err})") from None
    with archive:
        missing = [name for name in required if name not in archive.files]
        if missing:
            raise DataError(f"{path} lacks {missing}; it needs {list(required)} "
                            f"(and optionally {list(OPTIONAL)}); found {archive.files}")
        arrays = {}
        for name in REQUIRED + OPTIONAL:
            if name not in archive.files:
                continue
            arrays[name] = archive[name]
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise DataError(f"{path}: x_val and y_val come together; found only one of them")
    for name, array in arrays.items():
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise DataError(f"{path}: array {name!r} contains NaN or inf values")
        if array.ndim == 0:
            raise DataError(f"{path}: array {name!r} is a scalar; the first axis must be examples")
    for part in ("train", "test", "val"):
        if f"x_{part}" in arrays and len(arrays[f"x_{part}"]) != len(arrays[f"y_{part}"]):
            raise DataError(f"{path}: x_{part} has {len(arrays[f'x_{part}'])} examples but "
                            f"y_{part} has {len(arrays[f'y_{part}'])}")
        if f"x_{part}" in arrays and len(arrays[f"x_{part}"]) == 0:
            raise DataError(f"{path}: x_{part} has no examples")
    empty = np.zeros((0,), "float32")
    return Dataset(arrays.get("x_train", empty), arrays.get("y_train", empty),
                   arrays["x_test"], arrays["y_test"], arrays.get("x_val"), arrays.get("y_val"))


def check_fits(model: keras.Model, data: Dataset) -> str:
    """Check that ``model`` can take ``data``; return the task (classification/regression)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise DataError(f"model {model.name!r} has {len(model.inputs)} inputs and "
                        f"{len(model.outputs)} outputs; data files describe one of each")
    expected = tuple(model.inputs[0].shape[1:])
    output = tuple(model.outputs[0].shape[1:])
    parts = [("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)]
    if data.validation is not None:
        parts.append(("val", data.x_val, data.y_val))
    task = None
    for part, x, y in parts:
        if len(x) == 0:
            continue
        shape = tuple(x.shape[1:])
        if len(shape) != len(expected) or any(e is not None and e != s
                                               for e, s in zip(expected, shape)):
            raise DataError(f"x_{part} examples have shape {shape}; the model takes "
                            f"{tuple('any' if e is None else e for e in expected)}")
        classes = output[-1] if output else 1
        if np.issubdtype(y.dtype, np.integer) and y.ndim == 1 and classes and classes > 1:
            if y.min() < 0 or y.max() >= classes:
                raise DataError(f"y_{part} has labels in [{y.min()}, {y.max()}] but the model "
                                f"has {classes} outputs (labels 0..{classes - 1})")
            kind = "classification"
        elif tuple(y.shape[1:]) == output or (y.ndim == 1 and output in ((1,), ())):
            kind = "classification" if is_one_hot(y) else "regression"
        else:
            raise DataError(f"y_{part} has shape {tuple(y.shape)}; expected class indices of "
                            f"shape ({len(y)},) or targets of shape ({len(y)}, "
                            f"{', '.join(map(str, output))})")
        if task is not None and kind != task:
            raise DataError(f"y_{part} looks like {kind} targets but earlier labels looked "
                            f"like {task}")
        task = kind
    return task or "classification"
