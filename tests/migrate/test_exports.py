"""pycontainerd.migrate's public surface: each module says what it exports, and exports only what exists."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "pycontainerd.migrate",
    "pycontainerd.migrate.records",
    "pycontainerd.migrate.dockerstore",
    "pycontainerd.migrate.tarsplit",
    "pycontainerd.migrate.layerstream",
    "pycontainerd.migrate.importer",
]


@pytest.mark.parametrize("name", MODULES)
def test_exports(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    assert all(hasattr(module, attr) for attr in exported)
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and callable(v) and getattr(v, "__module__", "").startswith(name)
    }
    assert public <= set(exported), f"{name} does not export {sorted(public - set(exported))}"
