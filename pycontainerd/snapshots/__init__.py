"""Snapshotters: copy-on-write filesystem trees for images and containers.

The vocabulary is containerd's (see :class:`Snapshotter`): active snapshots
are prepared on a committed parent, written to through the mounts they
return, and committed under a name that later snapshots build on.  Two
local implementations sit beside the protocol, ``overlay`` (the default)
and ``native`` (full copies, for filesystems without overlayfs); the
metadata store wraps either to add namespaces, leases and garbage
collection, and ``proxy`` speaks the Snapshots gRPC service.  All of them
pass the one suite in ``tests/conformance/snapshots.py``.
"""

from __future__ import annotations

from ._types import (
    INHERITED_LABEL_PREFIX,
    LABEL_SNAPSHOT_REF,
    UNPACK_KEY_PREFIX,
    Info,
    Kind,
    Snapshotter,
    Usage,
    adaptor,
    exists,
    inherited_labels,
)

__all__ = [
    "INHERITED_LABEL_PREFIX",
    "LABEL_SNAPSHOT_REF",
    "UNPACK_KEY_PREFIX",
    "Info",
    "Kind",
    "Snapshotter",
    "Usage",
    "adaptor",
    "exists",
    "inherited_labels",
]
