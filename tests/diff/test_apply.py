"""apply_layer on well-formed layers: every entry type, metadata, whiteouts, replacement, compression."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
from pathlib import Path

import pytest
import zstandard
from isal import igzip

from pycontainerd.diff import ApplyResult, WhiteoutMode, apply_layer
from pycontainerd.errors import InvalidArgument

from .conftest import Target
from .layers import LayerTar
from .treecmp import snapshot_tree

CAP_NET_RAW = bytes.fromhex("0100000200200000000000000000000000000000")


def apply(root: Path, blob: bytes, **kw: object) -> ApplyResult:
    return apply_layer(root, io.BytesIO(blob), **kw)  # type: ignore[arg-type]


def test_entry_types_and_metadata(target: Target) -> None:
    layer = (
        LayerTar()
        .dir("usr", mode=0o755, mtime=1000)
        .dir("usr/bin", mode=0o750, uid=2, gid=3, mtime=2000)
        .file(
            "usr/bin/ping",
            b"\x7fELF",
            mode=0o4755,
            uid=1000,
            gid=1001,
            mtime=3000,
            xattrs={"security.capability": CAP_NET_RAW.decode("latin-1"), "user.note": "hello"},
        )
        .file("usr/bin/sg", b"x", mode=0o2711, gid=42)
        .dir("tmp", mode=0o1777)
        .symlink("usr/bin/sh", "ping", uid=7, gid=8, mtime=4000)
        .hardlink("usr/bin/ping6", "usr/bin/ping")
        .fifo("run.fifo", mode=0o620, uid=5)
        .char("null", 1, 3, mode=0o666)
        .file("x" * 150 + "/" + "y" * 150, b"long", mode=0o600)
        .bytes()
    )
    r = apply(target.root, layer)
    assert r.diff_id == "sha256:" + hashlib.sha256(layer).hexdigest()
    assert r.size == len(layer) and r.compressed_size is None
    root = target.root
    ping = os.lstat(root / "usr/bin/ping")
    assert stat.S_IMODE(ping.st_mode) == 0o4755 and (ping.st_uid, ping.st_gid) == (1000, 1001)
    assert ping.st_mtime == 3000 and ping.st_nlink == 2
    assert os.getxattr(root / "usr/bin/ping", "security.capability") != b""
    assert os.getxattr(root / "usr/bin/ping", "user.note") == b"hello"
    assert os.lstat(root / "usr/bin/ping6").st_ino == ping.st_ino
    assert stat.S_IMODE(os.lstat(root / "usr/bin/sg").st_mode) == 0o2711
    bin_ = os.lstat(root / "usr/bin")
    assert (stat.S_IMODE(bin_.st_mode), bin_.st_uid, bin_.st_gid, bin_.st_mtime) == (0o750, 2, 3, 2000)
    assert os.lstat(root / "usr").st_mtime == 1000
    assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777
    sh = os.lstat(root / "usr/bin/sh")
    assert stat.S_ISLNK(sh.st_mode) and os.readlink(root / "usr/bin/sh") == "ping"
    assert (sh.st_uid, sh.st_gid, sh.st_mtime) == (7, 8, 4000)
    fifo = os.lstat(root / "run.fifo")
    assert stat.S_ISFIFO(fifo.st_mode) and stat.S_IMODE(fifo.st_mode) == 0o620 and fifo.st_uid == 5
    null = os.lstat(root / "null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert (root / ("x" * 150) / ("y" * 150)).read_bytes() == b"long"


def test_capability_survives_chown(target: Target) -> None:
    layer = (
        LayerTar()
        .file("ping", b"x", uid=1000, mode=0o755, xattrs={"security.capability": CAP_NET_RAW.decode("latin-1")})
        .bytes()
    )
    apply(target.root, layer)
    assert os.getxattr(target.root / "ping", "security.capability") == CAP_NET_RAW


@pytest.mark.parametrize("cut", [1, 7, 512, 4096])
def test_a_stream_of_chunks_applies_as_the_blob_does(
    target: Target, tmp_path_factory: pytest.TempPathFactory, cut: int
) -> None:
    """An iterable of an uncompressed stream's pieces, cut anywhere (inside headers too), gives the same tree."""
    layer = (
        LayerTar()
        .dir("etc", mode=0o755, mtime=10)
        .file("etc/big", os.urandom(70_000), mode=0o640, uid=5)
        .file("etc/empty", b"")
        .symlink("etc/link", "big")
        .hardlink("etc/again", "etc/big")
        .bytes()
    )
    other = tmp_path_factory.mktemp("from-blob")
    expected = apply(other, layer)
    pieces = (layer[i : i + cut] for i in range(0, len(layer), cut))
    got = apply_layer(target.root, pieces)
    assert got == expected
    assert snapshot_tree(target.root) == snapshot_tree(other)


