"""End to end against umoci: an image with every awkward entry, pulled and mounted through pycontainerd.

The image (whiteouts, an opaque directory, hard links, symlinks, xattrs,
device nodes, a FIFO, owners other than root) goes to a real registry with
skopeo; pycontainerd pulls and unpacks it into each snapshotter, and the
mounted tree must equal, entry by entry, the rootfs ``umoci unpack`` makes
of the same OCI layout.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.diff.test_umoci import layers, write_layout
from tests.diff.treecmp import differences, snapshot_tree
from tests.distribution.support import pyctr, run
from tests.fixtures.daemon import PycontainerdDaemon
from tests.fixtures.registry import Registry


@pytest.mark.parametrize("snapshotter", ["overlayfs", "native"])
def test_mounted_image_equals_umoci_unpack(
    pycontainerd_daemon: PycontainerdDaemon, registry: Registry, tmp_path: Path, snapshotter: str
) -> None:
    layout = tmp_path / "image"
    write_layout(layout, layers())
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:test", str(tmp_path / "bundle")], check=True, capture_output=True
    )
    theirs = snapshot_tree(tmp_path / "bundle" / "rootfs")
    ref = f"{registry.host}/umoci/awkward:1"
    run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:test", f"docker://{ref}"])
    d = pycontainerd_daemon
    pyctr(d, "--snapshotter", snapshotter, "images", "pull", "-q", ref)
    target = tmp_path / "mnt"
    target.mkdir()
    pyctr(d, "--snapshotter", snapshotter, "images", "mount", ref, str(target))
    try:
        ours = snapshot_tree(target)
    finally:
        pyctr(d, "--snapshotter", snapshotter, "images", "unmount", "--rm", str(target))
    assert differences(theirs, ours) == []
