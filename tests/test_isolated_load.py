"""Trial loads in a limited child process: what loads passes, what breaks a limit is refused."""

import json
import signal
import subprocess
import sys
import time
import zipfile

import keras
import pytest

from aconnect.isolated_load import CHILD, LoadLimits, LoadRefused, trial_load
from aconnect.pipeline import ModelError, load_model
from service_helpers import alive


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("load") / "small.keras"
    keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, name="out")],
                     name="small").save(path)
    return path


def _with_units(source, target, units):
    """A copy of ``source`` whose last Dense layer asks for ``units`` outputs: allow-listed,
    tiny on disk, and a huge kernel once built."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][-1]["config"]["units"] = units
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)
    return target


def test_a_model_that_loads_within_the_limits_passes(small):
    facts = trial_load(small, LoadLimits())
    assert facts == {"ok": True, "name": "small", "params": 650}


def test_a_config_asking_for_a_huge_kernel_breaks_the_memory_limit(small, tmp_path):
    huge = _with_units(small, tmp_path / "huge.keras", 20_000_000)  # 64 x 2e7 floats = 5 GB
    with pytest.raises(LoadRefused, match="more than 2500 MiB of memory"):
        trial_load(huge, LoadLimits(memory_mb=2500))


def test_cpu_time_and_wall_clock_limits_stop_the_loader(small):
    with pytest.raises(LoadRefused, match="more than 1 s of CPU time"):
        trial_load(small, LoadLimits(cpu_s=1))  # importing TensorFlow alone takes longer
    started = time.monotonic()
    with pytest.raises(LoadRefused, match="within 0.5 s"):
        trial_load(small, LoadLimits(timeout_s=0.5))
    assert time.monotonic() - started < 5


def test_a_broken_file_is_refused_with_the_loader_message(tmp_path):
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(LoadRefused, match="could not be loaded as a Keras model"):
        trial_load(broken, LoadLimits())


def test_load_model_with_limits_refuses_before_loading_in_this_process(small, tmp_path):
    huge = _with_units(small, tmp_path / "huge.keras", 20_000_000)
    with pytest.raises(ModelError, match=r"huge\.keras: loading the model needs more than"):
        load_model(huge, LoadLimits(memory_mb=2500))
    assert load_model(small, LoadLimits()).name == "small"


def test_limits_are_checked():
    with pytest.raises(ValueError, match="memory_mb must be > 0, got 0"):
        LoadLimits(memory_mb=0)


def test_the_loader_dies_with_its_parent(small, tmp_path):
    """A worker killed mid-load (hard time limit, crash) leaves no loader behind."""
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, pathlib\n"
        f"child = subprocess.Popen([sys.executable, {str(CHILD)!r}, {str(small)!r}, "
        "'4096', '120'])\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(child.pid))\n"
        "child.wait()\n")])
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pid_file.read_text())
    time.sleep(1)  # the child has set its death signal by now (it is importing TensorFlow)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        if not alive(child):
            break
        time.sleep(0.05)
    assert not alive(child)

