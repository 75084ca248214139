"""Chips as a batch dimension: one forward pass evaluates many simulated chips.

Inside ``with chip_batch(masks, examples=n):`` every A-Connect layer that has an entry in
``masks`` produces chip-major outputs: ``chips`` contiguous groups of ``n`` examples (all of chip
0, then chip 1, ...), chip ``c``'s masks applied to group ``c``. Its input may already be
chip-major (``chips * n`` examples) or still shared by all chips (``n`` examples): a shared
input is multiplied by every chip's weights in one wide matmul or convolution, so the model's
input never has to be copied once per chip. Monte Carlo uses this so the matrix units see many
chips per call instead of one small batch at a time.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from keras import ops

from aconnect.masks import masks_from_normals, normals_from_bits, random_bits
from aconnect.mismatch import Mismatch


@dataclass(frozen=True)
class ChipMasks:
    """Per-chip masks of one layer: ``kernel`` is ``(chips, *kernel_shape)``."""

    kernel: Any
    bias: Any | None

    @property
    def chips(self) -> int:
        return int(self.kernel.shape[0])


_ACTIVE: ContextVar[tuple[Mapping[int, ChipMasks], int]] = ContextVar(
    "aconnect_chip_batch", default=({}, 0))


@contextmanager
def chip_batch(masks: Mapping[Any, ChipMasks], examples: int) -> Iterator[None]:
    """Evaluate the given layers on ``examples`` examples per chip, chip-major."""
    token = _ACTIVE.set(({id(layer): m for layer, m in masks.items()}, examples))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def masks_for(layer: Any) -> tuple[ChipMasks, int] | None:
    """``(masks, examples per chip)`` when ``layer`` runs in a chip batch, else ``None``."""
    masks, examples = _ACTIVE.get()
    found = masks.get(id(layer))
    return None if found is None else (found, examples)


def to_chip_major(y, chips: int, examples: int):
    """``(n, *rest, chips * F)`` outputs of a shared input -> ``(chips * n, *rest, F)``."""
    shape = tuple(y.shape)
    rank = len(shape)
    y = ops.reshape(y, shape[:-1] + (chips, -1))  # (n, *rest, C, F)
    y = ops.transpose(y, (rank - 1,) + tuple(range(rank - 1)) + (rank,))  # (C, n, *rest, F)
    return ops.reshape(y, (chips * examples,) + shape[1:-1] + (-1,))


def draw_chip_masks(layers: list, seeds: list[int], mismatch=None) -> list[ChipMasks]:
    """Each layer's masks on the chips ``seeds`` (one entry per layer, chips stacked first).

    One random draw per chip covers every layer, in the order given, so a chip is a single
    seed. ``mismatch`` evaluates at another sigma than the layers were trained with; lognormal
    masks are rescaled so their mean matches training (``Mismatch.compensation``).
    """
    sizes = [(math.prod(layer.kernel.shape),
              0 if layer.bias is None else math.prod(layer.bias.shape)) for layer in layers]
    total = sum(k + b for k, b in sizes)
    normals = normals_from_bits(ops.stack([random_bits((total + 1) // 2, s) for s in seeds]))
    chips = len(seeds)
    drawn, offset = [], 0
    for layer, (k_size, b_size) in zip(layers, sizes):
        evaluation = layer.mismatch if mismatch is None else Mismatch.coerce(mismatch)
        w_factor, b_factor = evaluation.compensation(layer.mismatch)
        part = normals[:, offset:offset + k_size]
        kernel = masks_from_normals(ops.reshape(part, (chips,) + tuple(layer.kernel.shape)),
                                    evaluation.sigma, evaluation.distribution)
        kernel = kernel if w_factor == 1.0 else kernel * w_factor
        offset += k_size
        bias = None
        if b_size:
            part = ops.reshape(normals[:, offset:offset + b_size],
                               (chips,) + tuple(layer.bias.shape))
            bias = masks_from_normals(part, evaluation.bias_sigma, evaluation.distribution)
            bias = bias if b_factor == 1.0 else bias * b_factor
            offset += b_size
        drawn.append(ChipMasks(kernel, bias))
    return drawn
