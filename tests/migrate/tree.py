"""A checksum tree of a directory: every entry's path, type, mode, owner, size, times, xattrs and contents."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

__all__ = ["checksum_tree"]


def _entry(path: str, st: os.stat_result) -> str:
    parts = [path, oct(st.st_mode), str(st.st_uid), str(st.st_gid), str(st.st_mtime_ns), str(st.st_nlink)]
    if stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        parts += [str(st.st_size), digest.hexdigest()]
    elif stat.S_ISLNK(st.st_mode):
        parts.append(os.readlink(path))
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        parts.append(f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}")
    if not stat.S_ISLNK(st.st_mode):
        for name in sorted(os.listxattr(path, follow_symlinks=False)):
            parts.append(f"{name}={os.getxattr(path, name, follow_symlinks=False).hex()}")
    return "\\0".join(parts)


def checksum_tree(root: Path) -> dict[str, str]:
    """Relative path -> a digest of everything about it that a reader must leave alone (access times aside)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*filenames, *dirnames, *([""] if dirpath == str(root) else [])]:
            path = os.path.join(dirpath, name) if name else dirpath
            out[os.path.relpath(path, root)] = hashlib.sha256(_entry(path, os.lstat(path)).encode()).hexdigest()
    return out
