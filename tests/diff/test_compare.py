"""write_diff round trips: the diff of two trees (or of an overlay upper dir) applied to the lower gives the upper."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from isal import igzip

from pycontainerd.diff import Compression, WhiteoutMode, apply_layer, write_diff
from pycontainerd.diff._tarparse import NEED_DATA, TarEntry, TarParser

from .layers import LayerTar
from .treecmp import differences, snapshot_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chown, device nodes, overlay mounts")


def base_layer() -> bytes:
    return (
        LayerTar()
        .dir("etc")
        .file("etc/passwd", b"root:x:0:0\n")
        .file("etc/hosts", b"localhost\n", mode=0o600)
        .dir("usr")
        .dir("usr/bin")
        .file("usr/bin/tool", b"v1", mode=0o755)
        .hardlink("usr/bin/tool-again", "usr/bin/tool")
        .symlink("usr/bin/sh", "tool")
        .dir("var", uid=5)
        .dir("var/cache")
        .file("var/cache/a", b"a")
        .dir("var/cache/deep")
        .file("var/cache/deep/b", b"b")
        .file("var/lib", b"a file that becomes a dir")
        .dir("opt")
        .dir("opt/app")
        .file("opt/app/bin", b"app")
        .file("data", b"d" * 100_000, uid=1000, gid=1000, xattrs={"user.k": "v"})
        .bytes()
    )


def modify(tree: Path) -> None:
    """Every kind of change, through ordinary file system calls."""
    (tree / "etc/passwd").write_bytes(b"root:x:0:0\nuser:x:1000:1000\n")
    os.chmod(tree / "etc/hosts", 0o644)
    os.chown(tree / "data", 1001, 1001)
    os.setxattr(tree / "data", "user.k", b"changed")
    (tree / "etc/new").write_bytes(b"new")
    os.unlink(tree / "usr/bin/sh")
    os.symlink("tool-again", tree / "usr/bin/sh")
    shutil.rmtree(tree / "var/cache/deep")
    os.unlink(tree / "var/lib")
    (tree / "var/lib").mkdir()
    (tree / "var/lib/state").write_bytes(b"s")
    shutil.rmtree(tree / "opt/app")
    (tree / "opt/app").write_bytes(b"a file where a dir was")
    (tree / "shared").write_bytes(b"one inode")
    os.link(tree / "shared", tree / "shared-too")
    os.mkfifo(tree / "etc/fifo", 0o600)
    os.mknod(tree / "etc/null", 0o666 | 0o020000, os.makedev(1, 3))
    os.symlink("/nowhere", tree / "dangling")
    (tree / "usr/bin/tool").unlink()
    (tree / "usr/bin/tool").write_bytes(b"v2")


def blob_entries(blob: bytes) -> list[str]:
    p = TarParser()
    p.feed(blob)
    names = []
    while (ev := p.next_event()) is not NEED_DATA:
        if isinstance(ev, TarEntry):
            names.append(ev.name)
    return names


@pytest.mark.parametrize("compression", list(Compression))
def test_two_trees_round_trip(tmp_path: Path, compression: Compression) -> None:
    lower, upper, copy = tmp_path / "lower", tmp_path / "upper", tmp_path / "copy"
    lower.mkdir()
    apply_layer(lower, io.BytesIO(base_layer()))
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    subprocess.run(["cp", "-a", str(lower), str(copy)], check=True)
    modify(upper)
    out = io.BytesIO()
    r = write_diff(out, lower, upper, compression=compression)
    blob = out.getvalue()
    assert r.digest == "sha256:" + hashlib.sha256(blob).hexdigest() and r.size == len(blob)
    applied = apply_layer(copy, io.BytesIO(blob))
    assert (applied.diff_id, applied.size) == (r.diff_id, r.uncompressed_size)
    assert differences(snapshot_tree(upper), snapshot_tree(copy)) == []
    again = io.BytesIO()
    write_diff(again, lower, upper, compression=compression)
    assert again.getvalue() == blob  # reproducible


def test_two_trees_only_changes(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    apply_layer(lower, io.BytesIO(base_layer()))
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    out = io.BytesIO()
    write_diff(out, lower, upper, compression=Compression.NONE)
    assert blob_entries(out.getvalue()) == []
    (upper / "var/cache/a").write_bytes(b"A")  # same size; the directory's time stays
    os.utime(upper / "var/cache/a", ns=(0, os.lstat(lower / "var/cache/a").st_mtime_ns))
    os.unlink(upper / "etc/hosts")
    out = io.BytesIO()
    write_diff(out, lower, upper, compression=Compression.NONE)
    assert blob_entries(out.getvalue()) == ["etc/", "etc/.wh.hosts", "var/", "var/cache/", "var/cache/a"]


def test_empty_lower_is_the_whole_tree(tmp_path: Path) -> None:
    tree, copy = tmp_path / "tree", tmp_path / "copy"
    tree.mkdir()
    copy.mkdir()
    apply_layer(tree, io.BytesIO(base_layer()))
    out = io.BytesIO()
    write_diff(out, None, tree)
    apply_layer(copy, io.BytesIO(out.getvalue()))
    assert differences(snapshot_tree(tree), snapshot_tree(copy)) == []
    names = blob_entries(igzip.decompress(out.getvalue()))
    assert names.index("usr/bin/tool-again") > names.index("usr/bin/tool")


@pytest.fixture
def overlay(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """(lower, upper, merged mount point) of a writable overlay mount; unmounted at the end."""
    lower, upper, work, mnt = (tmp_path / n for n in ("lower", "upper", "work", "mnt"))
    for d in (lower, upper, work, mnt):
        d.mkdir()
    apply_layer(lower, io.BytesIO(base_layer()))
    opts = f"lowerdir={lower},upperdir={upper},workdir={work},redirect_dir=off,metacopy=off,index=off"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(mnt)], check=True)
    try:
        yield lower, upper, mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_overlay_upper_round_trip(tmp_path: Path, overlay: tuple[Path, Path, Path]) -> None:
    lower, upper, mnt = overlay
    modify(mnt)
    shutil.rmtree(mnt / "var/cache")  # gone and made again: an opaque directory
    (mnt / "var/cache").mkdir()
    (mnt / "var/cache/fresh").write_bytes(b"f")
    want = snapshot_tree(mnt)
    subprocess.run(["umount", str(mnt)], check=True)
    assert os.getxattr(upper / "var/cache", "trusted.overlay.opaque") == b"y"

    out = io.BytesIO()
    r = write_diff(out, None, upper, upper_is_overlay=True)
    names = blob_entries(igzip.decompress(out.getvalue()))
    assert "var/cache/.wh..wh..opq" in names and "var/.wh.lib" not in names and "usr/bin/.wh.sh" not in names
    again = io.BytesIO()
    write_diff(again, None, upper, upper_is_overlay=True)
    assert again.getvalue() == out.getvalue()

    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(lower), str(copy)], check=True)
    apply_layer(copy, io.BytesIO(out.getvalue()), expected_diff_id=r.diff_id)
    assert differences(want, snapshot_tree(copy)) == []

    # and as an overlay layer again, under a read-only mount
    upper2, mnt2 = tmp_path / "upper2", tmp_path / "mnt2"
    upper2.mkdir()
    mnt2.mkdir()
    apply_layer(upper2, io.BytesIO(out.getvalue()), whiteouts=WhiteoutMode.OVERLAY, parents=[lower])
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={upper2}:{lower}", str(mnt2)], check=True)
    try:
        assert differences(want, snapshot_tree(mnt2)) == []
    finally:
        subprocess.run(["umount", str(mnt2)], check=True)
