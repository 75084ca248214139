"""aconnect: harden Keras models against analog-hardware mismatch with A-Connect training.

Importing this package registers the A-Connect layers with Keras, so
``keras.models.load_model`` restores models that use them.
"""

from aconnect.chips import aconnect_layers, clear_chip, select_chip
from aconnect.convert import ConversionSummary, convert, plan_conversion
from aconnect.layers import (
    AConnectConv1D,
    AConnectConv2D,
    AConnectDense,
    AConnectDepthwiseConv2D,
    AConnectLayer,
)
from aconnect.data import DataError, Dataset, load_npz
from aconnect.harden import Cancelled, HardenResult, Progress, harden
from aconnect.isolated_load import LoadLimits, LoadRefused, trial_load
from aconnect.mismatch import Mismatch
from aconnect.montecarlo import MonteCarloResult, monte_carlo, sigma_sweep, statistics
from aconnect.spec import JobSpec, SpecError, parse_spec

__version__ = "0.1.0"

__all__ = [
    "Mismatch",
    "AConnectLayer",
    "AConnectDense",
    "AConnectConv1D",
    "AConnectConv2D",
    "AConnectDepthwiseConv2D",
    "select_chip",
    "clear_chip",
    "aconnect_layers",
    "convert",
    "plan_conversion",
    "ConversionSummary",
    "monte_carlo",
    "sigma_sweep",
    "statistics",
    "MonteCarloResult",
    "harden",
    "HardenResult",
    "Progress",
    "Cancelled",
    "LoadLimits",
    "LoadRefused",
    "trial_load",
    "Dataset",
    "DataError",
    "load_npz",
    "JobSpec",
    "SpecError",
    "parse_spec",
    "__version__",
]