def test_a_stream_of_chunks_is_checked_as_a_blob_is(target: Target) -> None:
    layer = LayerTar().file("../escape", b"x").bytes()
    with pytest.raises(InvalidArgument):
        apply_layer(target.root, iter([layer[:100], layer[100:]]))


@pytest.mark.parametrize("fmt", ["gnu", "ustar", "v7"])
def test_other_tar_formats(target: Target, fmt: str) -> None:
    import tarfile

    formats = {"gnu": tarfile.GNU_FORMAT, "ustar": tarfile.USTAR_FORMAT, "v7": tarfile.USTAR_FORMAT}
    name = ("d" * 90 + "/") * 2 + "f" if fmt != "v7" else "short"
    layer = LayerTar(formats[fmt]).dir("d" * 90 if fmt != "v7" else "dd").file(name, b"data", uid=3).bytes()
    if fmt == "v7":  # blank the magic: an old-style header
        layer = _patch(layer, 0, 257, b"\0" * 8)
    apply(target.root, layer)
    assert (target.root / name).read_bytes() == b"data"


def _patch(blob: bytes, header_at: int, offset: int, value: bytes) -> bytes:
    block = bytearray(blob[header_at : header_at + 512])
    block[offset : offset + len(value)] = value
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return blob[:header_at] + bytes(block) + blob[header_at + 512 :]


def test_replacing_entries(target: Target) -> None:
    root = target.root
    apply(
        root,
        LayerTar()
        .dir("d")
        .file("d/inner", b"1")
        .file("f", b"file")
        .dir("keep")
        .file("keep/a", b"a")
        .symlink("s", "f")
        .bytes(),
    )
    apply(
        root,
        LayerTar()
        .file("d", b"now a file")
        .dir("f", mode=0o700)
        .dir("keep", mode=0o711)
        .file("keep/b", b"b")
        .file("s", b"no longer a link")
        .bytes(),
    )
    assert (root / "d").read_bytes() == b"now a file"
    assert (root / "f").is_dir() and stat.S_IMODE(os.lstat(root / "f").st_mode) == 0o700
    assert sorted(os.listdir(root / "keep")) == ["a", "b"]
    assert stat.S_IMODE(os.lstat(root / "keep").st_mode) == 0o711
    assert not (root / "s").is_symlink() and (root / "s").read_bytes() == b"no longer a link"


def test_whiteouts_delete(target: Target) -> None:
    root = target.root
    apply(
        root,
        LayerTar()
        .dir("a")
        .file("a/x", b"x")
        .dir("a/sub")
        .file("a/sub/y", b"y")
        .file("b", b"b")
        .dir("o")
        .file("o/lower1", b"")
        .dir("o/d")
        .file("o/d/lower2", b"")
        .bytes(),
    )
    # the opaque marker after some of the new entries and before others
    apply(
        root,
        LayerTar()
        .dir("a")
        .whiteout("a/sub")
        .whiteout("b")
        .whiteout("missing/deep")
        .dir("o")
        .dir("o/d")
        .file("o/d/new1", b"")
        .opaque("o")
        .file("o/new2", b"")
        .bytes(),
    )
    assert sorted(os.listdir(root)) == ["a", "o"]
    assert os.listdir(root / "a") == ["x"]
    assert sorted(os.listdir(root / "o")) == ["d", "new2"]
    assert os.listdir(root / "o/d") == ["new1"]
    assert not (root / "missing").exists()


