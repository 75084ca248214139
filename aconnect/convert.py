"""``convert``: swap a Keras model's analog layers for their A-Connect counterparts.

Dense, Conv1D, Conv2D and DepthwiseConv2D become A-Connect layers with the same configuration
and weights; every other layer is cloned with its weights. The original model is untouched.
The decisions (what was converted, what stayed digital and why) come from ``plan_conversion``
so callers and reports can show them without converting anything.
"""

from __future__ import annotations

import fnmatch
import inspect
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

import keras

from aconnect.layers import (
    AConnectConv1D,
    AConnectConv2D,
    AConnectDense,
    AConnectDepthwiseConv2D,
    AConnectLayer,
)
from aconnect.mismatch import Mismatch

COUNTERPARTS: dict[type, type] = {
    keras.layers.Dense: AConnectDense,
    keras.layers.Conv1D: AConnectConv1D,
    keras.layers.Conv2D: AConnectConv2D,
    keras.layers.DepthwiseConv2D: AConnectDepthwiseConv2D,
}
# Weighted layers that would sit on an analog array but have no A-Connect counterpart yet.
NO_COUNTERPART = tuple(getattr(keras.layers, name) for name in (
    "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D",
    "SeparableConv2D", "EinsumDense", "Embedding", "LSTM", "GRU", "SimpleRNN",
))
# Config keys of the Keras layers that the A-Connect layers do not take, with the value that
# means "feature not used"; any other value keeps the layer digital.
UNSUPPORTED_KEYS = {"groups": 1, "lora_rank": None, "lora_alpha": None,
                    "quantization_config": None}


@dataclass(frozen=True)
class LayerDecision:
    """What ``convert`` does with one layer."""

    name: str
    class_name: str
    converted: bool
    reason: str
    mismatch: dict[str, Any] | None = None


@dataclass
class ConversionSummary:
    layers: list[LayerDecision] = field(default_factory=list)

    @property
    def converted(self) -> list[LayerDecision]:
        return [d for d in self.layers if d.converted]

    @property
    def digital(self) -> list[LayerDecision]:
        return [d for d in self.layers if not d.converted]

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [asdict(d) for d in self.layers]}

    def __str__(self) -> str:
        lines = [f"{len(self.converted)} layer(s) converted, {len(self.digital)} kept digital"]
        for d in self.layers:
            detail = f"sigma {d.mismatch['sigma']:g}" if d.mismatch else d.reason
            lines.append(f"  {'A-Connect' if d.converted else 'digital  '}  {d.name} "
                         f"({d.class_name}): {detail}")
        return "\n".join(lines)


def _matches(name: str, patterns: Iterable[str] | None) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns or ())


def _override(base: Mismatch, change: Mismatch | Mapping[str, Any] | float) -> Mismatch:
    """``base`` with an override's fields; a new sigma carries the bias along when they agreed."""
    if isinstance(change, Mismatch):
        return change
    change = {"sigma": change} if isinstance(change, (int, float)) else dict(change)
    if "sigma" in change and "bias_sigma" not in change and base.bias_sigma == base.sigma:
        change["bias_sigma"] = change["sigma"]
    return base.replace(**change)


def _walk(model: keras.Model) -> Iterable[keras.layers.Layer]:
    """Layers in model order, nested models expanded, each layer once."""
    seen: set[int] = set()
    for layer in model.layers:
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.Model):
            yield from _walk(layer)
        else:
            yield layer


def _check_model(model: Any) -> None:
    if not isinstance(model, keras.Model):
        raise ValueError(f"model={model!r} is not a Keras model")
    if not isinstance(model, (keras.Sequential, keras.src.models.Functional)):
        raise ValueError(
            f"model {model.name!r} is a subclassed model ({type(model).__name__}); convert() "
            "needs a Sequential or Functional model, whose layer graph it can rebuild. "
            "Build the same network with the functional API, or use the A-Connect layers "
            "directly in your subclass."
        )
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _check_model(layer)


