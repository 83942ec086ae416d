"""Fuzz target: the layer applier (tar parser, compression sniffing, name resolution, extraction).

An input is one mode byte then a layer blob (tar, tar+gzip or tar+zstd,
sniffed).  Bit 0 of the mode byte picks the whiteout mode: DELETE into a
root that already holds symlinks aiming out of it, or OVERLAY into an empty
upper directory over a lower one that holds them.  Each input is applied
into a private directory; afterwards, whether it was applied or refused:

* only :class:`~pycontainerd.errors.ContainerdError` left ``apply_layer``;
* everything beside the root (a sentinel tree, the lower directory, the
  target of an outside symlink) is exactly as it was;
* device nodes exist only as the layer declared them (and overlay's 0/0
  whiteouts in overlay mode);
* setuid/setgid bits only with a mode some entry of the layer declared;
* the apply took less than :data:`DEADLINE` seconds.

Run standalone: ``python -m tests.reliability.fuzz.fuzz_tar [libFuzzer flags] [CORPUS]``.
"""

from __future__ import annotations

import atexit
import functools
import gzip
import io
import os
import shutil
import stat
import tarfile
import tempfile
import time
from pathlib import Path

import zstandard

from tests.diff.layers import LayerTar
from tests.diff.treecmp import Entry, differences, snapshot_tree

from ._harness import instrumented, main

with instrumented():
    from pycontainerd.diff import WhiteoutMode, apply_layer
    from pycontainerd.diff._tarparse import NEED_DATA, EntryType, TarEntry, TarParser
    from pycontainerd.diff.compression import Compression, open_decompressed, sniff
    from pycontainerd.errors import ContainerdError

__all__ = ["DEADLINE", "one_input", "seeds"]

DEADLINE = 10.0
_DECLARED_READ = 64 << 20  # how much of a layer the invariant checks read back


