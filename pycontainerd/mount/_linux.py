"""Mounting mount lists with mount(2), and taking them down again.

Overlay option strings can outgrow the kernel's one-page limit on mount data
when a snapshot has many parents.  Rather than chdir (process-wide, unsafe in
a threaded daemon), long directory options are rewritten to
``/proc/self/fd/N`` paths of directories opened just for the call: each is a
few bytes whatever the real path.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import pathlib
import tempfile
from collections.abc import Iterator, Sequence

from ..errors import ContainerdError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unknown, quote
from ._types import Mount, validate

__all__ = ["is_mountpoint", "mount_all", "mounted", "unmount", "unmount_all"]

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# option -> (clear, set)
_FLAGS: dict[str, tuple[bool, int]] = {
    "async": (True, MS_SYNCHRONOUS),
    "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND),
    "defaults": (False, 0),
    "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC),
    "mand": (False, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV),
    "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC),
    "nomand": (True, MS_MANDLOCK),
    "norelatime": (True, MS_RELATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "remount": (False, MS_REMOUNT),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID),
    "sync": (False, MS_SYNCHRONOUS),
}
_PROPAGATION = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
_DIR_OPTIONS = ("lowerdir", "upperdir", "workdir")

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _errno_error(op: str, target: str, err: int) -> ContainerdError:
    msg = f"{op} {quote(target)}: {os.strerror(err)}"
    if err == errno.ENOENT:
        return NotFound(msg)
    if err in (errno.EPERM, errno.EACCES):
        return PermissionDenied(msg)
    if err == errno.EINVAL:
        return InvalidArgument(msg)
    if err == errno.EBUSY:
        return FailedPrecondition(msg)
    return Unknown(msg)


def _sys_mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    rc = _libc.mount(source.encode(), target.encode(), fstype.encode() or None, flags, data.encode() or None)
    if rc != 0:
        raise _errno_error("mount", target, ctypes.get_errno())


def parse_options(options: Sequence[str]) -> tuple[int, int, list[str]]:
    """(flags, propagation flags, data options) of a containerd option list."""
    flags = 0
    propagation = 0
    data: list[str] = []
    for o in options:
        if o in _FLAGS:
            clear, bit = _FLAGS[o]
            flags = flags & ~bit if clear else flags | bit
        elif o in _PROPAGATION:
            propagation |= _PROPAGATION[o]
        else:
            data.append(o)
    return flags, propagation, data


@contextlib.contextmanager
def _short_paths(data: list[str]) -> Iterator[list[str]]:
    """``data`` with directory options shortened to fd paths when the whole would not fit in a page."""
    if len(",".join(data)) < _PAGE - 1:
        yield data
        return
    fds: list[int] = []
    try:

        def short(path: str) -> str:
            fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            fds.append(fd)
            return f"/proc/self/fd/{fd}"

        out = []
        for o in data:
            key, sep, value = o.partition("=")
            if sep and key in _DIR_OPTIONS:
                out.append(f"{key}=" + ":".join(short(p) for p in value.split(":")))
            else:
                out.append(o)
        if len(",".join(out)) >= _PAGE - 1:
            raise InvalidArgument(f"mount options are too long even with short paths ({len(out)} options)")
        yield out
    except FileNotFoundError as e:
        raise NotFound(f"mount: {e.filename}: no such directory") from None
    finally:
        for fd in fds:
            os.close(fd)


def mount_one(m: Mount, target: str) -> None:
    flags, propagation, data = parse_options(m.options)
    fstype = m.type
    if m.type in ("bind", "rbind"):
        fstype = ""
        flags |= MS_BIND | (MS_REC if m.type == "rbind" else 0)
    with _short_paths(data) as short:
        _sys_mount(m.source, target, fstype, flags & ~(MS_RDONLY if flags & MS_BIND else 0), ",".join(short))
    try:
        # A bind mount takes its flags only from a remount of itself.
        if flags & MS_BIND and flags & ~(MS_BIND | MS_REC):
            _sys_mount("", target, "", MS_BIND | MS_REMOUNT | (flags & ~MS_REC), "")
        if propagation:
            _sys_mount("", target, "", propagation, "")
    except BaseException:
        unmount(target)
        raise


def mount_all(mounts: Sequence[Mount], target: str | os.PathLike[str]) -> None:
    """Mount each of ``mounts`` on ``target``, in order; on any failure nothing stays mounted."""
    validate(mounts)
    dest = os.fspath(target)
    done = 0
    try:
        for m in mounts:
            mount_one(m, dest)
            done += 1
    except BaseException:
        for _ in range(done):
            unmount(dest)
        raise


def unmount(target: str | os.PathLike[str], *, detach: bool = False) -> None:
    """Unmount the top mount on ``target``; EINVAL (not mounted) is not an error."""
    path = os.fspath(target)
    flags = UMOUNT_NOFOLLOW | (MNT_DETACH if detach else 0)
    if _libc.umount2(path.encode(), flags) != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):
            return
        raise _errno_error("unmount", path, err)


def is_mountpoint(path: str | os.PathLike[str]) -> bool:
    """True when something is mounted on ``path`` itself (mountinfo, so bind mounts of one filesystem count)."""
    want = os.path.realpath(path)
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            point = line.split(b" ", 5)[4].decode(errors="surrogateescape")
            if _unescape(point) == want:
                return True
    return False


def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def unmount_all(target: str | os.PathLike[str]) -> None:
    """Unmount everything stacked on ``target`` (not below it)."""
    for _ in range(64):
        if not is_mountpoint(target):
            return
        unmount(target)
    raise FailedPrecondition(f"unmount {quote(os.fspath(target))}: still mounted after 64 unmounts")


@contextlib.contextmanager
def mounted(mounts: Sequence[Mount], *, parent: str | os.PathLike[str] | None = None) -> Iterator[pathlib.Path]:
    """``mounts`` mounted on a fresh temporary directory for the block; unmounted and removed after, always."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="mount-", dir=parent))
    try:
        mount_all(mounts, root)
        try:
            yield root
        finally:
            unmount_all(root)
    finally:
        with contextlib.suppress(OSError):
            root.rmdir()
