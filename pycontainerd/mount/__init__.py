"""Mount lists: what snapshotters return and what the diff service and runtimes mount.

A snapshot is handed out as a list of :class:`Mount` records (containerd's
``types.Mount``), never as a path, so the same record works for an overlay
of many layers, a bind mount of a copied tree, or a remote filesystem.
:func:`mount_all` and :func:`mounted` are the only places that call mount(2).
"""

from __future__ import annotations

from ._linux import is_mountpoint, mount_all, mounted, parse_options, unmount, unmount_all
from ._types import Mount, lowerdirs, option_value, readonly, validate

__all__ = [
    "Mount",
    "is_mountpoint",
    "lowerdirs",
    "mount_all",
    "mounted",
    "option_value",
    "parse_options",
    "readonly",
    "unmount",
    "unmount_all",
    "validate",
]
