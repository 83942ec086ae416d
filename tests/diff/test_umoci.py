"""Against umoci: the same three-layer image unpacked by ``umoci unpack`` and by us gives the same tree.

The image has whiteouts, an opaque directory, hard links, symlinks, a user
xattr, a device node and a FIFO, and files owned by users other than root.
Our DELETE-mode tree and the overlay mount of our OVERLAY-mode upper
directories are both compared with umoci's rootfs, entry by entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from isal import igzip

from pycontainerd.diff import WhiteoutMode, apply_layer

from .layers import LayerTar
from .treecmp import differences, snapshot_tree

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: umoci unpack without --rootless, overlay mounts"),
]


def layers() -> list[bytes]:
    one = (
        LayerTar()
        .dir("etc", mtime=100)
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", mtime=101)
        .file("etc/hosts", b"127.0.0.1 localhost\n", mtime=101)
        .dir("usr", mtime=102)
        .dir("usr/bin", mode=0o755, mtime=103)
        .file("usr/bin/tool", b"#!/bin/sh\necho v1\n", mode=0o4755, mtime=104)
        .hardlink("usr/bin/tool-again", "usr/bin/tool")
        .symlink("usr/bin/sh", "tool", mtime=105)
        .symlink("usr/lib64", "/usr/lib", mtime=106)
        .dir("dev", mtime=107)
        .char("dev/null", 1, 3, mode=0o666, mtime=108)
        .dir("run", mtime=109)
        .fifo("run/pipe", mode=0o620, uid=1000, gid=1000, mtime=110)
        .dir("home", mtime=111)
        .dir("home/user", mode=0o700, uid=1000, gid=1000, mtime=112)
        .file("home/user/notes", b"secret", mode=0o600, uid=1000, gid=1000, mtime=113, xattrs={"user.tag": "blue"})
        .dir("opq", mtime=114)
        .file("opq/old", b"old", mtime=115)
        .dir("opq/sub", mtime=116)
        .file("opq/sub/older", b"older", mtime=117)
        .dir("gone", mtime=118)
        .file("gone/inside", b"x", mtime=119)
        .file("gone-file", b"x", mtime=120)
        .bytes()
    )
    two = (
        LayerTar()
        .whiteout("gone")
        .whiteout("gone-file")
        .dir("opq", mode=0o750, mtime=200)
        .opaque("opq")
        .file("opq/new", b"new", uid=33, gid=33, mtime=201)
        .dir("usr", mtime=102)
        .dir("usr/bin", mode=0o755, mtime=202)
        .file("usr/bin/tool", b"#!/bin/sh\necho v2\n", mode=0o755, mtime=203)
        .dir("srv", uid=1234, gid=1234, mtime=204)
        .file("srv/a", b"shared", uid=1234, gid=1234, mtime=205, xattrs={"user.tag": "green"})
        .hardlink("srv/b", "srv/a", uid=1234, gid=1234)
        .hardlink("srv/c", "srv/a", uid=1234, gid=1234)
        .bytes()
    )
    three = (
        LayerTar()
        .dir("srv", uid=1234, gid=1234, mtime=204)
        .whiteout("srv/b")
        .file("run", b"run is a file now", mtime=300)
        .dir("etc", mtime=100)
        .dir("etc/hosts", mode=0o711, mtime=301)
        .symlink("home", "/srv", mtime=302)
        .dir("dev", mtime=107)
        .char("dev/zero", 1, 5, mode=0o666, uid=5, mtime=303)
        .bytes()
    )
    return [one, two, three]


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_layout(layout: Path, tars: list[bytes]) -> None:
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    blobs = [igzip.compress(t) for t in tars]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in tars]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **_blob(layout, json.dumps(config).encode()),
        },
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(layout, b)} for b in blobs],
    }
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **_blob(layout, json.dumps(manifest).encode()),
                "annotations": {"org.opencontainers.image.ref.name": "test"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))


def test_same_tree_as_umoci(tmp_path: Path) -> None:
    tars = layers()
    write_layout(tmp_path / "image", tars)
    subprocess.run(
        ["umoci", "unpack", "--image", f"{tmp_path / 'image'}:test", str(tmp_path / "bundle")],
        check=True,
        capture_output=True,
    )
    theirs = snapshot_tree(tmp_path / "bundle" / "rootfs")
    assert {"usr/bin/tool", "usr/bin/tool-again", "srv/c", "opq/new", "dev/zero", "run"} <= theirs.keys()
    assert theirs["srv/a"].xattrs == {"user.tag": b"green"} and theirs["srv/a"].hardlinks == {"srv/c"}
    assert "opq/old" not in theirs and "gone" not in theirs and "srv/b" not in theirs

    flat = tmp_path / "flat"
    flat.mkdir()
    uppers: list[Path] = []
    for i, t in enumerate(tars):
        blob = igzip.compress(t)
        apply_layer(flat, io.BytesIO(blob), media_type="application/vnd.oci.image.layer.v1.tar+gzip")
        upper = tmp_path / f"upper{i}"
        upper.mkdir()
        apply_layer(upper, io.BytesIO(blob), whiteouts=WhiteoutMode.OVERLAY, parents=uppers[::-1])
        uppers.append(upper)
    assert differences(theirs, snapshot_tree(flat)) == []

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    lowers = ":".join(str(p) for p in uppers[::-1])
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lowers}", str(mnt)], check=True)
    try:
        assert differences(theirs, snapshot_tree(mnt)) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
