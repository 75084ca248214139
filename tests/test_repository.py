"""The README's two commands stay true: CI runs the test command verbatim, the demo exists."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh)\n(.+?)\n```", quick_start)


def test_ci_runs_the_readme_test_command_verbatim():
    demo, tests = _readme_commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci_lines
    assert "pytest" in tests and "aconnect demo" in demo


def test_the_demo_command_is_the_installed_entry_point():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"aconnect": "aconnect.cli:main"}
    assert "requires-python" in project and project["requires-python"] == ">=3.11"


def test_every_service_setting_is_documented_in_the_readme():
    from app.settings import Settings

    readme = (ROOT / "README.md").read_text()
    missing = [f"ACONNECT_{name.upper()}" for name in Settings.model_fields
               if f"`ACONNECT_{name.upper()}`" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"
