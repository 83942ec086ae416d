"""Write the layer between two trees, or the layer an overlayfs upper directory holds.

:func:`write_diff` walks the trees in a fixed order (depth first, names
sorted by their bytes) and writes a pax tar through the chosen compressor,
hashing both sides: the result carries the blob's digest and size and the
diffID.  The same trees always give the same bytes: headers are fixed
(no owner names, no access times, whiteouts dated 0), modification times
are kept to the nanosecond.

Two trees (``lower`` may be None, the empty tree): an entry of ``upper`` is
written when it is new or differs from ``lower`` in type, permission bits,
owner, size, modification time, device number, link target, extended
attributes, or (when size and time agree and the time is whole seconds, as
after a tar extraction, so that it may hide a change) content.  A name of
``lower`` missing from ``upper`` becomes ``.wh.<name>``; a directory that
stayed is written again only if it changed, or as the parent of a written
entry (so that applying the layer anywhere recreates it faithfully).

Overlay upper directory (``upper_is_overlay``): every entry is written; a 0/0
character device is the whiteout ``.wh.<name>``, a directory marked
``trusted.overlay.opaque=y`` is followed by ``.wh..wh..opq``, overlay's own
attributes are dropped.  Upper directories that depend on metadata stored in
attributes (``redirect_dir``, ``metacopy``) cannot be expressed as a tar and
are refused.

Files linked more than once are written once and then as hard links to the
first name written.  Sockets are skipped: tar has no type for them.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, cast

from ..errors import FailedPrecondition, quote
from ._fsroot import OPAQUE_XATTR
from ._tarwrite import (
    BLOCKDEV,
    CHAR,
    DIRECTORY,
    END_OF_ARCHIVE,
    FIFO,
    HARDLINK,
    REGULAR,
    SYMLINK,
    TarHeader,
    encode_header,
    padding,
)
from .apply import OPAQUE_MARKER, WHITEOUT_PREFIX
from .compression import Compression, open_compressed

__all__ = ["DiffResult", "write_diff"]

_CHUNK: Final = 1 << 20
_OVERLAY_XATTRS: Final = "trusted.overlay."
_UNSUPPORTED_OVERLAY: Final = ("trusted.overlay.redirect", "trusted.overlay.metacopy")


@dataclass(frozen=True)
class DiffResult:
    digest: str  # "sha256:<hex>" of the blob written (compressed)
    size: int  # bytes of the blob written
    diff_id: str  # "sha256:<hex>" of the uncompressed tar
    uncompressed_size: int


class _Counting:
    """Hashes and counts bytes on their way to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.out.write(data)
        return len(data)


@dataclass(frozen=True, slots=True)
class _Node:
    path: str  # relative to the tree's top, "/" separated
    st: os.stat_result
    xattrs: dict[str, bytes]


def _xattrs(path: str, is_link: bool) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=not is_link)
    except OSError:
        return {}
    out: dict[str, bytes] = {}
    for key in sorted(names):
        try:
            out[key] = os.getxattr(path, key, follow_symlinks=not is_link)
        except OSError:
            continue
    return out


def _node(top: str, rel: str) -> _Node | None:
    path = os.path.join(top, rel)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return _Node(rel, st, _xattrs(path, stat.S_ISLNK(st.st_mode)))


def _names(path: str) -> list[str]:
    return sorted(os.listdir(path), key=os.fsencode)


def _same_content(a: str, b: str) -> bool:
    with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
        while True:
            x = fa.read(_CHUNK)
            if x != fb.read(_CHUNK):
                return False
            if not x:
                return True


