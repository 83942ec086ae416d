"""The metadata store's container records: containerd's validation, field-mask updates, GC roots."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pycontainerd import errors
from pycontainerd.containers import Container, RuntimeInfo, TypedValue
from pycontainerd.content.local import LocalStore
from pycontainerd.metadata import DB
from pycontainerd.snapshots.native import NativeSnapshotter

SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
SPEC = TypedValue(SPEC_URL, json.dumps({"ociVersion": "1.0.2"}).encode())
RUNC = RuntimeInfo("io.containerd.runc.v2", TypedValue("containerd.runc.v1.Options", b"\x32\x04crun"))


def make(id: str = "c1", **kw: object) -> Container:
    base = Container(id=id, runtime=RUNC, spec=SPEC, image="example.com/app:1", labels={"a": "1"})
    return replace(base, **kw)  # type: ignore[arg-type]


def test_create_get_list_delete(db: DB) -> None:
    s = db.containers("default")
    created = s.create(make(extensions={"ext": TypedValue("x.y.Z", b"\x00\x01")}))
    assert created.created_at is not None and created.created_at == created.updated_at
    got = s.get("c1")
    assert got.spec == SPEC and got.runtime == RUNC
    assert got.extensions == {"ext": TypedValue("x.y.Z", b"\x00\x01")}
    assert got.labels == {"a": "1"} and got.image == "example.com/app:1"
    with pytest.raises(errors.AlreadyExists):
        s.create(make())
    s.create(make("c2", image="other:2", labels={"b": "2"}))
    assert [c.id for c in s.list()] == ["c1", "c2"]
    assert [c.id for c in s.list(["image==other:2"])] == ["c2"]
    assert [c.id for c in s.list(["labels.a==1"])] == ["c1"]
    assert [c.id for c in s.list(["runtime.name==io.containerd.runc.v2,id==c2"])] == ["c2"]
    assert db.containers("other").list() == []
    s.delete("c1")
    with pytest.raises(errors.NotFound):
        s.get("c1")
    with pytest.raises(errors.NotFound):
        s.delete("c1")


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (make(id=""), "container.ID"),
        (make(id="bad id"), "container.ID"),
        (make(runtime=RuntimeInfo("")), "Runtime.Name must be set"),
        (make(spec=None), "Spec must be set"),
        (make(snapshot_key="k"), "Snapshotter must be set"),
        (make(extensions={"": TypedValue("a")}), "Extension keys"),
        (make(labels={"": "x"}), "Labels"),
    ],
)
def test_validation(db: DB, bad: Container, words: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=words):
        db.containers("default").create(bad)
    assert db.containers("default").list() == []


def test_update_field_paths(db: DB) -> None:
    s = db.containers("default")
    s.create(make(labels={"a": "1", "b": "2"}, snapshotter="native", snapshot_key="k1"))
    new_spec = TypedValue(SPEC_URL, b'{"ociVersion":"1.1.0"}')
    u = s.update(make(labels={"a": "9"}, spec=new_spec), ["labels.a"])
    assert u.labels == {"a": "9", "b": "2"} and u.spec == SPEC
    u = s.update(make(labels={}), ["labels.b"])
    assert u.labels == {"a": "9"}
    u = s.update(make(spec=new_spec, image="new:1"), ["spec", "image"])
    assert u.spec == new_spec and u.image == "new:1"
    assert u.updated_at is not None and u.created_at is not None and u.updated_at > u.created_at
    with pytest.raises(errors.InvalidArgument, match="cannot update"):
        s.update(make(), ["runtime"])
    # Without paths every updatable field is replaced, and the fixed ones must match.
    with pytest.raises(errors.InvalidArgument, match="Snapshotter field is immutable"):
        s.update(make(snapshotter="overlayfs", snapshot_key="k1"))
    with pytest.raises(errors.InvalidArgument, match=r"Runtime\.Name field is immutable"):
        s.update(make(snapshotter="native", snapshot_key="k1", runtime=RuntimeInfo("io.containerd.runsc.v1")))
    u = s.update(make(labels={"z": "1"}, snapshotter="native", snapshot_key="k2"))
    assert u.labels == {"z": "1"} and u.snapshot_key == "k2" and u.image == "example.com/app:1"
    with pytest.raises(errors.NotFound):
        s.update(make("nope"), ["labels"])


def test_container_keeps_its_snapshot_from_the_collector(tmp_path: Path) -> None:
    db = DB(
        tmp_path / "meta.db",
        LocalStore(tmp_path / "content"),
        snapshotters={"native": NativeSnapshotter(tmp_path / "native")},
    )
    try:
        sn = db.snapshotter("native", "default")
        sn.prepare("rootfs-c1")
        db.containers("default").create(make(snapshotter="native", snapshot_key="rootfs-c1"))
        db.collect_garbage()
        assert sn.stat("rootfs-c1").name == "rootfs-c1"
        db.containers("default").delete("c1")
        stats = db.collect_garbage()
        assert stats.snapshots_removed == 1
        with pytest.raises(errors.NotFound):
            sn.stat("rootfs-c1")
    finally:
        db.close()


def test_namespace_with_containers_is_not_deleted(db: DB) -> None:
    db.containers("busy").create(make())
    with pytest.raises(errors.FailedPrecondition, match="containers"):
        db.namespaces().delete("busy")
    db.containers("busy").delete("c1")
    db.namespaces().delete("busy")
