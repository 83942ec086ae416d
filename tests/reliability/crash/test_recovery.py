"""Focused regressions: a process killed at one exact step of the metadata store, then recovery and ``check``.

Each test runs the real stores (SQLite, the local content store, the native
snapshotter) in a child process that dies with ``os._exit`` at the step under
test, as a SIGKILL there would leave things, then checks the root as the
crash left it and after :func:`recover`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pycontainerd.check import Kind, Layout, check
from pycontainerd.content.local import LocalStore
from pycontainerd.metadata import DB
from pycontainerd.metadata._recover import recover
from pycontainerd.snapshots import Kind as SnapshotKind
from pycontainerd.snapshots.native import NativeSnapshotter

# Opens a root laid out as the daemon's, with a native snapshotter and a content store whose step named by
# argv[2] ends the process; then runs the scenario named by argv[3].
_CHILD = """
import os, sys, pathlib
from pycontainerd.content.local import LocalStore
from pycontainerd.metadata import DB
from pycontainerd.snapshots.native import NativeSnapshotter
root, die, scenario = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]

class Store(LocalStore):
    def delete(self, digest):
        super().delete(digest)
        if die == "blob-deleted":
            os._exit(9)

class Snapshotter(NativeSnapshotter):
    def commit(self, name, key, labels=None):
        if die == "before-backend-commit":
            os._exit(9)
        super().commit(name, key, labels)
        if die == "after-backend-commit":
            os._exit(9)
    def remove(self, key):
        super().remove(key)
        if die == "snapshot-removed":
            os._exit(9)

if die == "directory-moved":  # the backend's removal dies right after moving the directory away
    real_rename = os.rename
    def rename(src, dst, *a, **k):
        real_rename(src, dst, *a, **k)
        if os.path.basename(dst).startswith("rm-"):
            os._exit(9)
    os.rename = rename

sn = Snapshotter(root / "io.containerd.snapshotter.v1.native", async_remove=True)
db = DB(root / "io.containerd.metadata.v1.sqlite/meta.db", Store(root / "io.containerd.content.v1.content"),
        snapshotters={"native": sn})
db.leases("default").create("keep")
if scenario == "commit":
    s = db.snapshotter("native", "default", lease="keep")
    s.prepare("work", "", {"mine": "1"})
    s.commit("done", "work", {"mine": "2"})
elif scenario == "remove":
    s = db.snapshotter("native", "default", lease="keep")
    s.prepare("work", "")
    s.commit("done", "work")
    s.prepare("gone", "done")
    db.leases("default").delete("keep")
    db.collect_garbage()
elif scenario == "collect":
    content = db.content("default")
    for i in range(3):
        w = content.writer(f"blob-{i}")
        w.write(f"blob {i}".encode())
        w.commit()
    s = db.snapshotter("native", "default")
    parent = ""
    for i in range(3):
        s.prepare(f"w{i}", parent)
        s.commit(f"c{i}", f"w{i}")
        parent = f"c{i}"
    db.collect_garbage()
