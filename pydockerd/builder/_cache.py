"""The layer cache: each step's image found again by what made it, as the classic builder's cache.

A step's key is the digest of its parent image ID, its history line
(``created_by``, which names copied content by its hash and RUN's build
arguments) and the container config it leaves.  The step's manifest carries
the key as a label, so a lookup is one filtered walk of the content store;
the manifests are resources of one lease that never expires, which keeps
their configs, layers and snapshots from the collector until ``POST
/build/prune`` deletes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pycontainerd.client import Client
from pycontainerd.content import read_blob
from pycontainerd.content.helpers import ensure_labels
from pycontainerd.errors import AlreadyExists, NotFound
from pycontainerd.images import Descriptor
from pycontainerd.images import mediatypes as mt
from pycontainerd.images.manifest import parse_manifest
from pycontainerd.leases import Resource
from pycontainerd.migrate.labels import tar_splits

from .._commit import Committed, ImageBase

__all__ = ["CACHE_LABEL", "CACHE_LEASE", "LayerCache", "cache_key"]

CACHE_LABEL = "org.mobyproject.build.cache"
CACHE_LEASE = "pydockerd-build-cache"


def cache_key(parent_id: str, created_by: str, config: Mapping[str, Any]) -> str:
    doc = json.dumps([parent_id, created_by, config], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


class LayerCache:
    def __init__(self, client: Client, snapshotter: str) -> None:
        self._client = client
        self._snapshotter = snapshotter

    def lookup(self, key: str) -> Committed | None:
        """The image a step with ``key`` made before, if all of it is still here."""
        content = self._client.content
        for info in content.walk([f'labels."{CACHE_LABEL}"=={key}']):
            try:
                mdata = read_blob(content, info.digest)
                manifest = parse_manifest(mdata, mt.OCI_MANIFEST)
                doc = json.loads(read_blob(content, manifest.config.digest))
                records = tar_splits(dict(info.labels))  # a migrated base's layers: rebuilt from these
                for i, layer in enumerate(manifest.layers):
                    if i not in records:
                        content.info(layer.digest)
                base = ImageBase(doc, tuple(manifest.layers), manifest.config.digest)
                if base.chain_id:
                    self._client.snapshotter(self._snapshotter).stat(base.chain_id)
            except (NotFound, ValueError):
                continue
            desc = Descriptor(mt.OCI_MANIFEST, info.digest, info.size)
            return Committed(manifest.config.digest, desc, base)
        return None

    def store(self, key: str, committed: Committed) -> None:
        """Remember ``committed`` under ``key`` and hold it in the cache lease."""
        ensure_labels(self._client.content, committed.manifest.digest, {CACHE_LABEL: key})
        leases = self._client.leases
        with contextlib.suppress(AlreadyExists):
            leases.create(CACHE_LEASE)
        leases.add_resource(CACHE_LEASE, Resource(committed.manifest.digest, "content"))

    def prune(self) -> tuple[list[str], int]:
        """Forget the cache: the lease goes (and with it what nothing else holds); (ids, bytes it held)."""
        leases = self._client.leases
        try:
            resources = leases.list_resources(CACHE_LEASE)
        except NotFound:
            return [], 0
        ids, size = [], 0
        for r in resources:
            with contextlib.suppress(NotFound):
                size += self._client.content.info(r.id).size
                ids.append(r.id)
        with contextlib.suppress(NotFound):
            leases.delete(CACHE_LEASE, sync=True)
        return ids, size
