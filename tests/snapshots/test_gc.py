"""Garbage collection of snapshots: what keeps them, and that the backend follows the records."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

from pycontainerd import errors
from pycontainerd.content import write_blob
from pycontainerd.content.local import LocalStore
from pycontainerd.images import Descriptor, Image
from pycontainerd.leases import Resource
from pycontainerd.metadata import DB, SnapshotStore
from pycontainerd.snapshots.overlay import OverlaySnapshotter

ROOT = {"containerd.io/gc.root": "yes"}


@pytest.fixture(params=[False, True], ids=["sync-remove", "async-remove"])
def backend(tmp_path: pathlib.Path, request: pytest.FixtureRequest) -> Iterator[OverlaySnapshotter]:
    sn = OverlaySnapshotter(tmp_path / "overlay", async_remove=request.param)
    yield sn
    sn.close()


@pytest.fixture
def db(tmp_path: pathlib.Path, backend: OverlaySnapshotter) -> Iterator[DB]:
    d = DB(tmp_path / "meta.db", LocalStore(tmp_path / "content"), snapshotters={"overlayfs": backend})
    yield d
    d.close()


def store(db: DB, ns: str = "default", lease: str | None = None) -> SnapshotStore:
    return db.snapshotter("overlayfs", ns, lease)


def chain(sn: SnapshotStore, *names: str, labels: dict[str, str] | None = None) -> None:
    parent = ""
    for i, name in enumerate(names):
        last = i == len(names) - 1
        sn.prepare(name + "-a", parent)
        sn.commit(name, name + "-a", labels=labels if last else None)
        parent = name


def keys(sn: SnapshotStore) -> set[str]:
    return {i.name for i in sn.walk()}


def backend_dirs(backend: OverlaySnapshotter) -> set[str]:
    return set(os.listdir(backend.snapshots_dir))


def test_unreferenced_snapshots_leave_records_backend_and_disk(db: DB, backend: OverlaySnapshotter) -> None:
    sn = store(db)
    chain(sn, "a", "b", "c")
    sn.prepare("active", "c")
    assert len(backend_dirs(backend)) == 4
    stats = db.collect_garbage()
    assert stats.snapshots_removed == 4
    assert keys(sn) == set()
    assert list(backend.walk()) == []
    assert backend_dirs(backend) == set()


def test_gc_root_keeps_the_chain(db: DB, backend: OverlaySnapshotter) -> None:
    sn = store(db)
    chain(sn, "a", "b", "c", labels=ROOT)
    chain(sn, "x")
    db.collect_garbage()
    assert keys(sn) == {"a", "b", "c"}
    assert len(list(backend.walk())) == 3


def test_image_config_label_keeps_snapshots(db: DB) -> None:
    sn = store(db)
    chain(sn, "l1", "l2")
    content = db.content("default")
    config = write_blob(content, "config", b"{}", labels={"containerd.io/gc.ref.snapshot.overlayfs": "l2"})
    manifest = write_blob(content, "manifest", b'{"m": 1}', labels={"containerd.io/gc.ref.content.config": config})
    db.images("default").create(
        Image("img", Descriptor("application/vnd.oci.image.manifest.v1+json", manifest, len(b'{"m": 1}')))
    )
    db.collect_garbage()
    assert keys(sn) == {"l1", "l2"}
    db.images("default").delete("img")
    db.collect_garbage()
    assert keys(sn) == set()


def test_snapshot_labels_keep_content(db: DB) -> None:
    content = db.content("default")
    blob = write_blob(content, "layer", b"layer")
    sn = store(db)
    chain(sn, "a", labels={**ROOT, "containerd.io/gc.ref.content.l": blob})
    db.collect_garbage()
    assert content.info(blob).size == 5


def test_lease_holds_snapshots_and_commit_moves_the_hold(db: DB) -> None:
    db.leases("default").create("l")
    sn = store(db, lease="l")
    sn.prepare("k")
    assert db.leases("default").list_resources("l") == [Resource(id="k", type="snapshots/overlayfs")]
    sn.commit("c", "k")
    assert db.leases("default").list_resources("l") == [Resource(id="c", type="snapshots/overlayfs")]
    sn.prepare("child", "c")
    db.collect_garbage()
    assert keys(sn) == {"c", "child"}
    db.leases("default").delete("l")
    db.collect_garbage()
    assert keys(sn) == set()


def test_removed_record_leaves_backend_at_next_collection(db: DB, backend: OverlaySnapshotter) -> None:
    sn = store(db)
    chain(sn, "a", "b", labels=ROOT)
    sn.prepare("k", "b", labels=ROOT)
    with pytest.raises(errors.FailedPrecondition):
        sn.remove("b")
    sn.remove("k")
    assert len(list(backend.walk())) == 3
    db.collect_garbage()
    assert len(list(backend.walk())) == 2
    assert keys(sn) == {"a", "b"}


def test_namespaces_collect_apart(db: DB) -> None:
    a, b = store(db, "ns-a"), store(db, "ns-b")
    chain(a, "same", labels=ROOT)
    chain(b, "same")
    db.collect_garbage()
    assert keys(a) == {"same"}
    assert keys(b) == set()


def test_async_remove_frees_disk_at_cleanup(tmp_path: pathlib.Path) -> None:
    sn = OverlaySnapshotter(tmp_path / "overlay", async_remove=True)
    try:
        sn.prepare("k")
        (sn.snapshots_dir / "1" / "fs" / "data").write_bytes(b"x" * 4096)
        sn.remove("k")
        assert backend_dirs(sn) == {"rm-1"}  # out of the id space at once, deleted later
        (sn.snapshots_dir / "99").mkdir()  # a directory no record names (a crash between mkdir and record)
        sn.cleanup()
        assert backend_dirs(sn) == set()
    finally:
        sn.close()