class _Place:
    """The directories one process fuzzes in, made once."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="fuzz-tar-"))
        atexit.register(shutil.rmtree, self.base, True)
        self.parent = self.base / "parent"
        self.root = self.parent / "root"
        sentinel = self.parent / "sentinel"
        (sentinel / "etc").mkdir(parents=True)
        (sentinel / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
        (sentinel / "file").write_bytes(b"precious")
        elsewhere = self.base / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "file").write_bytes(b"far away")
        os.symlink(elsewhere, self.parent / "outside")
        self.lower = self.parent / "lower"
        self.lower.mkdir()
        self._populate(self.lower)
        self.root.mkdir()
        self.before = self._outside()

    def _populate(self, d: Path) -> None:
        """What a lower layer could hold: links aiming out of the root, by absolute and relative paths."""
        os.symlink(self.parent / "sentinel", d / "abs")
        os.symlink("../sentinel", d / "rel")
        os.symlink("../../../../../..", d / "up")
        os.symlink("/", d / "slash")
        os.symlink(self.base / "elsewhere", d / "far")
        (d / "etc").mkdir()
        (d / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
        (d / "dir" / "sub").mkdir(parents=True)
        (d / "dir" / "file").write_bytes(b"lower")
        os.link(d / "dir" / "file", d / "dir" / "link")

    def _outside(self) -> dict[str, Entry]:
        return {
            k: v for k, v in snapshot_tree(self.base).items() if k != "parent/root" and not k.startswith("parent/root/")
        }

    def reset(self, overlay: bool) -> None:
        for child in list(os.scandir(self.root)):
            if child.is_dir(follow_symlinks=False):
                shutil.rmtree(child.path)
            else:
                os.unlink(child.path)
        os.chmod(self.root, 0o755)
        if not overlay:
            self._populate(self.root)

    def check_outside(self) -> None:
        diff = differences(self.before, self._outside())
        assert not diff, f"written outside the root: {diff}"


@functools.cache
def _the_place() -> _Place:
    return _Place()


def _declared(blob: bytes) -> list[TarEntry]:
    """The entries the layer declares, as far as it can be read (what the applier saw)."""
    out: list[TarEntry] = []
    try:
        stream = open_decompressed(io.BytesIO(blob), sniff(blob[:4]))
        parser = TarParser()
        left = _DECLARED_READ
        while left > 0 and (chunk := stream.read(min(left, 1 << 20))):
            left -= len(chunk)
            parser.feed(chunk)
            while (ev := parser.next_event()) is not NEED_DATA:
                if isinstance(ev, TarEntry):
                    out.append(ev)
    except ContainerdError:
        pass
    return out


def _check_tree(root: Path, declared: list[TarEntry], overlay: bool) -> None:
    devices = {
        ("char" if e.type is EntryType.CHAR else "block", e.devmajor, e.devminor)
        for e in declared
        if e.type in (EntryType.CHAR, EntryType.BLOCK)
    }
    special = {e.mode for e in declared if e.mode & (stat.S_ISUID | stat.S_ISGID)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            mode = st.st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                kind = "char" if stat.S_ISCHR(mode) else "block"
                dev = (kind, os.major(st.st_rdev), os.minor(st.st_rdev))
                whiteout = overlay and dev == ("char", 0, 0)
                assert whiteout or dev in devices, f"{path}: device {dev} the layer did not declare"
            if mode & (stat.S_ISUID | stat.S_ISGID):
                assert stat.S_IMODE(mode) in special, f"{path}: mode {stat.S_IMODE(mode):o} not declared by the layer"


def one_input(data: bytes) -> None:
    if not data:
        return
    place = _the_place()
    overlay = bool(data[0] & 1)
    blob = data[1:]
    place.reset(overlay)
    mode = WhiteoutMode.OVERLAY if overlay else WhiteoutMode.DELETE
    parents = [place.lower] if overlay else []
    start = time.monotonic()
    try:
        apply_layer(place.root, io.BytesIO(blob), whiteouts=mode, parents=parents)
    except ContainerdError:
        pass
    took = time.monotonic() - start
    place.check_outside()
    _check_tree(place.root, _declared(blob), overlay)
    assert took < DEADLINE, f"apply took {took:.1f} s"


def _hostile() -> dict[str, bytes]:
    t = LayerTar
    return {
        "abs-through-symlink": t().file("abs/file", b"pwned").file("abs/etc/passwd", b"pwned").bytes(),
        "rel-through-symlink": t().file("rel/file", b"pwned").dir("rel/new").bytes(),
        "up-through-symlink": t().file("up/tmp/pwned", b"x").bytes(),
        "far-through-symlink": t().file("far/file", b"pwned").bytes(),
        "hardlink-out": t().hardlink("passwd", "abs/etc/passwd").hardlink("x", "../sentinel/file").bytes(),
        "hardlink-lower": t().hardlink("new", "dir/file").file("dir/link", b"y").bytes(),
        "symlink-then-file": t().symlink("a", "/../../sentinel").file("a/file", b"pwned").bytes(),
        "dotdot": t().file("../sentinel/file", b"pwned").bytes(),
        "whiteouts": t().whiteout("abs").whiteout("dir/file").opaque("dir").dir("etc").opaque("etc").bytes(),
        "whiteout-through-link": t().whiteout("abs/file").whiteout("far/file").bytes(),
        "devices": t().char("null", 1, 3).char("wh", 0, 0).fifo("fifo").bytes(),
        "setuid": t()
        .file("bin/su", b"#!", mode=0o4755)
        .dir("shared", mode=0o2775)
        .file("shared/f", b"", mode=0o640)
        .bytes(),
        "xattrs": t().file("cap", b"x", xattrs={"security.capability": "\x01\x00\x00\x02", "user.k": "v"}).bytes(),
        "gnu-long": LayerTar(fmt=tarfile.GNU_FORMAT).file("n" * 300, b"long").symlink("l", "t" * 300).bytes(),
        "ustar": LayerTar(fmt=tarfile.USTAR_FORMAT).file("a/b", b"ustar").dir("d/").bytes(),
    }


def seeds() -> dict[str, bytes]:
    """Real layers: busybox's first bytes in a tree like an image's, the hostile cases of tests/diff, compressed too."""
    with open("/bin/busybox", "rb") as f:
        busybox = f.read(48 << 10)
    tree = (
        LayerTar()
        .dir("bin")
        .file("bin/busybox", busybox, mode=0o755)
        .symlink("bin/sh", "busybox")
        .hardlink("bin/ls", "bin/busybox")
        .dir("etc")
        .file("etc/hostname", b"fuzz\n")
        .dir("tmp", mode=0o1777)
        .bytes()
    )
    layers = {"busybox": tree, **_hostile()}
    out: dict[str, bytes] = {}
    for name, raw in layers.items():
        out[f"{name}.delete"] = b"\x00" + raw
        out[f"{name}.overlay"] = b"\x01" + raw
    for name in ("busybox", "whiteouts", "gnu-long"):
        out[f"{name}.gz"] = b"\x00" + gzip.compress(layers[name], mtime=0)
        out[f"{name}.zst"] = b"\x01" + zstandard.ZstdCompressor().compress(layers[name])
    assert sniff(out["busybox.gz"][1:5]) is Compression.GZIP
    return out


if __name__ == "__main__":
    main(one_input, seeds)
