"""The package surface of pycontainerd.diff (its modules' __all__ are checked in tests/unit/test_exports.py)."""

from __future__ import annotations


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
