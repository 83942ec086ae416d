"""The metadata store: namespaces, content records, images, leases, and GC.

Like containerd's metadata plugin, it wraps one physical content store and
presents it per namespace, keeps image and lease records, and removes what
nothing references any more.  The schema is drawn in ``_schema.py``.
"""

from __future__ import annotations

from ._db import DB, GCConfig
from .containers import ContainerStore
from .content import ContentStore
from .gc import GCStats, Scheduler
from .images import ImageStore
from .leases import LeaseManager
from .namespaces import NamespaceStore
from .snapshots import SnapshotStore

__all__ = [
    "DB",
    "ContainerStore",
    "ContentStore",
    "GCConfig",
    "GCStats",
    "ImageStore",
    "LeaseManager",
    "NamespaceStore",
    "Scheduler",
    "SnapshotStore",
]
