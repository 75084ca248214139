"""Safe intake: inspect uploaded model and data files before anything deserialises them.

A ``.keras`` file is a zip archive whose ``config.json`` tells Keras which classes and functions
to build; a hostile one can name a Lambda's bytecode, an arbitrary module, or a TensorFlow
SavedModel. So the archive is opened with caps (members, sizes, compression ratio, paths), the
config is walked as plain JSON against an allow-list of built-in Keras objects (and the A-Connect
layers), and the weights file is checked for HDF5 external links, external storage and virtual
datasets. ``.npz`` data is checked member by member from the ``.npy`` headers alone: names,
dtypes (numbers and booleans only), and shape x itemsize against a limit, before any array is
allocated. Legacy ``.h5`` model files are refused: their loader has no safe mode.
"""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_MEMBERS = 64
MAX_RATIO = 200  # uncompressed / compressed, per member
MAX_CONFIG_BYTES = 16 * 2**20
MODEL_MEMBERS = {"metadata.json", "config.json", "model.weights.h5"}
DENIED = {"Lambda", "TFSMLayer", "__lambda__"}
SPECIAL = {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__python_tuple__",
           "__typespec__"}
NAMESPACES = ("layers", "initializers", "regularizers", "constraints", "activations", "losses",
              "metrics", "optimizers", "optimizers.schedules")
KERAS_TOP = {"Sequential", "Functional", "Model", "DTypePolicy", "FloatDTypePolicy"}
MODEL_MODULES = {"keras", "keras.models", "keras.src.models.functional",
                 "keras.src.models.sequential", "keras.src.models.model"}
ACONNECT = {"AConnectDense", "AConnectConv1D", "AConnectConv2D", "AConnectDepthwiseConv2D"}


class UnsafeFile(ValueError):
    """An uploaded file that is refused; the message names what and why."""