def _decide(layer, mismatch: Mismatch, include, exclude, overrides) -> LayerDecision | None:
    """The decision for an analog-type layer, or ``None`` for layers that are not analog."""
    name, cls = layer.name, type(layer)
    if isinstance(layer, AConnectLayer):
        return LayerDecision(name, cls.__name__, False, "already an A-Connect layer",
                             layer.mismatch.get_config())
    if cls not in COUNTERPARTS:
        if isinstance(layer, NO_COUNTERPART):
            return LayerDecision(name, cls.__name__, False, "no A-Connect counterpart yet")
        if any(isinstance(layer, base) for base in COUNTERPARTS):
            return LayerDecision(name, cls.__name__, False,
                                 f"subclass of {cls.__mro__[1].__name__} with its own behaviour")
        return None
    if include is not None and not _matches(name, include):
        return LayerDecision(name, cls.__name__, False, "not matched by include")
    if _matches(name, exclude):
        return LayerDecision(name, cls.__name__, False, "excluded")
    config = layer.get_config()
    for key, unused in UNSUPPORTED_KEYS.items():
        if config.get(key, unused) != unused:
            return LayerDecision(name, cls.__name__, False,
                                 f"{key}={config[key]!r} is not supported by A-Connect layers")
    if getattr(layer.dtype_policy, "quantization_mode", None):
        return LayerDecision(name, cls.__name__, False, "Keras-quantized layer")
    chosen = mismatch
    for pattern, change in (overrides or {}).items():
        if fnmatch.fnmatchcase(name, pattern):
            chosen = _override(chosen, change)
    return LayerDecision(name, cls.__name__, True, "converted", chosen.get_config())


def _plan(model, mismatch, include, exclude, overrides) -> list[tuple[Any, LayerDecision]]:
    _check_model(model)
    base = Mismatch.coerce(mismatch)
    for pattern, change in (overrides or {}).items():
        try:
            _override(base, change)
        except ValueError as err:
            raise ValueError(f"overrides[{pattern!r}]: {err}") from None
    decisions = ((layer, _decide(layer, base, include, exclude, overrides))
                 for layer in _walk(model))
    return [(layer, decision) for layer, decision in decisions if decision is not None]


def plan_conversion(model: keras.Model, mismatch: Mismatch | Mapping | float | None = None, *,
                    include: Iterable[str] | None = None, exclude: Iterable[str] | None = None,
                    overrides: Mapping[str, Any] | None = None) -> ConversionSummary:
    """What ``convert`` would do with each analog-type layer of ``model`` (nothing is built).

    ``include``/``exclude``: layer-name glob patterns (``"dense_*"``); exclude wins.
    ``overrides``: ``{pattern: Mismatch | dict of fields | sigma}`` applied to matching layers,
    in order; a new ``sigma`` moves ``bias_sigma`` with it when the two were equal.
    """
    plan = _plan(model, mismatch, include, exclude, overrides)
    return ConversionSummary([decision for _, decision in plan])


def _constructor_arguments(cls: type) -> set[str]:
    """Every named constructor argument along ``cls``'s A-Connect base classes."""
    names = {"name", "dtype", "trainable", "activity_regularizer"}
    for base in cls.__mro__:
        if issubclass(base, AConnectLayer):
            names |= set(inspect.signature(base.__init__).parameters)
    return names


def _aconnect_config(layer, counterpart: type, mismatch: dict) -> dict[str, Any]:
    accepted = _constructor_arguments(counterpart)
    config = {k: v for k, v in layer.get_config().items() if k in accepted}
    config["mismatch"] = mismatch
    return config


def convert(model: keras.Model, mismatch: Mismatch | Mapping | float | None = None, *,
            include: Iterable[str] | None = None, exclude: Iterable[str] | None = None,
            overrides: Mapping[str, Any] | None = None) -> keras.Model:
    """A copy of ``model`` whose analog layers are A-Connect layers with the same weights.

    Arguments as in ``plan_conversion``, whose summary lists the decisions. Layers used twice
    stay one shared layer; nested models are converted recursively.
    """
    plan = _plan(model, mismatch, include, exclude, overrides)
    chosen = {id(layer): d.mismatch for layer, d in plan if d.converted}
    pairs: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []

    def clone(layer):
        if id(layer) in chosen:
            counterpart = COUNTERPARTS[type(layer)]
            new = counterpart.from_config(_aconnect_config(layer, counterpart,
                                                           chosen[id(layer)]))
        else:
            try:
                new = layer.__class__.from_config(layer.get_config())
            except Exception as err:  # a custom layer whose config does not rebuild it
                raise ValueError(
                    f"layer {layer.name!r} ({type(layer).__name__}) cannot be copied from its "
                    f"config ({err}); make it serializable (get_config/from_config) or "
                    "register it with keras.saving.register_keras_serializable"
                ) from err
        pairs.append((layer, new))
        return new

    converted = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for old, new in pairs:
        if isinstance(new, AConnectLayer) and not isinstance(old, AConnectLayer):
            new.kernel.assign(old.kernel)
            if new.bias is not None:
                new.bias.assign(old.bias)
        else:
            new.set_weights(old.get_weights())
    return converted
