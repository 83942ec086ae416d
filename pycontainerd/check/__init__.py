"""``pyctr check``: an fsck for a pycontainerd root.

It reads the metadata store, the content store and each snapshotter's own
records and directories, and reports every disagreement as a
:class:`Problem`: references that do not resolve (images, leases, gc labels,
snapshot records and their backing snapshots, containers and their
snapshots), blobs that do not match their digest or size, leftovers (blobs,
ingests and snapshot directories nothing records, ingests whose lease is
gone, mounts under the root or state directory).

It runs **offline** by default: it takes the root's lock, as the daemon
does, so it fails at once (naming the daemon's pid) while a daemon runs on
the root, and no daemon can start while it checks.  With ``live`` it runs
beside a running daemon instead, reading the SQLite databases read-only
(WAL lets it see committed state only), and skips the leftover checks that
work in progress makes transiently true (see :mod:`._scan`).
:func:`repair` removes the safe leftovers, offline only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .._rootlock import try_lock
from ._layout import Layout
from ._problems import REPAIRABLE, Kind, Problem
from ._repair import repair
from ._scan import check

__all__ = ["REPAIRABLE", "DaemonRunning", "Kind", "Layout", "Problem", "check", "hold_root", "repair"]


class DaemonRunning(Exception):
    """A daemon holds the root's lock."""

    def __init__(self, layout: Layout, pid: int | None) -> None:
        self.pid = pid
        holder = f" (pid {pid})" if pid else ""
        super().__init__(f"a daemon is running on {layout.root}{holder}: stop it, or check with --live")


@contextlib.contextmanager
def hold_root(layout: Layout) -> Iterator[None]:
    """Hold the root's lock, so no daemon runs on it meanwhile; DaemonRunning if one does."""
    try:
        fd = os.open(layout.lock_file, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        if not layout.root.is_dir():
            raise
        yield  # no daemon ever ran here
        return
    try:
        held_by = try_lock(fd)
        if held_by is not None:
            raise DaemonRunning(layout, held_by or None)
        yield
    finally:
        os.close(fd)
