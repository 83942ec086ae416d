"""Debian's real ``ctr snapshots ...`` against pycontainerd, both snapshotters."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pycontainerd.mount import unmount_all
from tests.fixtures.daemon import DaemonFactory, PycontainerdDaemon

CTR = "/usr/bin/ctr"

pytestmark = [
    pytest.mark.containerd,
]


def ctr(d: PycontainerdDaemon, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([CTR, "--address", d.address, *args], capture_output=True, text=True, timeout=60, check=False)
    if ok:
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode != 0, r.stdout
    return r


# ctr labels what it prepares and commits as gc roots, but not views: keep the collector's first
# run from taking the test's view away while the test looks at it.
NO_STARTUP_GC = 'version = 2\n[plugins."io.containerd.gc.v1.scheduler"]\nstartup_delay = "1h"\n'


@pytest.mark.parametrize("snapshotter", ["overlayfs", "native"])
def test_snapshot_lifecycle_with_ctr(
    pycontainerd_daemon_factory: DaemonFactory, tmp_path: Path, snapshotter: str
) -> None:
    d = pycontainerd_daemon_factory(config=NO_STARTUP_GC)
    sn = ("snapshots", "--snapshotter", snapshotter)
    target = tmp_path / "mnt"
    target.mkdir()
    ctr(d, *sn, "prepare", "base-active")
    # `ctr snapshots mounts` prints a shell command; running it is how users mount a snapshot by hand.
    cmd = ctr(d, *sn, "mounts", str(target), "base-active").stdout
    try:
        subprocess.run(["sh", "-c", cmd], check=True)
        (target / "hello").write_text("from ctr")
    finally:
        unmount_all(target)
    ctr(d, *sn, "commit", "base", "base-active")
    ctr(d, *sn, "prepare", "work", "base")
    ctr(d, *sn, "view", "look", "base")
    ls = ctr(d, *sn, "ls").stdout.splitlines()
    assert ls[0].split() == ["KEY", "PARENT", "KIND"]
    rows = {line.split()[0]: line.split()[1:] for line in ls[1:]}
    assert rows == {"base": ["Committed"], "work": ["base", "Active"], "look": ["base", "View"]}
    tree = ctr(d, *sn, "tree").stdout
    assert "base" in tree and "\\_ work" in tree and "\\_ look" in tree
    info = json.loads(ctr(d, *sn, "info", "base").stdout)
    assert info["Kind"] == "Committed" and info["Name"] == "base"
    ctr(d, *sn, "label", "base", "color=blue")
    assert json.loads(ctr(d, *sn, "info", "base").stdout)["Labels"]["color"] == "blue"
    usage = ctr(d, *sn, "usage", "base").stdout.splitlines()
    assert usage[0].split() == ["KEY", "SIZE", "INODES"] and usage[1].split()[0] == "base"
    cmd = ctr(d, *sn, "mounts", str(target), "work").stdout
    try:
        subprocess.run(["sh", "-c", cmd], check=True)
        assert (target / "hello").read_text() == "from ctr"
    finally:
        unmount_all(target)
    err = ctr(d, *sn, "rm", "base", ok=False).stderr
    assert "children" in err
    ctr(d, *sn, "rm", "look", "work")  # the view first: a removal wakes the collector
    ctr(d, *sn, "rm", "base")
    assert ctr(d, *sn, "ls").stdout.splitlines()[1:] == []


def test_ctr_errors(pycontainerd_daemon: PycontainerdDaemon) -> None:
    d = pycontainerd_daemon
    assert "not loaded" in ctr(d, "snapshots", "--snapshotter", "zfs", "ls", ok=False).stderr
    assert "not found" in ctr(d, "snapshots", "prepare", "k", "missing-parent", ok=False).stderr
    ctr(d, "snapshots", "prepare", "k")
    assert "already exists" in ctr(d, "snapshots", "prepare", "k", ok=False).stderr
    assert "not committed" in ctr(d, "snapshots", "view", "v", "k", ok=False).stderr
