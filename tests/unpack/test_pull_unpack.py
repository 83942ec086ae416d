"""Pulling with unpacking, and mounting images: pyctr through the daemon, and containerd's ctr client-side.

The image has three layers: busybox, a layer that changes, deletes (a
whiteout) and replaces a directory (opaque), and one that adds a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycontainerd.mount import unmount_all
from tests.distribution.support import ctr, pyctr, seed
from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import Registry
from tests.ocibuild import Image, busybox_files, image


def three_layers() -> Image:
    base = busybox_files()
    base.update({"etc/motd": b"hello\n", "etc/gone": b"bye\n", "opt/old/a": b"a\n", "opt/old/b": b"b\n"})
    # ocibuild layers are path -> bytes; whiteouts are empty files named .wh.<name>.
    middle = {"etc/motd": b"changed\n", "etc/.wh.gone": b"", "opt/old/.wh..wh..opq": b"", "opt/old/c": b"c\n"}
    top = {"srv/data": b"top\n"}
    return image([base, middle, top])


def expected_tree_check(root: Path) -> None:
    assert (root / "etc/motd").read_text() == "changed\n"
    assert not (root / "etc/gone").exists()
    assert sorted(os.listdir(root / "opt/old")) == ["c"]
    assert (root / "srv/data").read_text() == "top\n"
    assert (root / "bin/busybox").stat().st_size > 100_000


def snapshot_keys(d: PycontainerdDaemon, snapshotter: str = "overlayfs") -> list[str]:
    return pyctr(d, "snapshots", "--snapshotter", snapshotter, "ls", "-q").stdout.split()


@pytest.mark.parametrize("local", [False, True], ids=["server-side", "client-side"])
def test_pyctr_pull_unpacks_and_mounts(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, tmp_path: Path, local: bool
) -> None:
    d = pycontainerd_daemon
    img = three_layers()
    seed(registry, img, "unpack/three:1", tmp_path)
    ref = f"{registry.host}/unpack/three:1"
    pyctr(d, "images", "pull", "-q", *(["--local"] if local else []), ref)
    chains = [k for k in snapshot_keys(d) if k.startswith("sha256:")]
    assert len(chains) == 3, snapshot_keys(d)
    # Unpacked layers carry their diff ids; the config keeps the top snapshot from the collector.
    labels = {line.split()[0]: line.split()[-1] for line in pyctr(d, "content", "ls").stdout.splitlines()[1:]}
    assert any("containerd.io/gc.ref.snapshot.overlayfs=" in v for v in labels.values()), labels
    target = tmp_path / "mnt"
    target.mkdir()
    pyctr(d, "images", "mount", ref, str(target))
    try:
        expected_tree_check(target)
        with pytest.raises(OSError):
            (target / "new").write_text("x")
    finally:
        pyctr(d, "images", "unmount", "--rm", str(target))
    assert not os.path.ismount(target)
    # A second unpack finds every layer there already.
    out = pyctr(d, "images", "unpack", ref).stdout
    assert "0 of 3 layers unpacked now" in out
    # ctr sees it unpacked.
    check = ctr(d.address, "images", "check").stdout.splitlines()
    assert "true" in check[1].split(), check


def test_pull_into_native(pycontainerd_daemon: PycontainerdDaemon, registry: Registry, tmp_path: Path) -> None:
    d = pycontainerd_daemon
    seed(registry, three_layers(), "unpack/native:1", tmp_path)
    ref = f"{registry.host}/unpack/native:1"
    pyctr(d, "--snapshotter", "native", "images", "pull", "-q", ref)
    assert len(snapshot_keys(d, "native")) == 3
    assert snapshot_keys(d) == []
    target = tmp_path / "mnt"
    target.mkdir()
    pyctr(d, "--snapshotter", "native", "images", "mount", "--rw", ref, str(target))
    try:
        expected_tree_check(target)
        (target / "new").write_text("writable")
    finally:
        pyctr(d, "--snapshotter", "native", "images", "unmount", "--rm", str(target))


def test_ctr_pulls_and_mounts_through_pycontainerd(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, tmp_path: Path
) -> None:
    """containerd's own client: fetch over the Content API, unpack through the Diff service into our overlayfs."""
    d = pycontainerd_daemon
    seed(registry, three_layers(), "unpack/ctr:1", tmp_path)
    ref = f"{registry.host}/unpack/ctr:1"
    ctr(d.address, "images", "pull", "--plain-http", ref)
    keys = ctr(d.address, "snapshots", "ls").stdout
    assert keys.count("sha256:") >= 3, keys
    target = tmp_path / "mnt"
    target.mkdir()
    ctr(d.address, "images", "mount", ref, str(target))
    try:
        expected_tree_check(target)
    finally:
        ctr(d.address, "images", "unmount", "--rm", str(target))
        unmount_all(target)
    assert "true" in ctr(d.address, "images", "check").stdout.splitlines()[1].split()
