"""The few Linux calls the standard library lacks, through ctypes: prctl, mount, umount2, inotify.

``pycontainerd.mount`` has the full mount code, but importing it pulls in
the error hierarchy and with it grpc — tens of milliseconds and megabytes
the shim would pay at every start.  The shim only mounts a rootfs mount
list (bind, overlay, tmpfs) and takes it down again, so it carries this
small copy.  ``CDLL(None)`` resolves libc from the running interpreter
instead of ``ctypes.util.find_library``, which would run ldconfig.
"""

from __future__ import annotations

import ctypes
import os

TYPE_CHECKING = False  # typing costs the shim milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

__all__ = ["inotify_add_watch", "inotify_init", "mount_rootfs", "set_child_subreaper", "unmount_all"]

_libc = ctypes.CDLL(None, use_errno=True)

PR_SET_CHILD_SUBREAPER = 36
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8
IN_MODIFY = 0x2
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# option -> (clears the bit, bit)
_FLAGS = {
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "nosuid": (False, 2),
    "suid": (True, 2),
    "nodev": (False, 4),
    "dev": (True, 4),
    "noexec": (False, 8),
    "exec": (True, 8),
    "sync": (False, 16),
    "async": (True, 16),
    "noatime": (False, 1024),
    "atime": (True, 1024),
    "nodiratime": (False, 2048),
    "diratime": (True, 2048),
    "relatime": (False, 1 << 21),
    "norelatime": (True, 1 << 21),
    "strictatime": (False, 1 << 24),
    "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC),
    "defaults": (False, 0),
}
_PROPAGATION = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
}
_TYPES = frozenset({"bind", "rbind", "overlay", "tmpfs"})


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def set_child_subreaper() -> None:
    """Orphaned descendants (the container's processes, once runc exits) become our children."""
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


def _mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    rc = _libc.mount(
        source.encode(), target.encode(), fstype.encode() or None, ctypes.c_ulong(flags), data.encode() or None
    )
    _check(rc, f"mount {target}")


def _umount(target: str, flags: int) -> bool:
    """True when something was unmounted; False when nothing is mounted there."""
    if _libc.umount2(target.encode(), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 2):  # EINVAL: not a mount point; ENOENT: gone
        return False
    raise OSError(err, f"unmount {target}: {os.strerror(err)}")


def _mount_one(m: Mapping[str, Any], target: str) -> None:
    kind, source, options = m["type"], m["source"], m["options"]
    if kind not in _TYPES:
        raise ValueError(f"mount type {kind!r} is not supported")
    flags = propagation = 0
    data = []
    for o in options:
        if "," in o or "\x00" in o:
            raise ValueError(f"mount option {o!r} is malformed")
        if o in _FLAGS:
            clear, bit = _FLAGS[o]
            flags = flags & ~bit if clear else flags | bit
        elif o in _PROPAGATION:
            propagation |= _PROPAGATION[o]
        else:
            data.append(o)
    fstype = kind
    if kind in ("bind", "rbind"):
        if not source.startswith("/"):
            raise ValueError(f"bind mount source {source!r} is not absolute")
        fstype = ""
        flags |= MS_BIND | (MS_REC if kind == "rbind" else 0)
    if len(",".join(data)) >= 4095:
        raise ValueError("mount options exceed a page; mount the snapshot with fewer layers")
    # A bind mount ignores every flag but MS_REC on the first call: read-only needs a remount.
    _mount(source, target, fstype, flags & ~MS_RDONLY if flags & MS_BIND else flags, ",".join(data))
    try:
        if flags & MS_BIND and flags & ~(MS_BIND | MS_REC):
            _mount("", target, "", MS_BIND | MS_REMOUNT | (flags & ~MS_REC), "")
        if propagation:
            _mount("", target, "", propagation, "")
    except BaseException:
        _umount(target, UMOUNT_NOFOLLOW | MNT_DETACH)
        raise


def mount_rootfs(mounts: Sequence[Mapping[str, Any]], target: str) -> None:
    """Mount each record on ``target`` in order; nothing stays mounted when one fails."""
    done = 0
    try:
        for m in mounts:
            _mount_one(m, target)
            done += 1
    except BaseException:
        for _ in range(done):
            _umount(target, UMOUNT_NOFOLLOW | MNT_DETACH)
        raise


def unmount_all(target: str) -> None:
    """Unmount everything stacked on ``target``, as containerd's ``mount.UnmountAll``."""
    for _ in range(64):
        if not _umount(target, UMOUNT_NOFOLLOW):
            return
    raise OSError(16, f"unmount {target}: still mounted after 64 unmounts")


def inotify_init() -> int:
    fd: int = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    _check(0 if fd >= 0 else -1, "inotify_init1")
    return fd


def inotify_add_watch(fd: int, path: str, mask: int = IN_MODIFY) -> int:
    wd: int = _libc.inotify_add_watch(fd, path.encode(), ctypes.c_uint32(mask))
    _check(0 if wd >= 0 else -1, f"inotify_add_watch {path}")
    return wd