def _magic(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(8)


def _check_members(archive: zipfile.ZipFile, max_total: int, what: str) -> None:
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise UnsafeFile(f"{what}: {len(members)} archive members (limit {MAX_MEMBERS})")
    total = 0
    for info in members:
        path = PurePosixPath(info.filename)
        if info.filename.startswith("/") or "\\" in info.filename or ".." in path.parts:
            raise UnsafeFile(f"{what}: archive member {info.filename!r} has an unsafe path")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeFile(f"{what}: archive member {info.filename!r} is a symbolic link")
        total += info.file_size
        if info.file_size > max_total or total > max_total:
            raise UnsafeFile(f"{what}: unpacks to more than the limit of {max_total} bytes")
        if info.file_size > 2**20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise UnsafeFile(f"{what}: member {info.filename!r} is compressed more than "
                             f"{MAX_RATIO}:1 (a zip bomb?)")


def _allowed_names(namespace: str) -> set[str]:
    import keras

    module = keras
    for part in namespace.split("."):
        module = getattr(module, part)
    return {name for name in dir(module) if not name.startswith("_")} - DENIED


def _check_object(node: dict, where: str) -> None:
    cls, module = node.get("class_name"), node.get("module")
    name = (node.get("config") or {}).get("name") if isinstance(node.get("config"), dict) else None
    label = f"{cls} {name!r}" if name else str(cls)
    if cls in DENIED:
        raise UnsafeFile(f"model: {label} at {where} is not allowed (it can run arbitrary code)")
    if cls in SPECIAL and module is None:
        return
    registered = node.get("registered_name")
    if isinstance(module, str) and module.startswith("aconnect.layers.") and cls in ACONNECT:
        if registered not in (None, f"aconnect>{cls}"):
            raise UnsafeFile(f"model: {label} at {where} has registered name {registered!r}")
        return
    if module in MODEL_MODULES and cls in KERAS_TOP:
        return
    namespace = module.removeprefix("keras.") if isinstance(module, str) and module.startswith(
        "keras.") else None
    if namespace in NAMESPACES and (cls in _allowed_names(namespace) or (
            cls == "function" and node.get("config") in _allowed_names(namespace))):
        if registered is None or registered in (cls, node.get("config")):
            return
    raise UnsafeFile(f"model: {label} from module {module!r} at {where} is not a built-in Keras "
                     "or A-Connect object; custom objects are not accepted")


def check_config(config: Any, where: str = "config") -> None:
    """Walk a Keras config (as JSON data) and refuse anything off the allow-list."""
    if isinstance(config, dict):
        if "class_name" in config:
            _check_object(config, where)
        for key, value in config.items():
            check_config(value, f"{where}.{key}")
    elif isinstance(config, list):
        for i, value in enumerate(config):
            check_config(value, f"{where}[{i}]")


def _check_hdf5(path_or_file, what: str) -> None:
    import h5py

    def walk(group, prefix: str) -> None:
        for key in group:
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise UnsafeFile(f"{what}: HDF5 external link at {prefix}{key}")
            if isinstance(link, h5py.SoftLink):
                continue
            item = group[key]
            if isinstance(item, h5py.Group):
                walk(item, f"{prefix}{key}/")
            elif item.is_virtual or item.external:
                raise UnsafeFile(f"{what}: HDF5 dataset {prefix}{key} reads other files")

    with h5py.File(path_or_file, "r") as weights:
        walk(weights, "/")


def inspect_model_file(path: str | Path, max_bytes: int = 2 * 2**30) -> None:
    """Refuse a model file unless it is a plain ``.keras`` archive of built-in objects."""
    path = Path(path)
    magic = _magic(path)
    if magic.startswith(HDF5_MAGIC):
        raise UnsafeFile("model: legacy HDF5 (.h5) models are not accepted (their loader has "
                         "no safe mode); re-save the model with model.save('model.keras')")
    if not magic.startswith(ZIP_MAGIC):
        raise UnsafeFile("model: not a .keras file (a .keras file is a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            _check_members(archive, max_bytes, "model")
            names = set(archive.namelist())
            unexpected = sorted(n for n in names - MODEL_MEMBERS if not n.startswith("assets/"))
            if unexpected or "config.json" not in names:
                raise UnsafeFile(f"model: unexpected archive contents {unexpected or sorted(names)}"
                                 f"; a .keras file holds {sorted(MODEL_MEMBERS)}")
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise UnsafeFile(f"model: config.json is larger than {MAX_CONFIG_BYTES} bytes")
            config = json.loads(archive.read("config.json"))
            check_config(config)
            if "model.weights.h5" in names:
                with archive.open("model.weights.h5") as weights:
                    _check_hdf5(weights, "model weights")
    except zipfile.BadZipFile as err:
        raise UnsafeFile(f"model: damaged .keras archive ({err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UnsafeFile("model: config.json is not valid JSON") from None
    except OSError as err:
        raise UnsafeFile(f"model: unreadable archive member ({err})") from None


def inspect_npz(path: str | Path, max_bytes: int, names: set[str]) -> None:
    """Refuse a ``.npz`` unless every member is an expected, numeric array within the limit."""
    path = Path(path)
    if not _magic(path).startswith(ZIP_MAGIC):
        raise UnsafeFile("data: not a .npz file (a .npz file is a zip archive written by "
                         "numpy.savez)")
    try:
        with zipfile.ZipFile(path) as archive:
            _check_members(archive, max_bytes, "data")
            total = 0
            for info in archive.infolist():
                member = info.filename.removesuffix(".npy")
                if not info.filename.endswith(".npy") or member not in names:
                    raise UnsafeFile(f"data: unexpected member {info.filename!r}; allowed: "
                                     f"{sorted(names)}")
                with archive.open(info) as handle:
                    version = np.lib.format.read_magic(handle)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(handle)
                if dtype.hasobject or dtype.kind not in "biuf":
                    raise UnsafeFile(f"data: array {member!r} has dtype {dtype}; only numbers "
                                     "and booleans are accepted (object arrays would unpickle)")
                size = int(np.prod(shape, dtype=object)) * dtype.itemsize
                total += size
                if total > max_bytes:
                    raise UnsafeFile(f"data: array {member!r} claims {int(np.prod(shape, dtype=object))}"
                                     f" elements of shape {tuple(shape)}, over the limit of "
                                     f"{max_bytes} bytes")
    except zipfile.BadZipFile as err:
        raise UnsafeFile(f"data: damaged .npz archive ({err})") from None
    except ValueError as err:  # numpy's header parser
        if isinstance(err, UnsafeFile):
            raise
        raise UnsafeFile(f"data: bad .npy header ({err})") from None
