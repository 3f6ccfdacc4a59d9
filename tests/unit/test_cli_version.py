"""`costwise --version` prints the package's version (DESIGN.md, "The command line") and touches no catalog."""

import tomllib
from pathlib import Path

from scheduler.cli.main import run_cli

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_version_prints_the_package_version_and_exits_0(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COSTWISE_HOME", str(tmp_path / "home"))
    version = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert run_cli(["--version"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"costwise {version}\n"
    assert captured.err == ""
    assert not (tmp_path / "home").exists()  # eager: no settings resolved, no catalog opened
