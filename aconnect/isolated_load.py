"""Trial-load a model file in a throwaway child process under memory, CPU-time and wall limits.

Inspection (``aconnect.intake``) proves a file names only allow-listed Keras objects, but an
allow-listed layer can still ask for a 100 GB kernel, and a Keras loader bug could still hang
or crash. So a service loads an uploaded model first in a child process that can be killed:
capped address space (``RLIMIT_AS``), capped CPU seconds (``RLIMIT_CPU``), killed with its
parent and after a wall-clock timeout. Only a file that loads there is loaded by the worker
itself.

The child is ``aconnect/_load_child.py``, run as a script so that the limits are in place
before anything (TensorFlow included) is imported.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CHILD = Path(__file__).with_name("_load_child.py")
_MEMORY_SIGNS = ("MemoryError", "ResourceExhaustedError", "OOM when allocating",
                 "std::bad_alloc", "Cannot allocate memory")


@dataclass(frozen=True)
class LoadLimits:
    """Limits for the trial load. TensorFlow alone needs ~1.7 GB of address space."""

    memory_mb: int = 4096
    cpu_s: int = 120
    timeout_s: float = 180.0

    def __post_init__(self) -> None:
        for name in ("memory_mb", "cpu_s", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"LoadLimits.{name} must be > 0, got {getattr(self, name)!r}")


class LoadRefused(ValueError):
    """The model did not load within the limits; the message says which and what to do."""


def trial_load(path: str | Path, limits: LoadLimits) -> dict:
    """Load ``path`` in a limited child process; return its facts (name, parameter count) or
    raise ``LoadRefused`` naming the limit it broke or the loader's error."""
    command = [sys.executable, str(CHILD), str(path), str(limits.memory_mb), str(limits.cpu_s)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env,
                              timeout=limits.timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise LoadRefused(f"the model did not finish loading within {limits.timeout_s:g} s "
                          "(wall-clock limit); it was stopped") from None
    answer = _last_json(done.stdout)
    if done.returncode == 0 and answer.get("ok"):
        return answer
    if done.returncode < 0:  # killed by a signal: the child printed nothing
        killed_by = signal.Signals(-done.returncode)
        if killed_by in (signal.SIGXCPU, signal.SIGKILL):
            raise LoadRefused(f"loading the model used more than {limits.cpu_s} s of CPU "
                              "time (limit); it was stopped")
        if any(sign in done.stderr for sign in _MEMORY_SIGNS):
            raise _out_of_memory(limits)
        raise LoadRefused(f"the model loader crashed ({killed_by.name})")
    error = answer.get("error") or done.stderr.strip()[-500:] or "no message"
    if any(sign in error for sign in _MEMORY_SIGNS):
        raise _out_of_memory(limits)
    raise LoadRefused(f"could not be loaded as a Keras model: {error}")


def _out_of_memory(limits: LoadLimits) -> LoadRefused:
    return LoadRefused(f"loading the model needs more than {limits.memory_mb} MiB of memory "
                       "(limit); check the layer sizes in its config")


def _last_json(stdout: str) -> dict:
    for line in reversed(stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return {}
