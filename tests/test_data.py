"""Data files: every bad input is refused with what to fix, before any training."""

import keras
import numpy as np
import pytest

from aconnect import DataError, load_npz
from aconnect.data import check_fits


def _model(outputs=3):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(outputs)])


def _arrays(rng, n=20):
    return {"x_train": rng.normal(size=(n, 4)).astype("float32"),
            "y_train": rng.integers(0, 3, n), "x_test": rng.normal(size=(8, 4)),
            "y_test": rng.integers(0, 3, 8)}


def _save(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def test_a_good_file_loads_and_fits(rng, tmp_path):
    data = load_npz(_save(tmp_path, **_arrays(rng), x_val=np.zeros((2, 4)), y_val=[0, 1]))
    assert data.x_train.shape == (20, 4) and data.validation[0].shape == (2, 4)
    assert check_fits(_model(), data) == "classification"
    regression = load_npz(_save(tmp_path, **{**_arrays(rng), "y_train": rng.normal(size=(20, 3)),
                                             "y_test": rng.normal(size=(8, 3))}))
    assert check_fits(_model(), regression) == "regression"


@pytest.mark.parametrize("change, fragment", [
    (lambda a: a.pop("y_test"), "lacks ['y_test']"),
    (lambda a: a.update(y_train=a["y_train"][:-1]), "x_train has 20 examples but y_train has 19"),
    (lambda a: a.update(x_test=np.full((8, 4), np.nan)), "'x_test' contains NaN or inf"),
    (lambda a: a.update(x_train=np.array([[1, "a"]] * 20, dtype=object)), "object arrays would unpickle"),
    (lambda a: a.update(x_val=np.zeros((2, 4))), "x_val and y_val come together"),
    (lambda a: a.update(x_train=np.array(["a"] * 20)), "dtype <U1"),
    (lambda a: a.update(x_test=np.zeros((0, 4)), y_test=np.zeros((0,), int)), "x_test has no"),
])
def test_bad_files_are_refused(rng, tmp_path, change, fragment):
    arrays = _arrays(rng)
    change(arrays)
    with pytest.raises(DataError) as err:
        load_npz(_save(tmp_path, **arrays))
    assert fragment in str(err.value)


@pytest.mark.parametrize("change, fragment", [
    (lambda a: a.update(x_train=np.zeros((20, 5))), "shape (5,); the model takes (4,)"),
    (lambda a: a.update(y_test=np.array([0, 1, 2, 3, 0, 1, 2, 0])), "labels in [0, 3]"),
    (lambda a: a.update(y_test=np.full(8, -1)), "labels in [-1, -1]"),
    (lambda a: a.update(y_train=np.zeros((20, 2))), "y_train has shape (20, 2)"),
])
def test_data_the_model_cannot_take_is_refused(rng, tmp_path, change, fragment):
    arrays = _arrays(rng)
    change(arrays)
    with pytest.raises(DataError) as err:
        check_fits(_model(), load_npz(_save(tmp_path, **arrays)))
    assert fragment in str(err.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(bad)
