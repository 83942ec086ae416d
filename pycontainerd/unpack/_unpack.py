"""One image unpacked into a snapshotter, after its content is all in the store; see the package."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .. import limits, platforms
from .._kmutex import KeyedMutex
from ..content import Manager, Provider, read_blob
from ..content.helpers import ensure_labels
from ..diff.differ import LABEL_UNCOMPRESSED, Applier
from ..errors import AlreadyExists, InvalidArgument, NotFound
from ..images import Descriptor
from ..images.identity import chain_ids
from ..images.manifest import parse_config
from ..images.walk import manifest_for
from ..snapshots import LABEL_SNAPSHOT_REF, UNPACK_KEY_PREFIX, Snapshotter, exists

__all__ = ["LABEL_GC_SNAPSHOT", "LayerEvent", "UnpackContent", "UnpackResult", "unpack"]

LABEL_GC_SNAPSHOT = "containerd.io/gc.ref.snapshot."
_UNPACKING = KeyedMutex()  # one unpack of a chain id per snapshotter at a time in this process


class UnpackContent(Provider, Manager, Protocol):
    """The content roles an unpack needs: reading blobs, and labelling them."""


@dataclass(frozen=True)
class LayerEvent:
    """Progress of one layer: ``state`` is ``unpacking``, ``unpacked`` or ``already unpacked``."""

    layer: Descriptor
    chain_id: str
    state: str


@dataclass(frozen=True)
class UnpackResult:
    chain_id: str
    """The top snapshot's name ("" for an image without layers)."""
    config: Descriptor
    layers: int
    applied: int
    """How many layers were unpacked now (the rest existed)."""


def _key(chain_id: str) -> str:
    return f"{UNPACK_KEY_PREFIX}-{time.time_ns()}-{secrets.token_hex(4)} {chain_id}"


def unpack(
    content: UnpackContent,
    snapshotter: Snapshotter,
    snapshotter_name: str,
    applier: Applier,
    target: Descriptor,
    *,
    matcher: platforms.Matcher | None = None,
    progress: Callable[[LayerEvent], None] | None = None,
    applier_for: Callable[[Descriptor], Applier] | None = None,
) -> UnpackResult:
    """Unpack the image ``target`` (an index or manifest) for the platform ``matcher`` accepts (default: this host).

    ``applier_for(layer)``, when given, is asked for the applier of each
    layer to apply, and may block until the layer can be read
    (:class:`Unpacker` waits for the fetch there, and may read a layer
    still downloading: the diffID check below is what vouches for it).
    """
    matcher = matcher or platforms.default_matcher()
    _, manifest = manifest_for(content, target, matcher)
    limit = limits.current().max_config_size
    if manifest.config.size > limit:
        raise limits.exceeded(
            f"image config {manifest.config.digest} is {manifest.config.size} bytes", "max_config_size", limit
        )
    config = parse_config(read_blob(content, manifest.config.digest))
    if len(config.diff_ids) != len(manifest.layers):
        raise InvalidArgument(
            f"image config of {target.digest} lists {len(config.diff_ids)} diff ids for {len(manifest.layers)} layers"
        )
    chains = chain_ids(config.diff_ids)
    report = progress or (lambda e: None)
    parent = ""
    applied = 0
    for layer, diff_id, chain in zip(manifest.layers, config.diff_ids, chains, strict=True):
        with _UNPACKING.hold((snapshotter_name, chain)):  # a parallel pull unpacking it: wait, then find it
            if exists(snapshotter, chain):
                report(LayerEvent(layer, chain, "already unpacked"))
            else:
                layer_applier = applier if applier_for is None else applier_for(layer)
                if _apply_one(
                    snapshotter, layer_applier, layer, diff_id=diff_id, chain=chain, parent=parent, report=report
                ):
                    applied += 1
        # A layer found unpacked may have no blob (containerd's discard_unpacked_layers; a migrated
        # image, whose files only its snapshots hold): nothing to label then.  One applied now was read.
        with contextlib.suppress(NotFound):
            ensure_labels(content, layer.digest, {LABEL_UNCOMPRESSED: diff_id})
        parent = chain
    if chains:
        ensure_labels(content, manifest.config.digest, {LABEL_GC_SNAPSHOT + snapshotter_name: chains[-1]})
    return UnpackResult(chain_id=parent, config=manifest.config, layers=len(manifest.layers), applied=applied)


def _apply_one(
    sn: Snapshotter,
    applier: Applier,
    layer: Descriptor,
    *,
    diff_id: str,
    chain: str,
    parent: str,
    report: Callable[[LayerEvent], None],
) -> bool:
    """Apply one layer into a new snapshot named ``chain``; False when someone else made it meanwhile."""
    labels = {LABEL_SNAPSHOT_REF: chain}
    key = _key(chain)
    try:
        mounts = sn.prepare(key, parent, labels)
    except AlreadyExists:
        if exists(sn, chain):
            report(LayerEvent(layer, chain, "already unpacked"))
            return False
        raise
    report(LayerEvent(layer, chain, "unpacking"))
    try:
        applied = applier.apply(layer, mounts)
        if applied.digest != diff_id:
            raise InvalidArgument(f"layer {layer.digest}: its content has diff id {applied.digest}, not {diff_id}")
        try:
            sn.commit(chain, key, labels)
        except AlreadyExists:
            sn.remove(key)
            report(LayerEvent(layer, chain, "already unpacked"))
            return False
    except BaseException:
        # A full disk can fail the removal too; the apply's error is the one to report, and the
        # snapshot left goes with the pull's lease.
        with contextlib.suppress(Exception):
            sn.remove(key)
        raise
    report(LayerEvent(layer, chain, "unpacked"))
    return True