class _Writer:
    """Turns nodes into tar members on ``tar`` (the uncompressed stream)."""

    def __init__(self, tar: _Counting, upper: str) -> None:
        self.tar = tar
        self.upper = upper
        self.links: dict[tuple[int, int], str] = {}
        self.buf = bytearray(_CHUNK)

    def whiteout(self, parent: str, name: str) -> None:
        path = f"{parent}/{name}" if parent else name
        self.tar.write(encode_header(TarHeader(name=path, type=REGULAR)))

    def node(self, n: _Node) -> None:
        st = n.st
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFREG:
            if st.st_nlink > 1:
                first = self.links.setdefault((st.st_dev, st.st_ino), n.path)
                if first != n.path:
                    self.tar.write(encode_header(_header(n, n.path, HARDLINK, linkname=first)))
                    return
            self._file(n)
            return
        if fmt == stat.S_IFDIR:
            header = _header(n, n.path + "/", DIRECTORY)
        elif fmt == stat.S_IFLNK:
            header = _header(n, n.path, SYMLINK, linkname=os.readlink(os.path.join(self.upper, n.path)))
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            header = _header(
                n,
                n.path,
                CHAR if fmt == stat.S_IFCHR else BLOCKDEV,
                devmajor=os.major(st.st_rdev),
                devminor=os.minor(st.st_rdev),
            )
        elif fmt == stat.S_IFIFO:
            header = _header(n, n.path, FIFO)
        else:
            return  # sockets and the like: tar cannot hold them
        self.tar.write(encode_header(header))

    def _file(self, n: _Node) -> None:
        size = n.st.st_size
        fd = os.open(os.path.join(self.upper, n.path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            self.tar.write(encode_header(_header(n, n.path, REGULAR, size=size)))
            view = memoryview(self.buf)
            left = size
            while left:
                got = os.readv(fd, [view[: min(left, _CHUNK)]])
                if not got:
                    raise FailedPrecondition(f"write diff: {quote(n.path)} shrank while it was read")
                self.tar.write(view[:got])
                left -= got
            if os.read(fd, 1):
                raise FailedPrecondition(f"write diff: {quote(n.path)} grew while it was read")
        finally:
            os.close(fd)
        self.tar.write(padding(size))


def _own_xattrs(xattrs: dict[str, bytes]) -> dict[str, bytes]:
    """The attributes a layer carries: all but overlayfs's bookkeeping."""
    return {k: v for k, v in xattrs.items() if not k.startswith(_OVERLAY_XATTRS)}


def _header(
    n: _Node, name: str, typeflag: bytes, *, size: int = 0, linkname: str = "", devmajor: int = 0, devminor: int = 0
) -> TarHeader:
    st = n.st
    return TarHeader(
        name=name,
        type=typeflag,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        size=size,
        mtime_ns=st.st_mtime_ns,
        linkname=linkname,
        devmajor=devmajor,
        devminor=devminor,
        xattrs=_own_xattrs(n.xattrs),
    )


def _changed(lower_top: str, lo: _Node, up: _Node, upper_top: str) -> bool:
    a, b = lo.st, up.st
    if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode):
        return True
    if (a.st_mode, a.st_uid, a.st_gid, a.st_mtime_ns) != (b.st_mode, b.st_uid, b.st_gid, b.st_mtime_ns):
        return True
    if _own_xattrs(lo.xattrs) != _own_xattrs(up.xattrs):
        return True
    fmt = stat.S_IFMT(a.st_mode)
    if fmt in (stat.S_IFCHR, stat.S_IFBLK):
        return a.st_rdev != b.st_rdev
    if fmt == stat.S_IFLNK:
        return os.readlink(os.path.join(lower_top, lo.path)) != os.readlink(os.path.join(upper_top, up.path))
    if fmt == stat.S_IFREG:
        if a.st_size != b.st_size:
            return True
        if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
            return False
        if b.st_mtime_ns % 1_000_000_000 == 0:
            return not _same_content(os.path.join(lower_top, lo.path), os.path.join(upper_top, up.path))
    return False


def _tree_changes(lower: str | None, upper: str, w: _Writer) -> None:
    pending: list[_Node] = []  # directories kept as they were, written only as parents of a change

    def emit(n: _Node) -> None:
        for p in pending:
            w.node(p)
        pending.clear()
        w.node(n)

    def add_tree(n: _Node) -> None:
        emit(n)
        if stat.S_ISDIR(n.st.st_mode):
            for name in _names(os.path.join(upper, n.path)):
                child = _node(upper, f"{n.path}/{name}")
                if child is not None:
                    add_tree(child)

    def walk(rel: str, lower_is_dir: bool) -> None:
        up_names = _names(os.path.join(upper, rel))
        lo_names = _names(os.path.join(lower, rel)) if lower is not None and lower_is_dir else []
        up_set, lo_set = set(up_names), set(lo_names)
        for name in sorted(up_set | lo_set, key=os.fsencode):
            path = f"{rel}/{name}" if rel else name
            if name not in up_set:
                for p in pending:
                    w.node(p)
                pending.clear()
                w.whiteout(rel, WHITEOUT_PREFIX + name)
                continue
            up = _node(upper, path)
            if up is None:
                continue
            lo = _node(lower, path) if lower is not None and name in lo_set else None
            if lo is None:
                add_tree(up)
                continue
            up_dir, lo_dir = stat.S_ISDIR(up.st.st_mode), stat.S_ISDIR(lo.st.st_mode)
            if up_dir and lo_dir:
                depth = len(pending)
                if _changed(lower or "", lo, up, upper):
                    emit(up)
                else:
                    pending.append(up)
                walk(path, True)
                del pending[depth:]
            elif up_dir:
                add_tree(up)  # replaced a file: all that is inside is new
            elif _changed(lower or "", lo, up, upper):
                emit(up)

    walk("", True)


def _overlay_changes(upper: str, w: _Writer) -> None:
    def walk(rel: str) -> None:
        for name in _names(os.path.join(upper, rel) if rel else upper):
            path = f"{rel}/{name}" if rel else name
            n = _node(upper, path)
            if n is None:
                continue
            for key in _UNSUPPORTED_OVERLAY:
                if key in n.xattrs:
                    raise FailedPrecondition(
                        f"write diff: {quote(path)} carries {key}: upper directories of overlay mounts with "
                        "redirect_dir or metacopy cannot be written as a layer"
                    )
            mode = n.st.st_mode
            if stat.S_ISCHR(mode) and n.st.st_rdev == 0:
                w.whiteout(rel, WHITEOUT_PREFIX + name)
                continue
            w.node(n)
            if stat.S_ISDIR(mode):
                if n.xattrs.get(OPAQUE_XATTR) == b"y":
                    w.whiteout(path, OPAQUE_MARKER)
                walk(path)

    walk("")


def write_diff(
    out: BinaryIO,
    lower: Path | None,
    upper: Path,
    *,
    upper_is_overlay: bool = False,
    compression: Compression = Compression.GZIP,
) -> DiffResult:
    """Write to ``out`` the layer that turns ``lower`` into ``upper`` (or that overlay upper dir ``upper`` holds).

    ``out`` is left open.  Raises FailedPrecondition when a file changes
    while it is read or the upper directory cannot be expressed as a tar.
    """
    blob = _Counting(out)
    compressor = open_compressed(cast(BinaryIO, blob), compression)
    try:
        tar = _Counting(compressor)
        w = _Writer(tar, str(upper))
        if upper_is_overlay:
            _overlay_changes(str(upper), w)
        else:
            _tree_changes(str(lower) if lower is not None else None, str(upper), w)
        tar.write(END_OF_ARCHIVE)
    finally:
        compressor.close()
    return DiffResult(
        digest="sha256:" + blob.hash.hexdigest(),
        size=blob.size,
        diff_id="sha256:" + tar.hash.hexdigest(),
        uncompressed_size=tar.size,
    )
