"""Dockerfile and docker-compose.yml name only commands, modules and settings that exist.

No Docker engine runs here, so the files are checked by reading them.
"""

import importlib
import json
import shlex
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from aconnect.cli import build_parser
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _check_command(argv: list[str]) -> None:
    program = argv[0]
    if program == "aconnect":
        assert "aconnect" in SCRIPTS
        subcommands = build_parser()._subparsers._group_actions[0].choices
        assert argv[1] in subcommands, f"aconnect has no command {argv[1]!r}"
        subcommands[argv[1]].parse_args(argv[2:])
    elif program == "celery":
        assert shutil.which("celery", path=str(Path(sys.executable).parent))
        app = argv[argv.index("-A") + 1]
        module, _, attribute = app.partition(":")
        assert getattr(importlib.import_module(module), attribute)
        assert argv[argv.index("-A") + 2] in ("worker", "inspect")
    elif program == "python":
        compile(argv[argv.index("-c") + 1], "<healthcheck>", "exec")
    else:
        assert program in ("redis-server", "redis-cli"), f"unknown program {program}"


def _check_environment(env: dict) -> None:
    fields = set(Settings.model_fields)
    for name in env:
        assert name.startswith("ACONNECT_"), name
        assert name.removeprefix("ACONNECT_").lower() in fields, f"{name} is not a setting"
    Settings(**{k.removeprefix("ACONNECT_").lower(): v for k, v in env.items()})


@pytest.mark.parametrize("service", ["api", "worker", "redis"])
def test_compose_commands_exist(service):
    spec = COMPOSE["services"][service]
    _check_command(spec["command"])
    test = spec.get("healthcheck", {}).get("test")
    if test:
        _check_command(test[1:] if test[0] in ("CMD", "CMD-SHELL") else test)
    _check_environment(spec.get("environment", {}))


def test_compose_shape():
    services = COMPOSE["services"]
    assert set(services) == {"redis", "api", "worker"}
    assert "--appendonly" in services["redis"]["command"] and services["redis"]["healthcheck"]
    assert "ports" not in services["worker"]  # scales with --scale worker=N
    for name in ("api", "worker"):
        assert "jobs:/data" in services[name]["volumes"]
        assert services[name]["environment"]["ACONNECT_DATA_DIR"] == "/data"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["api"]["environment"]["ACONNECT_BROKER_URL"] == (
        services["worker"]["environment"]["ACONNECT_BROKER_URL"])


def test_dockerfile():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().replace(
        "\\\n", " ").splitlines() if line.strip() and not line.strip().startswith("#")]
    instructions = [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in lines]
    first = dict(instructions)
    assert first["FROM"].endswith("-slim")
    assert first["USER"] not in ("root", "0")
    for kind, rest in instructions:
        if kind == "COPY":
            *sources, _ = shlex.split(rest)
            assert all((ROOT / s).exists() for s in sources), rest
        if kind == "ENV":
            env = dict(part.split("=", 1) for part in shlex.split(rest))
            _check_environment({k: v for k, v in env.items() if k.startswith("ACONNECT_")})
    _check_command(json.loads(first["CMD"]))
    _check_command(json.loads(first["HEALTHCHECK"].split("CMD", 1)[1]))
    assert '.[service]' in first["RUN"]  # runtime dependencies only, no dev extras
