"""The snapshotter suite against both local backends, bare and under the metadata store."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from pycontainerd.content.local import LocalStore
from pycontainerd.metadata import DB
from pycontainerd.snapshots import Snapshotter
from pycontainerd.snapshots.native import NativeSnapshotter
from pycontainerd.snapshots.overlay import OverlaySnapshotter
from tests.conformance.snapshots import SnapshotterSuite


class TestOverlay(SnapshotterSuite):
    @pytest.fixture
    def snapshotter(self, tmp_path: pathlib.Path) -> Iterator[Snapshotter]:
        sn = OverlaySnapshotter(tmp_path / "overlay")
        yield sn
        sn.close()


class TestNative(SnapshotterSuite):
    COPIES_PARENTS = True

    @pytest.fixture
    def snapshotter(self, tmp_path: pathlib.Path) -> Iterator[Snapshotter]:
        sn = NativeSnapshotter(tmp_path / "native")
        yield sn
        sn.close()


class TestMetadataOverlay(SnapshotterSuite):
    @pytest.fixture
    def snapshotter(self, tmp_path: pathlib.Path) -> Iterator[Snapshotter]:
        backend = OverlaySnapshotter(tmp_path / "overlay")
        db = DB(tmp_path / "meta.db", LocalStore(tmp_path / "content"), snapshotters={"overlayfs": backend})
        yield db.snapshotter("overlayfs", "default")
        db.close()
        backend.close()


class TestMetadataNativeLeased(SnapshotterSuite):
    COPIES_PARENTS = True

    @pytest.fixture
    def snapshotter(self, tmp_path: pathlib.Path) -> Iterator[Snapshotter]:
        backend = NativeSnapshotter(tmp_path / "native")
        db = DB(tmp_path / "meta.db", LocalStore(tmp_path / "content"), snapshotters={"native": backend})
        db.leases("ns2").create("l")
        yield db.snapshotter("native", "ns2", lease="l")
        db.close()
        backend.close()
