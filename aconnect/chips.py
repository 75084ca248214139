"""Model-level chips: one fixed, reproducible draw of every A-Connect layer's masks.

Each layer's seed derives from the chip seed and the layer's name, so a chip is the same after
the model is saved and reloaded, and adding an unrelated layer does not reshuffle the others.
"""

from __future__ import annotations

import zlib
from typing import Iterator

import keras

from aconnect.layers import AConnectLayer
from aconnect.mismatch import Mismatch


def aconnect_layers(model: keras.Model) -> Iterator[AConnectLayer]:
    """Every A-Connect layer of ``model``, nested models included, each once."""
    seen: set[int] = set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, AConnectLayer) and id(layer) not in seen:
            seen.add(id(layer))
            yield layer


def layer_seed(chip_seed: int, layer_name: str) -> int:
    """Seed of one layer's masks on chip ``chip_seed``."""
    return zlib.crc32(f"{chip_seed}/{layer_name}".encode()) & 0x7FFFFFFF


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
    for layer in layers:
        layer.select_chip(layer_seed(seed, layer.name), mismatch)


def clear_chip(model: keras.Model) -> None:
    """Back to nominal weights for every A-Connect layer of ``model``."""
    for layer in aconnect_layers(model):
        layer.clear_chip()
