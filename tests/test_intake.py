"""Hostile and broken uploads, generated here, are refused before anything deserialises them."""

import io
import json
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from aconnect.intake import UnsafeFile, inspect_model_file, inspect_npz
from app.auth import TokenStore
from app.main import create_app
from app.settings import Settings

L = keras.layers
NAMES = {"x_train", "y_train", "x_test", "y_test", "x_val", "y_val"}


@pytest.fixture
def canary(tmp_path):
    return tmp_path / "canary"


def _lambda(canary: Path):
    path = str(canary)
    return L.Lambda(lambda t: (open(path, "w").write("ran"), t)[1], name="evil")


def _good_archive(tmp_path) -> Path:
    model = keras.Sequential([keras.Input((4,)), L.Dense(2, name="d")])
    model.save(tmp_path / "good.keras")
    return tmp_path / "good.keras"


def _rewrite(source: Path, target: Path, config=None, extra=()) -> Path:
    """Copy a .keras archive with a replaced config.json and extra (name, bytes) members."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w",
                                                         zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json" and config is not None:
                data = json.dumps(config).encode()
            out.writestr(info, data)
        for name, data in extra:
            out.writestr(name, data)
    return target


def _config(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def hostile_models(tmp_path: Path, canary: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, fragment of the expected message)."""
    cases = {}
    top = keras.Sequential([keras.Input((4,)), _lambda(canary)])
    top.save(tmp_path / "top.keras")
    cases["lambda at top level"] = (tmp_path / "top.keras", "Lambda 'evil'")

    inp = keras.Input((4,))
    inner = keras.Model(inp, _lambda(canary)(L.Dense(4)(inp)))
    nested = keras.Sequential([keras.Input((4,)), inner, L.Dense(2)])
    nested.save(tmp_path / "nested.keras")
    cases["lambda in a functional inside a sequential"] = (tmp_path / "nested.keras", "Lambda")

    wrapped = keras.Sequential([keras.Input((3, 4)), L.TimeDistributed(_lambda(canary))])
    wrapped.save(tmp_path / "wrapped.keras")
    cases["lambda inside a wrapper"] = (tmp_path / "wrapped.keras", "Lambda")

    good = _good_archive(tmp_path)
    config = _config(good)
    config["compile_config"] = {"loss": {"module": "builtins", "class_name": "function",
                                         "config": "eval", "registered_name": "eval"},
                                "optimizer": "adam"}
    cases["function as a loss in compile_config"] = (
        _rewrite(good, tmp_path / "loss.keras", config), "module 'builtins'")
    config = _config(good)
    config["config"]["layers"][1] = {"module": "os", "class_name": "system",
                                     "config": {"command": f"touch {canary}"},
                                     "registered_name": "system"}
    cases["arbitrary module and function"] = (
        _rewrite(good, tmp_path / "module.keras", config), "module 'os'")
    config = _config(good)
    config["config"]["layers"][1] = {"module": "keras.layers", "class_name": "TFSMLayer",
                                     "config": {"name": "saved", "filepath": "/tmp/x"},
                                     "registered_name": None}
    cases["TFSMLayer"] = (_rewrite(good, tmp_path / "tfsm.keras", config), "TFSMLayer")
    config = _config(good)
    config["config"]["layers"][1]["config"]["activation"] = {
        "module": None, "class_name": "__lambda__", "config": {"code": "ZXZpbA=="},
        "registered_name": None}
    cases["lambda bytecode as an activation"] = (
        _rewrite(good, tmp_path / "bytecode.keras", config), "__lambda__")

    cases["zip bomb"] = (_rewrite(good, tmp_path / "bomb.keras",
                                  extra=[("assets/zeros", b"\0" * (60 * 2**20))]), "zip bomb")
    cases["member with .."] = (_rewrite(good, tmp_path / "dots.keras",
                                        extra=[("../escape", b"x")]), "unsafe path")
    link = zipfile.ZipInfo("assets/link")
    link.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(_rewrite(good, tmp_path / "link.keras"), "a") as archive:
        archive.writestr(link, "/etc/passwd")
    cases["symlink member"] = (tmp_path / "link.keras", "symbolic link")
    cases["extra member"] = (_rewrite(good, tmp_path / "extra.keras",
                                      extra=[("payload.py", b"import os")]), "unexpected")

    with h5py.File(tmp_path / "legacy.h5", "w") as h5:
        h5.attrs["model_config"] = json.dumps({"class_name": "Lambda"})
    cases["legacy h5 with a lambda"] = (tmp_path / "legacy.h5", "legacy HDF5")
    blob = good.read_bytes()
    (tmp_path / "truncated.keras").write_bytes(blob[: len(blob) // 2])
    cases["truncated archive"] = (tmp_path / "truncated.keras", "damaged")
    (tmp_path / "magic.keras").write_bytes(b"GIF89a" + blob)
    cases["wrong magic"] = (tmp_path / "magic.keras", "not a .keras file")

    with h5py.File(tmp_path / "weights.h5", "w") as weights:
        weights["outside"] = h5py.ExternalLink("/etc/secret.h5", "/data")
    cases["hdf5 external link"] = (_rewrite(good, tmp_path / "extlink.keras", extra=[]),
                                   "external link")
    _replace_member(tmp_path / "extlink.keras", "model.weights.h5",
                    (tmp_path / "weights.h5").read_bytes())
    canary.unlink(missing_ok=True)  # building the Lambda models ran them once, here
    return cases


def _replace_member(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as archive:
        members = [(i, archive.read(i)) for i in archive.infolist() if i.filename != name]
    with zipfile.ZipFile(path, "w") as archive:
        for info, content in members:
            archive.writestr(info, content)
        archive.writestr(name, data)


def hostile_data(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    cases = {}
    np.savez(tmp_path / "objects.npz", x_train=np.array([{"a": 1}], dtype=object),
             y_train=[0], x_test=np.zeros((1, 4)), y_test=[0])
    cases["object array"] = (tmp_path / "objects.npz", "object arrays would unpickle")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**12,)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("x_test.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + b"\0" * 64)
        archive.writestr("y_test.npy", b"")
    cases["header claiming 10^12 elements"] = (tmp_path / "huge.npz", "claims 1000000000000")
    np.savez(tmp_path / "names.npz", x_test=np.zeros(2), y_test=[0, 1], evil=np.zeros(1))
    cases["unexpected member"] = (tmp_path / "names.npz", "unexpected member 'evil.npy'")
    (tmp_path / "fake.npz").write_bytes(b"\x93NUMPY not a zip")
    cases["wrong magic"] = (tmp_path / "fake.npz", "not a .npz file")
    return cases


def test_every_hostile_model_is_refused_and_nothing_ran(tmp_path, canary):
    for name, (path, fragment) in hostile_models(tmp_path, canary).items():
        with pytest.raises(UnsafeFile) as err:
            inspect_model_file(path)
        assert fragment in str(err.value), (name, str(err.value))
    assert not canary.exists()


def test_every_hostile_data_file_is_refused(tmp_path):
    for name, (path, fragment) in hostile_data(tmp_path).items():
        with pytest.raises(UnsafeFile) as err:
            inspect_npz(path, 2**30, NAMES)
        assert fragment in str(err.value), (name, str(err.value))


def test_real_models_and_data_pass(tmp_path):
    inspect_model_file(_good_archive(tmp_path))
    np.savez_compressed(tmp_path / "ok.npz", x_train=np.zeros((3, 4), "float32"),
                        y_train=np.array([0, 1, 1]), x_test=np.ones((2, 4)), y_test=[True, False])
    inspect_npz(tmp_path / "ok.npz", 2**20, NAMES)


def test_the_api_refuses_them_with_422_and_leaves_nothing(tmp_path, canary):
    settings = Settings(data_dir=tmp_path / "data")
    token = TokenStore(settings.tokens_file).create("eve")
    good_model = _good_archive(tmp_path)
    np.savez(tmp_path / "good.npz", x_train=np.zeros((4, 4)), y_train=[0, 1, 0, 1],
             x_test=np.zeros((2, 4)), y_test=[0, 1])
    (tmp_path / "m").mkdir()
    uploads = [(path, tmp_path / "good.npz", fragment)
               for path, fragment in hostile_models(tmp_path / "m", canary).values()]
    uploads += [(good_model, path, fragment)
                for path, fragment in hostile_data(tmp_path).values()]
    spec = json.dumps({"kind": "evaluate"})
    with TestClient(create_app(settings, start_workers=False)) as client:
        for model, data, fragment in uploads:
            with open(model, "rb") as m, open(data, "rb") as d:
                response = client.post("/v1/jobs", headers={"Authorization": f"Bearer {token}"},
                                       data={"spec": spec},
                                       files={"model": ("model.keras", m), "data": ("d.npz", d)})
            assert response.status_code == 422, (model.name, data.name, response.text)
            assert fragment in response.json()["detail"]
        assert list(settings.jobs_dir.iterdir()) == []
        assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {token}"}).json()[
            "total"] == 0
    assert not canary.exists()
