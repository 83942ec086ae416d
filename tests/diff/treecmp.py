"""Snapshot a directory tree entry by entry, to compare unpackers (ours, umoci, an overlay mount).

``snapshot_tree(root)`` maps each relative path to an :class:`Entry` of
what an image's consumer can observe: type, permission bits, owner, size,
content digest, link target, device number, extended attributes, times,
and which paths are hard links of one another.  ``differences`` lists how
two snapshots disagree, one line per path, with fields to ignore.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

__all__ = ["Entry", "differences", "snapshot_tree"]

# attributes that unpackers or overlayfs keep for themselves
_PRIVATE_XATTRS = ("trusted.overlay.", "user.overlay.", "user.rootlesscontainers", "security.selinux")


@dataclass(frozen=True)
class Entry:
    type: str  # "file", "dir", "symlink", "char", "block", "fifo", "socket"
    mode: int  # permission bits with setuid/setgid/sticky
    uid: int
    gid: int
    size: int = 0  # regular files only
    sha256: str = ""  # regular files only
    link: str = ""  # symlink target
    rdev: tuple[int, int] = (0, 0)  # devices: (major, minor)
    xattrs: dict[str, bytes] = field(default_factory=dict)
    mtime_ns: int = 0
    hardlinks: frozenset[str] = frozenset()  # the other names of this file in the tree


_TYPES = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "dir",
    stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "char",
    stat.S_IFBLK: "block",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


def _xattrs(path: str, is_link: bool) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        names = os.listxattr(path, follow_symlinks=not is_link)
    except OSError:
        return out
    for name in names:
        if name.startswith(_PRIVATE_XATTRS):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=not is_link)
        except OSError:
            continue
    return out


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def snapshot_tree(root: Path) -> dict[str, Entry]:
    """Every entry below ``root`` (not ``root`` itself), keyed by its "/"-separated relative path."""
    raw: dict[str, tuple[os.stat_result, Entry]] = {}
    top = str(root)
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            st = os.lstat(path)
            kind = _TYPES[stat.S_IFMT(st.st_mode)]
            entry = Entry(
                type=kind,
                mode=stat.S_IMODE(st.st_mode),
                uid=st.st_uid,
                gid=st.st_gid,
                size=st.st_size if kind == "file" else 0,
                sha256=_digest(path) if kind == "file" else "",
                link=os.readlink(path) if kind == "symlink" else "",
                rdev=(os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in ("char", "block") else (0, 0),
                xattrs=_xattrs(path, kind == "symlink"),
                mtime_ns=st.st_mtime_ns,
            )
            raw[rel] = (st, entry)
    by_inode: dict[tuple[int, int], set[str]] = {}
    for rel, (st, entry) in raw.items():
        if entry.type == "file" and st.st_nlink > 1:
            by_inode.setdefault((st.st_dev, st.st_ino), set()).add(rel)
    out: dict[str, Entry] = {}
    for rel, (st, entry) in raw.items():
        names = by_inode.get((st.st_dev, st.st_ino), set()) if entry.type == "file" else set()
        others = frozenset(names - {rel})
        out[rel] = Entry(**{**{f.name: getattr(entry, f.name) for f in fields(Entry)}, "hardlinks": others})
    return out


def differences(a: dict[str, Entry], b: dict[str, Entry], *, ignore: Iterable[str] = ()) -> list[str]:
    """How ``b`` differs from ``a``: one line per path, naming the fields (except ``ignore``) that differ."""
    skip = set(ignore)
    out: list[str] = []
    for path in sorted(a.keys() | b.keys()):
        if path not in b:
            out.append(f"{path}: only in the first tree ({a[path].type})")
        elif path not in a:
            out.append(f"{path}: only in the second tree ({b[path].type})")
        else:
            x, y = a[path], b[path]
            diffs = [
                f"{f.name} {getattr(x, f.name)!r} != {getattr(y, f.name)!r}"
                for f in fields(Entry)
                if f.name not in skip and getattr(x, f.name) != getattr(y, f.name)
            ]
            if diffs:
                out.append(f"{path}: " + "; ".join(diffs))
    return out