def test_whiteouts_overlay(target: Target) -> None:
    root = target.root
    apply(
        root,
        LayerTar().dir("a").whiteout("a/gone").opaque("a").file("a/kept", b"k").bytes(),
        whiteouts=WhiteoutMode.OVERLAY,
    )
    gone = os.lstat(root / "a/gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(root / "a", "trusted.overlay.opaque") == b"y"
    assert (root / "a/kept").read_bytes() == b"k"


def test_overlay_parents_copy_up_and_symlinks(target: Target) -> None:
    lower = target.root.parent / "sentinel" / "lower"  # read only: the sentinel check proves it
    upper = target.root
    lower.mkdir()
    apply(
        lower,
        LayerTar()
        .dir("usr", mode=0o751, uid=9, mtime=5)
        .dir("usr/lib")
        .symlink("lib", "usr/lib")
        .symlink("abs", "/usr")
        .bytes(),
    )
    target.before = snapshot_tree(target.sentinel)
    apply(
        upper,
        LayerTar().file("usr/new", b"n").file("lib/libc.so", b"c").file("abs/lib/x", b"x").bytes(),
        whiteouts=WhiteoutMode.OVERLAY,
        parents=[lower],
    )
    usr = os.lstat(upper / "usr")
    assert (stat.S_IMODE(usr.st_mode), usr.st_uid, usr.st_mtime) == (0o751, 9, 5)
    assert (upper / "usr/lib/libc.so").read_bytes() == b"c"
    assert (upper / "usr/lib/x").read_bytes() == b"x"
    assert not (upper / "lib").exists()


def test_compressed_layers(target: Target) -> None:
    layer = LayerTar().file("f", b"data" * 1000).bytes()
    gz = igzip.compress(layer[:5000]) + igzip.compress(layer[5000:])  # two gzip members
    zst = zstandard.ZstdCompressor().compress(layer[:7000]) + zstandard.ZstdCompressor().compress(layer[7000:])
    want = "sha256:" + hashlib.sha256(layer).hexdigest()
    for blob, mt in (
        (gz, "application/vnd.oci.image.layer.v1.tar+gzip"),
        (gz, ""),
        (zst, ""),
        (zst, "application/vnd.oci.image.layer.v1.tar+zstd"),
        (layer, ""),
    ):
        (target.root / "f").unlink(missing_ok=True)
        r = apply(target.root, blob, media_type=mt, expected_diff_id=want)
        assert r.diff_id == want and r.size == len(layer)
        if blob is not layer:
            assert r.compressed_size == len(blob)
        assert (target.root / "f").read_bytes() == b"data" * 1000


def test_diff_id_covers_trailing_bytes(target: Target) -> None:
    layer = LayerTar().file("f", b"x").bytes() + b"\0" * 4096
    assert apply(target.root, layer).diff_id == "sha256:" + hashlib.sha256(layer).hexdigest()


def test_root_entry_and_dot_names(target: Target) -> None:
    layer = LayerTar().dir("./", mode=0o700).dir("./a/").file("./a/./b", b"b").file("/abs/c", b"c").bytes()
    mode = os.lstat(target.root).st_mode
    apply(target.root, layer)
    assert os.lstat(target.root).st_mode == mode
    assert (target.root / "a/b").read_bytes() == b"b" and (target.root / "abs/c").read_bytes() == b"c"


@pytest.mark.parametrize("order", ["whiteout-first", "whiteout-last"])
def test_whiteout_spares_the_same_layer(tmp_path: Path, order: str) -> None:
    """The spec: a whiteout hides lower layers' files only, wherever it comes in its own layer."""
    import subprocess

    from .treecmp import differences

    lower = LayerTar().dir("a").file("a/lower", b"l").file("f", b"old").dir("g").file("g/lower", b"l").bytes()
    t = LayerTar()
    if order == "whiteout-first":
        t.whiteout("a").whiteout("f").whiteout("g").dir("a").file("a/new", b"n").file("f", b"new").file("g/x", b"x")
    else:
        t.dir("a").file("a/new", b"n").file("f", b"new").file("g/x", b"x").whiteout("a").whiteout("f").whiteout("g")
    upper = t.bytes()
    flat, up0, up1, mnt = (tmp_path / n for n in ("flat", "up0", "up1", "mnt"))
    for d in (flat, up0, up1, mnt):
        d.mkdir()
    for blob in (lower, upper):
        apply(flat, blob)
    apply(up0, lower, whiteouts=WhiteoutMode.OVERLAY)
    apply(up1, upper, whiteouts=WhiteoutMode.OVERLAY, parents=[up0])
    assert sorted(os.listdir(flat)) == ["a", "f", "g"]
    assert os.listdir(flat / "a") == ["new"] and os.listdir(flat / "g") == ["x"]
    assert (flat / "f").read_bytes() == b"new"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={up1}:{up0}", str(mnt)], check=True)
    try:
        merged = snapshot_tree(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    assert differences(snapshot_tree(flat), merged, ignore=["mtime_ns"]) == []


def test_walks_from_cached_directories_climb_and_restart(target: Target) -> None:
    """Names resolved below a cached directory through ``..`` and absolute symlinks land where a chroot puts them."""
    layer = (
        LayerTar()
        .dir("a")
        .dir("a/b")
        .dir("a/b/c")
        .file("a/b/c/first")  # a/b/c is cached from here on
        .symlink("a/b/c/up", "../..")  # climbs above a/b/c: the walk starts again at the root
        .file("a/b/c/up/x/in-x", b"1")
        .symlink("a/b/c/abs", "/a/b")  # absolute: the root of the layer, not of the host
        .file("a/b/c/abs/in-b", b"2")
        .symlink("a/b/c/side", "../c2")  # stays below a/b: resolved from the cached a/b/c's parent chain
        .file("a/b/c/side/in-c2", b"3")
        .dir("a/b/c/d")
        .dir("a/b/c/d/e")  # a new directory below a cached one
        .file("a/b/c/d/e/deep", b"4")
        .bytes()
    )
    apply(target.root, layer)
    root = target.root
    assert (root / "a/x/in-x").read_bytes() == b"1"
    assert (root / "a/b/in-b").read_bytes() == b"2"
    assert (root / "a/b/c2/in-c2").read_bytes() == b"3"
    assert (root / "a/b/c/d/e/deep").read_bytes() == b"4"
    assert (root / "a/b/c/up").is_symlink() and (root / "a/b/c/abs").is_symlink()
    # Each name went where it was meant to and nowhere else.
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    assert found == ["a/b/c/d/e/deep", "a/b/c/first", "a/b/c2/in-c2", "a/b/in-b", "a/x/in-x"]


def test_overlay_hardlink_to_a_lower_layers_file_copies_it_up(target: Target) -> None:
    """As a link made through the mounted overlay: the lower file is copied up, then linked; whiteouts still hide."""
    lower = target.root.parent / "sentinel" / "lower"  # under the sentinel: it must not change
    lower.mkdir()
    apply(
        lower,
        LayerTar()
        .dir("usr", mode=0o750, uid=4, mtime=7)
        .dir("usr/bin", mode=0o755)
        .file("usr/bin/tool", b"#!tool", mode=0o4711, uid=5, gid=6, mtime=99, xattrs={"user.k": "v"})
        .symlink("usr/bin/alias", "tool", uid=5)
        .file("usr/bin/gone", b"g")
        .bytes(),
    )
    target.before = snapshot_tree(target.sentinel)
    upper = target.root
    apply(
        upper,
        LayerTar().hardlink("usr/bin/tool2", "usr/bin/tool").hardlink("sbin/alias2", "usr/bin/alias").bytes(),
        whiteouts=WhiteoutMode.OVERLAY,
        parents=[lower],
    )
    tool, tool2 = os.lstat(upper / "usr/bin/tool"), os.lstat(upper / "usr/bin/tool2")
    assert tool.st_ino == tool2.st_ino and tool.st_nlink == 2
    assert (stat.S_IMODE(tool.st_mode), tool.st_uid, tool.st_gid, tool.st_mtime) == (0o4711, 5, 6, 99)
    assert (upper / "usr/bin/tool2").read_bytes() == b"#!tool"
    assert os.getxattr(upper / "usr/bin/tool", "user.k") == b"v"
    assert os.readlink(upper / "sbin/alias2") == "tool" and os.lstat(upper / "sbin/alias2").st_uid == 5
    usr = os.lstat(upper / "usr")  # the directories on the way were copied up with their metadata
    assert (stat.S_IMODE(usr.st_mode), usr.st_uid, usr.st_mtime) == (0o750, 4, 7)
    target.assert_sentinel_untouched()
    # A whited-out lower file is not there to link to.
    second = target.root.parent / "second"
    second.mkdir()
    apply(second, LayerTar().whiteout("usr/bin/gone").bytes(), whiteouts=WhiteoutMode.OVERLAY, parents=[lower])
    third = target.root.parent / "third"
    third.mkdir()
    with pytest.raises(InvalidArgument, match="does not exist in the layer"):
        apply(
            third,
            LayerTar().hardlink("x", "usr/bin/gone").bytes(),
            whiteouts=WhiteoutMode.OVERLAY,
            parents=[second, lower],
        )
    shutil.rmtree(second)
    shutil.rmtree(third)


def test_owner_and_mode_exact_under_a_setgid_directory_and_any_umask(target: Target) -> None:
    """Files the layer owns as root stay root's even where a setgid directory would hand down its group."""
    old = os.umask(0o077)  # stricter than the modes the layer asks for
    try:
        apply(
            target.root,
            LayerTar()
            .dir("shared", mode=0o2775, gid=50)
            .file("shared/rootfile", b"r", mode=0o644)
            .file("shared/app", b"a", mode=0o640, uid=1000, gid=1000)
            .file("plain", b"p", mode=0o755)
            .file("sticky", b"s", mode=0o1777)
            .bytes(),
        )
    finally:
        os.umask(old)
    for name, want in (
        ("shared/rootfile", (0o644, 0, 0)),
        ("shared/app", (0o640, 1000, 1000)),
        ("plain", (0o755, 0, 0)),
        ("sticky", (0o1777, 0, 0)),
    ):
        st = os.lstat(target.root / name)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == want, name
    shared = os.lstat(target.root / "shared")
    assert (stat.S_IMODE(shared.st_mode), shared.st_gid) == (0o2775, 50)
