"""The extras costwise declares and the one line naming one that a command needs (issue 15.5)."""

import json
import tomllib
from pathlib import Path

import pytest

from scheduler.core.errors import UserError
from scheduler.core.extras import Extra, MissingExtra, require

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]


def test_an_installed_module_is_returned():
    assert require("json", Extra.DOCKER, "the docker backend") is json


def test_a_missing_module_is_one_line_naming_its_extra():
    with pytest.raises(MissingExtra) as caught:
        require("costwise_has_no_such_module", Extra.FAST_REPORTS, "--format parquet")
    assert str(caught.value) == "--format parquet needs costwise[fast-reports]: pip install 'costwise[fast-reports]'"
    assert isinstance(caught.value, UserError) and caught.value.exit_code == 2
    assert caught.value.extra is Extra.FAST_REPORTS


def test_every_extra_is_declared_and_all_installs_each():
    extras = PYPROJECT["optional-dependencies"]
    assert set(Extra) <= set(extras)
    (everything,) = extras["all"]
    assert everything == f"costwise[{','.join(Extra)}]"
    assert "costwise[all]" in extras["test"]  # the README's test command installs every extra


def test_the_base_install_holds_no_optional_library():
    base = " ".join(PYPROJECT["dependencies"]).lower()
    for extra in Extra:
        for requirement in PYPROJECT["optional-dependencies"][extra]:
            name = requirement.split("[")[0].split(">")[0].split("=")[0].lower()
            assert name not in base, f"{name} (costwise[{extra}]) is in the base dependencies"
