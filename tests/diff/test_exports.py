"""The public surface of pycontainerd.diff: what __all__ names exists, and nothing public is left out."""

from __future__ import annotations

import importlib

import pytest

MODULES = ["pycontainerd.diff", "pycontainerd.diff.apply", "pycontainerd.diff.compare", "pycontainerd.diff.compression"]


@pytest.mark.parametrize("name", MODULES)
def test_all_is_deliberate(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    assert all(hasattr(module, attr) for attr in exported)
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and callable(v) and getattr(v, "__module__", "") == name
    }
    assert public <= set(exported), sorted(public - set(exported))


def test_package_surface() -> None:
    from pycontainerd import diff

    assert set(diff.__all__) == {
        "ApplyResult",
        "Compression",
        "DiffResult",
        "WhiteoutMode",
        "apply_layer",
        "from_media_type",
        "open_compressed",
        "open_decompressed",
        "sniff",
        "write_diff",
    }
