"""``docker system df`` and ``docker container prune``: what takes space, and which stopped containers go.

The pure parts: layer sharing between images (an image's ``SharedSize`` is
what its layers weigh that another image also has; ``LayersSize`` counts
each layer once) and the container prune's filters (``until``, ``label``,
``label!``).  The gathering, in worker threads, reads image views, the
containers' snapshot usage and the build cache's lease.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pycontainerd.client import Client
from pycontainerd.content import read_blob
from pycontainerd.errors import ContainerdError, NotFound
from pycontainerd.images import mediatypes as mt
from pycontainerd.images.manifest import parse_manifest

from ._filters import Filters, label_match
from ._images import ImageService
from .builder._cache import CACHE_LEASE

__all__ = ["CONTAINER_PRUNE_FILTERS", "build_cache", "image_usage", "layer_usage", "prune_chosen"]

CONTAINER_PRUNE_FILTERS: Final = ("until", "label", "label!")


def layer_usage(layers: Mapping[str, Sequence[tuple[str, int]]]) -> tuple[int, dict[str, int]]:
    """From image ID -> its layers (digest, size): the size of all layers once, and each image's shared size."""
    users: dict[str, set[str]] = {}
    sizes: dict[str, int] = {}
    for image_id, image_layers in layers.items():
        for digest, size in image_layers:
            users.setdefault(digest, set()).add(image_id)
            sizes[digest] = size
    shared = {
        image_id: sum(size for digest, size in dict(image_layers).items() if len(users[digest]) > 1)
        for image_id, image_layers in layers.items()
    }
    return sum(sizes.values()), shared


def prune_chosen(labels: Mapping[str, str], created_ns: int, filters: Filters, until_ns: int | None) -> bool:
    """Whether a stopped container with ``labels``, made at ``created_ns``, is pruned under ``filters``."""
    if until_ns is not None and created_ns >= until_ns:
        return False
    if not all(label_match(s, labels) for s in filters.get("label", [])):
        return False
    return not any(label_match(s, labels) for s in filters.get("label!", []))


def image_usage(images: ImageService, version: str, containers_of: Any) -> tuple[int, list[dict[str, Any]]]:
    """``LayersSize`` and the ``Images`` of ``/system/df``: summaries with SharedSize and Containers; a thread."""
    summaries = images.summaries({}, version)
    layers: dict[str, list[tuple[str, int]]] = {}
    for view in images.views():
        layers.setdefault(view.id, [(d.digest, d.size) for d in view.resolved.manifest.layers])
    total, shared = layer_usage(layers)
    for s in summaries:
        s["SharedSize"] = shared.get(s["Id"], 0)
        s["Containers"] = len(containers_of(s["Id"]))
    return total, summaries


def build_cache(client: Client) -> list[dict[str, Any]]:
    """The builder's cached steps (the manifests its lease holds), each as a ``BuildCache`` record; a thread.

    A step's size is its own layer, the last of its manifest (a metadata-only step has none of its own).
    """
    try:
        resources = client.leases.list_resources(CACHE_LEASE)
    except NotFound:
        return []
    out = []
    for r in resources:
        if r.type != "content":
            continue
        try:
            info = client.content.info(r.id)
            manifest = parse_manifest(read_blob(client.content, r.id), mt.OCI_MANIFEST)
            config = json.loads(read_blob(client.content, manifest.config.digest))
        except (ContainerdError, ValueError):
            continue
        history = config.get("history") if isinstance(config, dict) else None
        last = history[-1] if isinstance(history, list) and history and isinstance(history[-1], dict) else {}
        size = 0
        if manifest.layers and not last.get("empty_layer"):
            with contextlib.suppress(ContainerdError):
                size = client.content.info(manifest.layers[-1].digest).size
        created = info.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if info.created_at else ""
        out.append(
            {
                "ID": r.id.removeprefix("sha256:")[:25],
                "Parents": None,
                "Type": "regular",
                "Description": str(last.get("created_by", "")),
                "InUse": False,
                "Shared": False,
                "Size": size,
                "CreatedAt": created,
                "LastUsedAt": created,
                "UsageCount": 1,
            }
        )
    return out
