"""``pyctr snapshots ...`` against pycontainerd: the same operations as ctr's, with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from pycontainerd.mount import unmount_all
from tests.distribution.support import pyctr
from tests.fixtures.daemon import PycontainerdDaemon


def test_pyctr_snapshots(pycontainerd_daemon: PycontainerdDaemon, tmp_path: Path) -> None:
    d = pycontainerd_daemon
    target = tmp_path / "mnt"
    target.mkdir()
    pyctr(d, "snapshots", "prepare", "--target", str(target), "base-active")
    try:
        (target / "f").write_text("hello")
    finally:
        unmount_all(target)
    pyctr(d, "snapshots", "commit", "base", "base-active")
    pyctr(d, "snapshots", "prepare", "--label", "app=web", "work", "base")
    mounts = json.loads(pyctr(d, "snapshots", "view", "--mounts", "look", "base").stdout)
    assert mounts == [{"type": "bind", "source": mounts[0]["source"], "options": ["ro", "rbind"]}]
    assert pyctr(d, "snapshots", "ls", "-q").stdout.split() == ["base", "look", "work"]
    assert pyctr(d, "snapshots", "ls", "-q", "kind==active").stdout.split() == ["work"]
    assert pyctr(d, "snapshots", "tree").stdout.splitlines() == [" base", " \\_ look", " \\_ work"]
    info = json.loads(pyctr(d, "snapshots", "info", "work").stdout)
    assert info["Kind"] == "Active" and info["Parent"] == "base" and info["Labels"]["app"] == "web"
    assert "app=db" in pyctr(d, "snapshots", "label", "work", "app=db").stdout
    assert "app=" not in pyctr(d, "snapshots", "label", "work", "app=").stdout
    usage = pyctr(d, "snapshots", "usage", "-b", "base").stdout.splitlines()
    assert usage[1].split()[0] == "base" and int(usage[1].split()[1]) > 0
    mount_cmd = pyctr(d, "snapshots", "mounts", str(target), "work").stdout
    assert mount_cmd.startswith("mount -t overlay overlay ") and "lowerdir=" in mount_cmd
    # The group's flag and the global one choose the snapshotter.
    pyctr(d, "snapshots", "--snapshotter", "native", "prepare", "n")
    assert pyctr(d, "--snapshotter", "native", "snapshots", "ls", "-q").stdout.split() == ["n"]
    assert pyctr(d, "snapshots", "ls", "-q").stdout.split() == ["base", "look", "work"]


def test_pyctr_snapshot_errors_are_one_line(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    for args, text in (
        (("snapshots", "--snapshotter", "zfs", "ls"), "snapshotter not loaded"),
        (("snapshots", "prepare", "k", "nope"), 'parent snapshot "nope": not found'),
        (("snapshots", "rm", "nope"), "not found"),
        (("snapshots", "info", "nope"), "not found"),
    ):
        r = pyctr(d, *args, ok=False)
        assert r.returncode == 1
        assert r.stderr.count("\n") == 1 and text in r.stderr, r.stderr
