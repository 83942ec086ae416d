"""The lock that makes a root one daemon's: a flock on ``pycontainerd.lock`` holding the holder's pid.

The daemon takes it for its lifetime; ``pyctr check`` takes it while it
checks, so neither works on a root the other is changing.
"""

from __future__ import annotations

import fcntl
import os
from typing import Final

__all__ = ["LOCK_FILE", "holder", "try_lock"]

LOCK_FILE: Final = "pycontainerd.lock"


def holder(fd: int) -> int | None:
    """The pid written in the lock file open at ``fd``; None when it names none."""
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except ValueError:
        return None


def try_lock(fd: int) -> int | None:
    """Take the lock at ``fd`` without waiting: None when taken, else the pid of the process holding it (0 if unknown)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return holder(fd) or 0
    return None
