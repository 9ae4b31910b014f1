"""Fixtures of the 0.7 compatibility tests: the service module beside the config files is importable."""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def service_module_on_path(monkeypatch):
    """``config_service`` (named in config_v1.yml and config_v2.yml) imports, as it would beside a 0.7 service."""
    monkeypatch.syspath_prepend(str(HERE))
    yield
    sys.modules.pop("config_service", None)
