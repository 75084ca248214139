"""The child process of ``aconnect.isolated_load``: ``python _load_child.py PATH MEMORY_MB CPU_S``.

Run as a script, not as ``-m aconnect...``: importing the package would import TensorFlow
before the limits below are in place. Prints one JSON line; the parent judges it.
"""

import sys

del sys.path[0]  # this folder: its modules must not shadow top-level ones

import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (a killed worker leaves no child)."""
    import ctypes

    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _limit(memory_mb: int, cpu_s: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))  # SIGXCPU, then SIGKILL


def _load(path: str) -> dict:
    import keras

    import aconnect  # noqa: F401  (registers the A-Connect layers)

    model = keras.models.load_model(path, compile=False, safe_mode=True)
    return {"ok": True, "name": model.name, "params": int(model.count_params())}


if __name__ == "__main__":
    _die_with_parent()
    _limit(int(sys.argv[2]), int(sys.argv[3]))
    try:
        result = _load(sys.argv[1])
    except BaseException as err:  # every failure is reported as data; the parent decides
        result = {"ok": False, "error": f"{type(err).__name__}: {err}"[:2000]}
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["ok"] else 1)
