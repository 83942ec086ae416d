"""Safe name resolution inside the directory a layer is applied to.

Every directory of the target is reached by opening one component at a time
from the root's file descriptor with ``O_NOFOLLOW``; nothing is ever looked
up by an absolute path string, so no symlink met on the way (whether it
came from a lower layer or from an earlier entry of the same layer) can
carry a write outside the root.

Symlinks met in the *directory* part of a name are followed the way a
container sees them: an absolute target starts again at the root (``/`` is
the root, as in a chroot), a relative one from the directory holding the
link.  A relative target that climbs above the root (``a -> ../../..``) is
hostile input and refused: a real image never needs it, while absolute
targets such as ``var/run -> /run`` are common and must keep working.

With lower directories (overlay mode: ``parents``, highest first) a missing
component is looked up in the merged view: the first layer that has it
decides, whiteouts (0/0 character devices) and opaque directories hide what
is below them.  A directory found only in a lower layer is created in the
target with the lower one's owner, mode, times and extended attributes (a
copy-up of its metadata), so the merged view keeps them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from ..errors import InvalidArgument, quote

__all__ = ["OPAQUE_XATTR", "FsRoot", "split_name"]

OPAQUE_XATTR: Final = "trusted.overlay.opaque"
_MAX_LINKS: Final = 40  # symlinks followed while resolving one name, as the kernel's ELOOP limit
_CACHE_SIZE: Final = 32
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS: Final = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def split_name(name: str) -> list[str]:
    """An archive name as components below the root: leading ``/`` ignored, ``.`` dropped, ``..`` applied.

    A ``..`` that would climb above the root is refused.
    """
    out: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not out:
                raise InvalidArgument(f"tar entry {quote(name)}: the name climbs out of the root with ..")
            out.pop()
        else:
            out.append(part)
    return out


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is_opaque(fd: int) -> bool:
    try:
        return os.getxattr(f"/proc/self/fd/{fd}", OPAQUE_XATTR) == b"y"
    except OSError:
        return False


class _Climb(Exception):
    """A walk begun at a cached directory must go above it: begin again at the root."""


class _Level:
    """One directory of a walk: the target's fd for it, and the lower layers' fds that still show through."""

    __slots__ = ("fd", "lowers")

    def __init__(self, fd: int, lowers: list[int]) -> None:
        self.fd = fd
        self.lowers = lowers

    def close(self, keep: int = -1) -> None:
        if self.fd != keep:
            os.close(self.fd)
        for fd in self.lowers:
            os.close(fd)


class FsRoot:
    """The target directory (and its read-only lower layers), walked by file descriptor.

    ``directory(parts)`` hands back an fd of the directory named by ``parts``
    (owned by the FsRoot: do not close it; it stays open until the next
    :meth:`release`) and its *physical* path, the components the walk really
    went through after following symlinks.  Resolutions are cached; call
    :meth:`invalidate` after anything that may change what a name resolves
    to (a directory or symlink created or removed, a whiteout, an opaque
    directory).
    """

    def __init__(self, root: Path, parents: Sequence[Path] = (), *, overlay: bool = False) -> None:
        self.overlay = overlay
        self.root_fd = os.open(root, _DIR_FLAGS)
        self._lower_roots: list[int] = []
        try:
            for p in parents:
                self._lower_roots.append(os.open(p, _PATH_FLAGS))
        except OSError:
            self.close()
            raise
        self._cache: OrderedDict[tuple[str, ...], tuple[int, tuple[str, ...]]] = OrderedDict()
        self._retired: list[int] = []
        # directories copied up from a lower layer, whose times to restore once the layer is in
        self.copied_up: list[tuple[list[str], int, int]] = []

    def close(self) -> None:
        self.invalidate()
        self.release()
        for fd in self._lower_roots:
            os.close(fd)
        self._lower_roots = []
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def __enter__(self) -> FsRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def invalidate(self) -> None:
        """Forget every cached resolution; the fds handed out stay open until :meth:`release`."""
        for fd, _ in self._cache.values():
            if fd != self.root_fd:
                self._retired.append(fd)
        self._cache.clear()

    def release(self) -> None:
        """Close the fds that invalidation or eviction retired: call when none handed out is in use."""
        for fd in self._retired:
            os.close(fd)
        self._retired.clear()

    # -- resolution ------------------------------------------------------

    def directory(self, parts: Sequence[str], *, create: bool, entry: str) -> tuple[int, tuple[str, ...]] | None:
        """The fd and physical path of directory ``parts``, creating missing ones when ``create``.

        None when it does not exist and ``create`` is false.  Raises
        InvalidArgument (naming ``entry``) when a component is not a
        directory or a symlink leads out of the root.
        """
        key = tuple(parts)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        found = self._walk_from_cached(key, create, entry)
        if found is None:
            return None
        self._cache[key] = found
        if len(self._cache) > _CACHE_SIZE:
            fd, _ = self._cache.popitem(last=False)[1]
            if fd != self.root_fd:
                self._retired.append(fd)
        return found

    def lower_entry(self, parts: Sequence[str], entry: str) -> tuple[int, int, os.stat_result] | None:
        """Where the merged view shows ``parts`` from a lower layer: (target dir fd, lower dir fd, its lstat).

        For a hard link to a name only a lower layer has, which must be
        copied up first.  The directories on the way are made in the target
        (copied up) as for any new entry; the target directory's fd is the
        FsRoot's, the lower directory's is the caller's to close.  None when
        the name is in the target already, whited out, or nowhere.
        """
        lowers: list[int] = []
        found = self._walk(parts[:-1], True, entry, lowers_out=lowers)
        assert found is not None  # create=True makes what is missing
        dir_fd = found[0]
        if dir_fd != self.root_fd:
            self._retired.append(dir_fd)
        try:
            name = parts[-1]
            if _lstat(name, dir_fd) is not None:
                return None
            for lower in lowers:
                st = _lstat(name, lower)
                if st is None:
                    continue
                if self.overlay and _is_whiteout(st):
                    return None
                return dir_fd, os.dup(lower), st
            return None
        finally:
            for fd in lowers:
                os.close(fd)

    def _walk_from_cached(self, key: tuple[str, ...], create: bool, entry: str) -> tuple[int, tuple[str, ...]] | None:
        """Resolve ``key`` from its nearest cached ancestor, or from the root.

        A layer's entries come directory by directory, so a new directory's
        parent is nearly always cached.  Only without lower layers: a cached
        resolution keeps no lower fds.  A walk that must climb above where it
        started (``..`` or an absolute symlink on the way) starts again at the root.
        """
        if not self._lower_roots:
            for depth in range(len(key) - 1, 0, -1):
                hit = self._cache.get(key[:depth])
                if hit is None:
                    continue
                start = _Level(os.dup(hit[0]), [])
                try:
                    return self._walk(key[depth:], create, entry, start=(start, list(hit[1])))
                except _Climb:
                    break
        return self._walk(key, create, entry)

    def _walk(
        self,
        parts: Sequence[str],
        create: bool,
        entry: str,
        start: tuple[_Level, list[str]] | None = None,
        lowers_out: list[int] | None = None,
    ) -> tuple[int, tuple[str, ...]] | None:
        if start is None:
            levels = [_Level(self.root_fd, [os.dup(fd) for fd in self._lower_roots])]
            phys: list[str] = []
        else:
            levels, phys = [start[0]], start[1]
        base = len(phys)  # components above the first level, which this walk cannot climb back into
        todo = list(reversed(parts))  # a stack: the next component is at the end
        links = 0
        keep = self.root_fd
        try:
            while todo:
                part = todo.pop()
                if part == "..":
                    if base and len(levels) == 1:
                        raise _Climb()
                    if not phys:
                        raise InvalidArgument(f"tar entry {quote(entry)}: a symlink in its path leads out of the root")
                    phys.pop()
                    levels.pop().close()
                    continue
                target = self._step(levels[-1], part, create, entry, phys)
                if target is None:
                    return None
                if isinstance(target, str):  # a symlink to follow
                    links += 1
                    if links > _MAX_LINKS:
                        raise InvalidArgument(f"tar entry {quote(entry)}: too many levels of symbolic links")
                    if target.startswith("/"):
                        if base:
                            raise _Climb()
                        while len(levels) > 1:
                            levels.pop().close()
                        phys.clear()
                    todo.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
                    continue
                levels.append(target)
                phys.append(part)
            keep = levels[-1].fd
            if lowers_out is not None:  # the caller takes the last level's lower fds
                lowers_out.extend(levels[-1].lowers)
                levels[-1].lowers = []
            return keep, tuple(phys)
        finally:
            for level in levels:
                level.close(keep=keep if level.fd == keep else self.root_fd)

    def _step(self, here: _Level, part: str, create: bool, entry: str, phys: list[str]) -> _Level | str | None:
        """Go down one component from ``here``: a new level, a symlink target to follow, or None (missing)."""
        where = "/".join([*phys, part])
        st = _lstat(part, here.fd)
        if st is not None and self.overlay and _is_whiteout(st):
            if not create:
                return None
            # whited out by this layer, which now puts something below the name: a new, opaque directory
            os.unlink(part, dir_fd=here.fd)
            self.invalidate()
            os.mkdir(part, 0o755, dir_fd=here.fd)
            os.chmod(part, 0o755, dir_fd=here.fd)
            fd = os.open(part, _DIR_FLAGS, dir_fd=here.fd)
            os.setxattr(fd, OPAQUE_XATTR, b"y")
            return _Level(fd, [])
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                fd = os.open(part, _DIR_FLAGS, dir_fd=here.fd)
                # nothing below shows through without lower layers, so the opaque flag need not be read
                if not here.lowers or (self.overlay and _is_opaque(fd)):
                    lowers: list[int] = []
                else:
                    lowers = self._lower_dirs(here.lowers, part)
                return _Level(fd, lowers)
            if stat.S_ISLNK(st.st_mode):
                return os.readlink(part, dir_fd=here.fd)
            raise InvalidArgument(f"tar entry {quote(entry)}: {quote(where)} is not a directory")
        # not in the target: the first lower layer that has it decides
        for i, lower in enumerate(here.lowers):
            lst = _lstat(part, lower)
            if lst is None:
                continue
            if self.overlay and _is_whiteout(lst):
                break
            if stat.S_ISLNK(lst.st_mode):
                return os.readlink(part, dir_fd=lower)
            if not stat.S_ISDIR(lst.st_mode):
                raise InvalidArgument(f"tar entry {quote(entry)}: {quote(where)} is not a directory")
            if not create:
                return None
            os.mkdir(part, 0o700, dir_fd=here.fd)
            fd = os.open(part, _DIR_FLAGS, dir_fd=here.fd)
            src = os.open(part, _DIR_FLAGS, dir_fd=lower)
            try:
                _copy_dir_metadata(src, fd, lst)
            finally:
                os.close(src)
            self.copied_up.append(([*phys, part], lst.st_atime_ns, lst.st_mtime_ns))
            return _Level(fd, self._lower_dirs(here.lowers[i:], part))
        if not create:
            return None
        os.mkdir(part, 0o755, dir_fd=here.fd)
        os.chmod(part, 0o755, dir_fd=here.fd)  # whatever the umask took away
        return _Level(os.open(part, _DIR_FLAGS, dir_fd=here.fd), [])

    def _lower_dirs(self, lowers: Sequence[int], part: str) -> list[int]:
        """The lower layers' fds for ``part`` below ``lowers``, down to the first that hides the rest."""
        out: list[int] = []
        for lower in lowers:
            st = _lstat(part, lower)
            if st is None:
                continue
            if not stat.S_ISDIR(st.st_mode):
                break  # a file, symlink or whiteout hides everything below it
            fd = os.open(part, _PATH_FLAGS, dir_fd=lower)
            out.append(fd)
            if self.overlay and _is_opaque(fd):
                break
        return out

    # -- changes ---------------------------------------------------------

    def remove(self, dir_fd: int, name: str) -> os.stat_result | None:
        """Remove ``name`` (a whole tree if a directory) from the directory ``dir_fd``; what was there, or None."""
        st = _lstat(name, dir_fd)
        if st is None:
            return None
        if stat.S_ISDIR(st.st_mode):
            self.invalidate()
            shutil.rmtree(name, dir_fd=dir_fd)
        else:
            if stat.S_ISLNK(st.st_mode) or stat.S_ISCHR(st.st_mode):
                self.invalidate()
            os.unlink(name, dir_fd=dir_fd)
        return st


def _copy_dir_metadata(src: int, dst: int, st: os.stat_result) -> None:
    """Give directory ``dst`` the owner, xattrs (but overlay's own), mode and times of ``src``."""
    os.chown(dst, st.st_uid, st.st_gid)
    for name in os.listxattr(src):
        if name.startswith("trusted.overlay."):
            continue
        with contextlib.suppress(OSError):
            os.setxattr(dst, name, os.getxattr(src, name))
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