print("survived")
"""


def _open(root: Path) -> DB:
    sn = NativeSnapshotter(root / "io.containerd.snapshotter.v1.native", async_remove=True)
    return DB(
        root / "io.containerd.metadata.v1.sqlite/meta.db",
        LocalStore(root / "io.containerd.content.v1.content"),
        snapshotters={"native": sn},
    )


def _crash(root: Path, die: str, scenario: str) -> None:
    r = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), die, scenario],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 9, f"the child was to die at {die}: {r.returncode} {r.stdout} {r.stderr}"


def _kinds(root: Path) -> set[Kind]:
    return {p.kind for p in check(Layout.of(root, root / "state"))}


@pytest.mark.parametrize("die", ["before-backend-commit", "after-backend-commit"])
def test_snapshot_commit_killed_between_record_and_backend(tmp_path: Path, die: str) -> None:
    """Was: the backend committed under a new id, then the record rolled back: a record naming nothing."""
    _crash(tmp_path, die, "commit")
    assert _kinds(tmp_path) <= {Kind.SNAPSHOT_COMMIT_UNFINISHED}
    db = _open(tmp_path)
    try:
        recover(db)
        assert check(Layout.of(tmp_path, tmp_path / "state")) == []
        s = db.snapshotter("native", "default")
        info = s.stat("done")
        assert info.kind == SnapshotKind.COMMITTED and info.labels == {"mine": "2"}
        s.prepare("child", "done")  # the committed snapshot is usable as a parent
        assert [i.name for i in s.walk()] == ["child", "done"]
    finally:
        db.close()


@pytest.mark.parametrize("die", ["blob-deleted", "snapshot-removed"])
def test_collection_killed_mid_sweep_leaves_no_record_naming_what_is_gone(tmp_path: Path, die: str) -> None:
    """Was: backends swept inside the records' transaction, so a kill brought back records of removed objects."""
    _crash(tmp_path, die, "collect")
    healed = {Kind.BLOB_UNREFERENCED, Kind.SNAPSHOT_UNREFERENCED, Kind.SNAPSHOT_DIR_ORPHANED}
    assert _kinds(tmp_path) <= healed
    db = _open(tmp_path)
    try:
        recover(db)
        assert check(Layout.of(tmp_path, tmp_path / "state")) == []
        assert list(db.backend.walk()) == []
        assert list(db.snapshotters["native"].walk()) == []
    finally:
        db.close()


def test_ingest_record_whose_data_went_is_dropped(tmp_path: Path) -> None:
    """Was: a commit killed after its rename but before its record went left an unleased ingest record forever."""
    db = _open(tmp_path)
    try:
        w = db.content("default").writer("half")
        w.write(b"data")
        w.close()
        backend_dir = next((tmp_path / "io.containerd.content.v1.content/ingest").iterdir())
        os.rename(backend_dir, tmp_path / "aside")  # as the commit's rename and cleanup leave it
        assert _kinds(tmp_path) == {Kind.INGEST_DATA_MISSING}
        db.collect_garbage()
        assert db.content("default").list_statuses() == []
        assert check(Layout.of(tmp_path, tmp_path / "state")) == []
        w = db.content("default").writer("half")  # the ref starts afresh
        assert w.status().offset == 0
        w.close()
    finally:
        db.close()


def test_recovery_removes_half_made_ingests_and_removals(tmp_path: Path) -> None:
    """Was: a killed writer's ``.tmp-*`` ingest stayed an hour, and removal directories until the next removal."""
    db = _open(tmp_path)
    try:
        tmp = tmp_path / "io.containerd.content.v1.content/ingest/.tmp-0123456789abcdef"
        tmp.mkdir()
        (tmp / "data").write_bytes(b"x")
        doomed = tmp_path / "io.containerd.snapshotter.v1.native/snapshots/rm-7"
        (doomed / "etc").mkdir(parents=True)
        never = tmp_path / "io.containerd.snapshotter.v1.native/snapshots/8"
        never.mkdir()
        assert _kinds(tmp_path) == {Kind.INGEST_BROKEN, Kind.SNAPSHOT_DIR_ORPHANED}
        recover(db)
        assert not tmp.exists() and not doomed.exists() and not never.exists()
        assert check(Layout.of(tmp_path, tmp_path / "state")) == []
    finally:
        db.close()


def test_snapshot_removal_killed_after_moving_its_directory(tmp_path: Path) -> None:
    """Was: the directory moved inside the snapshotter's transaction, so a kill left a record without directory."""
    _crash(tmp_path, "directory-moved", "remove")
    problems = check(Layout.of(tmp_path, tmp_path / "state"))
    assert {p.kind for p in problems} <= {Kind.SNAPSHOT_UNREFERENCED, Kind.SNAPSHOT_DIR_ORPHANED}, problems
    db = _open(tmp_path)
    try:
        recover(db)
        assert check(Layout.of(tmp_path, tmp_path / "state")) == []
        assert list(db.snapshotters["native"].walk()) == []
        assert list((tmp_path / "io.containerd.snapshotter.v1.native/snapshots").iterdir()) == []
    finally:
        db.close()
