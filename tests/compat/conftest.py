"""Fixtures of the minos 0.7 compatibility tests: the 0.7-style service module, with its state reset."""

import importlib
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture
def service07(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``service07`` imported as a 0.7 service's own module is, by name from its folder; its state emptied."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    module = importlib.import_module("service07")
    for state in (module.ORDERS, module.EVENTS, module.SWEEPS):
        state.clear()
    return module
