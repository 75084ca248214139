"""Model-level chips: one fixed, reproducible draw of every A-Connect layer's masks.

One random draw per chip covers every A-Connect layer in model order, so a chip is one seed:
the same after the model is saved and reloaded, and the same for a baseline model and its
converted copy.
"""

from __future__ import annotations

import zlib
from typing import Iterator

import keras

from aconnect.chip_batch import draw_chip_masks
from aconnect.layers import AConnectLayer
from aconnect.mismatch import Mismatch


def aconnect_layers(model: keras.Model) -> Iterator[AConnectLayer]:
    """Every A-Connect layer of ``model``, nested models included, each once."""
    seen: set[int] = set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, AConnectLayer) and id(layer) not in seen:
            seen.add(id(layer))
            yield layer


def chip_seed(run_seed: int, chip: int) -> int:
    """Seed of chip number ``chip`` in a Monte Carlo run seeded with ``run_seed``."""
    return zlib.crc32(f"run/{run_seed}/chip/{chip}".encode()) & 0x7FFFFFFF


def select_chip(model: keras.Model, seed: int,
                mismatch: Mismatch | dict | float | None = None) -> None:
    """Put ``model`` on simulated chip ``seed``: inference then uses that chip's masks.

    ``mismatch`` (optional) evaluates at another sigma than each layer was trained with.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r} must be an integer")
    layers = list(aconnect_layers(model))
    if not layers:
        raise ValueError(f"model {model.name!r} has no A-Connect layers to put on a chip")
    for layer, masks in zip(layers, draw_chip_masks(layers, [seed], mismatch)):
        layer.install_chip(masks)


def clear_chip(model: keras.Model) -> None:
    """Back to nominal weights for every A-Connect layer of ``model``."""
    for layer in aconnect_layers(model):
        layer.clear_chip()
