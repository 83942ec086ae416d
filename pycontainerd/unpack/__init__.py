"""Unpacking images into snapshots: each layer applied once, under its chain id, and shared.

For the manifest a platform selects, each layer becomes a committed
snapshot named by its chain id, on top of the one below.  Layers whose
snapshot exists already (another image shares them) are skipped.  A layer
is applied into an active snapshot keyed ``extract-<unique> <chain id>``
and labelled ``containerd.io/snapshot.ref=<chain id>``, so two unpacks
racing for the same layer end with one snapshot and no error, as in
containerd.  Afterwards the layer blobs carry their diff ids
(``containerd.io/uncompressed``) and the config points the collector at the
top snapshot (``containerd.io/gc.ref.snapshot.<snapshotter>``); the caller
holds a lease meanwhile, so nothing half-made outlives a failure.

:class:`Unpacker` runs the same unpack while a fetch is still filling the
content store, applying each layer as soon as the fetch has stored it.
"""

from __future__ import annotations

from ._concurrent import Unpacker, UnpackTarget
from ._unpack import LayerEvent, UnpackResult, unpack

__all__ = ["LayerEvent", "UnpackResult", "UnpackTarget", "Unpacker", "unpack"]
