"""The daemon's unix sockets (gRPC and debug): claiming the path, setting the owner, letting go.

A socket file left by a daemon that died is removed; one something still
answers on is refused, as is any other kind of file.  On the way out a
socket is removed only if it is still the one this daemon made (same
inode), so a second daemon that took the path meanwhile keeps it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import socket
import stat

__all__ = ["AddressInUse", "claim", "own", "release"]

log = logging.getLogger("pycontainerd")


class AddressInUse(Exception):
    """Something already answers on the socket path."""


def claim(path: pathlib.Path, what: str = "address") -> None:
    """Make ``path`` free to bind: its directory made, a stale socket removed; raises AddressInUse."""
    path.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise AddressInUse(f"{what} {path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            log.info("removing stale socket %s", path)
            path.unlink()
            return
    raise AddressInUse(f"{what} {path} is in use by another process")


def own(path: pathlib.Path, uid: int | None, gid: int | None) -> int:
    """Mode 0660 and the configured owner (None: leave it); returns the socket's inode for :func:`release`."""
    st = os.stat(path)
    os.chmod(path, 0o660)
    uid = st.st_uid if uid is None else uid
    gid = st.st_gid if gid is None else gid
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(path, uid, gid)
    return st.st_ino


def release(path: pathlib.Path, ino: int | None) -> None:
    """Remove the socket at ``path`` if it is still inode ``ino``."""
    with contextlib.suppress(OSError):
        if ino is not None and os.lstat(path).st_ino == ino:
            path.unlink()
