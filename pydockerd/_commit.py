"""Making a new image from a snapshot: the primitive under ``docker commit`` and every build step.

A snapshot (a container's, or a build step's) is compared with its parent
through containerd's Diff service; the change becomes a gzip layer in the
content store, labelled with its diff id (``containerd.io/uncompressed``).
The new image config is the parent's, with the caller's ``config`` object,
the diff id appended to ``rootfs.diff_ids`` and a history entry (an
unchanged tree adds no layer: its entry says ``empty_layer``).  Config and
manifest are written with the gc labels a pull writes (the manifest
references config and layers, the config the top snapshot; a base layer
of a migrated image, whose blob is absent, by the tar-split record that
rebuilds it), and the layer's snapshot is committed under its chain id, so
the new image runs without unpacking anything.  Nothing is named here unless asked: :meth:`record`
makes the image record, a name or Docker's ``moby-dangling@<digest>``.

Everything blocks (gRPC); callers hold a lease around a sequence of steps
(:meth:`ImageCommitter.commit_snapshot` takes its own), so nothing half-made
survives a failure.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pycontainerd import platforms
from pycontainerd.client import Client
from pycontainerd.content import write_blob
from pycontainerd.content.helpers import ensure_labels
from pycontainerd.diff.proxy import ProxyDiffer
from pycontainerd.errors import AlreadyExists, NotFound
from pycontainerd.images import Descriptor, Image
from pycontainerd.images import mediatypes as mt
from pycontainerd.images.identity import chain_ids
from pycontainerd.migrate.labels import tar_split_label
from pycontainerd.migrate.ondemand import tar_split_labels
from pycontainerd.mount import Mount

from ._images import ImageView
from ._refs import dangling_name

__all__ = [
    "EMPTY_DIFF_ID",
    "Committed",
    "ImageBase",
    "ImageCommitter",
    "Layer",
    "history_entry",
    "rfc3339_now",
]

EMPTY_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
"""The diff id of an empty layer (a tar of two zero blocks): a step that changed nothing."""
LABEL_UNCOMPRESSED = "containerd.io/uncompressed"
GC_CONTENT = "containerd.io/gc.ref.content"
GC_SNAPSHOT = "containerd.io/gc.ref.snapshot."


def rfc3339_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def history_entry(created_by: str, *, empty: bool, comment: str = "", author: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {"created": rfc3339_now(), "created_by": created_by}
    if author:
        entry["author"] = author
    if comment:
        entry["comment"] = comment
    if empty:
        entry["empty_layer"] = True
    return entry


@dataclass(frozen=True)
class Layer:
    desc: Descriptor
    diff_id: str


@dataclass(frozen=True)
class ImageBase:
    """What a new image is made on: a config document and its layers (none for ``scratch``)."""

    document: Mapping[str, Any]
    layers: tuple[Descriptor, ...] = ()
    id: str = ""  # the config digest; "" for scratch

    @classmethod
    def scratch(cls, platform: platforms.Platform | None = None) -> ImageBase:
        p = platform or platforms.default()
        doc: dict[str, Any] = {"architecture": p.architecture, "os": p.os, "config": {}}
        if p.variant:
            doc["variant"] = p.variant
        doc["rootfs"] = {"type": "layers", "diff_ids": []}
        return cls(doc)

    @classmethod
    def of(cls, view: ImageView) -> ImageBase:
        return cls(view.resolved.config, tuple(view.resolved.manifest.layers), view.id)

    @property
    def config(self) -> dict[str, Any]:
        """A copy of the container config object (``Env``, ``Cmd``, ...)."""
        inner = self.document.get("config")
        return copy.deepcopy(dict(inner)) if isinstance(inner, Mapping) else {}

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.document.get("rootfs")
        ids = rootfs.get("diff_ids") if isinstance(rootfs, Mapping) else None
        return [str(d) for d in ids] if isinstance(ids, list) else []

    @property
    def chain_id(self) -> str:
        """The top snapshot's name ("" for an image without layers)."""
        ids = chain_ids(self.diff_ids)
        return ids[-1] if ids else ""

    @property
    def platform(self) -> platforms.Platform:
        d = self.document
        return platforms.Platform(str(d.get("os", "linux")), str(d.get("architecture", "")), str(d.get("variant", "")))


@dataclass(frozen=True)
class Committed:
    """A new image: its ID (config digest), manifest, and itself as the base of a next step."""

    id: str
    manifest: Descriptor
    base: ImageBase = field(repr=False)


class ImageCommitter:
    """Turns snapshots into images in one namespace of a containerd, over its client."""

    def __init__(self, client: Client, snapshotter: str = "") -> None:
        self.client = client
        self.snapshotter = snapshotter or client.default_snapshotter()

    def with_client(self, client: Client) -> ImageCommitter:
        """The same committer calling through ``client`` (a leased one)."""
        return ImageCommitter(client, self.snapshotter)

    # -- snapshots ----------------------------------------------------------

    def ensure_unpacked(self, view: ImageView) -> ImageBase:
        """The base of ``view``, its layers unpacked into the snapshotter if they are not yet."""
        base = ImageBase.of(view)
        if base.chain_id:
            try:
                self.client.snapshotter(self.snapshotter).stat(base.chain_id)
            except NotFound:
                self.client.unpack(view.record, platform=view.resolved.platform, snapshotter=self.snapshotter)
        return base

    def prepare(self, key: str, base: ImageBase) -> list[Mount]:
        """An active snapshot ``key`` on the base's top layer: the tree a step changes."""
        return self.client.snapshotter(self.snapshotter).prepare(key, base.chain_id)

    def diff(self, key: str, base: ImageBase) -> Layer | None:
        """The layer between the base and the active snapshot ``key``; None when nothing changed."""
        sn = self.client.snapshotter(self.snapshotter)
        view_key = f"{key}-parent-view"
        lower = sn.view(view_key, base.chain_id) if base.chain_id else []
        try:
            desc = ProxyDiffer(self.client.connection).compare(
                lower, sn.mounts(key), media_type=mt.OCI_LAYER_GZIP, ref=f"commit-{secrets.token_hex(8)}"
            )
        finally:
            if base.chain_id:
                with contextlib.suppress(NotFound):
                    sn.remove(view_key)
        diff_id = self.client.content.info(desc.digest).labels.get(LABEL_UNCOMPRESSED, "")
        if not diff_id:
            raise NotFound(f"layer {desc.digest} has no {LABEL_UNCOMPRESSED} label")
        if diff_id == EMPTY_DIFF_ID:
            return None
        return Layer(Descriptor(mt.OCI_LAYER_GZIP, desc.digest, desc.size), diff_id)

    def keep_snapshot(self, key: str, base: ImageBase, layer: Layer) -> str:
        """Commit the active snapshot ``key`` as the new layer's chain id (consuming ``key``)."""
        chain = chain_ids([*base.diff_ids, layer.diff_id])[-1]
        sn = self.client.snapshotter(self.snapshotter)
        try:
            sn.commit(chain, key)
        except AlreadyExists:
            sn.remove(key)
        return chain

    def unpack_layer(self, base: ImageBase, layer: Layer) -> str:
        """Apply ``layer`` on the base into a snapshot of its own (the source snapshot stays as it is)."""
        chain = chain_ids([*base.diff_ids, layer.diff_id])[-1]
        sn = self.client.snapshotter(self.snapshotter)
        with contextlib.suppress(NotFound):
            sn.stat(chain)
            return chain
        key = f"extract-{secrets.token_hex(8)} {chain}"
        mounts = sn.prepare(key, base.chain_id)
        try:
            ProxyDiffer(self.client.connection).apply(layer.desc, mounts)
            sn.commit(chain, key)
        except AlreadyExists:
            sn.remove(key)
        except BaseException:
            with contextlib.suppress(NotFound):
                sn.remove(key)
            raise
        return chain

    # -- documents ----------------------------------------------------------

    def write(
        self,
        base: ImageBase,
        layer: Layer | None,
        config: Mapping[str, Any],
        history: Mapping[str, Any],
        *,
        author: str | None = None,
        comment: str | None = None,
    ) -> Committed:
        """Config and manifest of the base plus ``layer``, with ``config`` as its container config."""
        doc = copy.deepcopy(dict(base.document))
        doc["config"] = dict(config)
        diff_ids = base.diff_ids + ([layer.diff_id] if layer else [])
        doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        entries = doc.get("history")
        doc["history"] = [*(entries if isinstance(entries, list) else []), dict(history)]
        doc["created"] = str(history.get("created") or rfc3339_now())
        if author is not None:
            doc["author"] = author
        if comment is not None:
            doc["comment"] = comment
        layers = (*base.layers, *([layer.desc] if layer else []))
        new_base = ImageBase(doc, layers)
        content = self.client.content
        data = json.dumps(doc, separators=(",", ":")).encode()
        config_desc = Descriptor(mt.OCI_CONFIG, _sha256(data), len(data))
        labels = {GC_SNAPSHOT + self.snapshotter: new_base.chain_id} if new_base.chain_id else {}
        write_blob(content, f"config-{config_desc.digest}", data, config_desc.digest, labels)
        if labels:
            ensure_labels(content, config_desc.digest, labels)
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": _desc_json(config_desc),
            "layers": [_desc_json(d) for d in layers],
        }
        mdata = json.dumps(manifest, separators=(",", ":")).encode()
        mdesc = Descriptor(mt.OCI_MANIFEST, _sha256(mdata), len(mdata))
        # On a migrated image the base's layer blobs are absent: the records that rebuild them stand for them.
        records = tar_split_labels(content, layers, diff_ids)
        mlabels = {f"{GC_CONTENT}.config": config_desc.digest, **records}
        mlabels.update(
            {f"{GC_CONTENT}.l.{i}": d.digest for i, d in enumerate(layers) if tar_split_label(i) not in records}
        )
        write_blob(content, f"manifest-{mdesc.digest}", mdata, mdesc.digest, mlabels)
        ensure_labels(content, mdesc.digest, mlabels)
        return Committed(config_desc.digest, mdesc, ImageBase(doc, layers, config_desc.digest))

    def record(self, committed: Committed, name: str = "", labels: Mapping[str, str] | None = None) -> str:
        """An image record of ``committed``: ``name`` (a full reference) or the dangling name; that name.

        An existing record of a dangling name is kept as it is (same target).
        """
        name = name or dangling_name(committed.manifest.digest)
        record = Image(name=name, target=committed.manifest, labels=dict(labels or {}))
        try:
            self.client.images.create(record)
        except AlreadyExists:
            if name != dangling_name(committed.manifest.digest):
                self.client.images.update(record, ["target", "labels"])
        return name

    # -- the one-call primitive --------------------------------------------

    def commit_snapshot(
        self,
        key: str,
        base: ImageBase,
        *,
        config: Mapping[str, Any] | None = None,
        created_by: str = "",
        comment: str = "",
        author: str = "",
    ) -> Committed:
        """``docker commit``: the active snapshot ``key`` (made on ``base``) as a new dangling image.

        ``key`` is left as it is (its container may keep running); the new
        layer is applied into a snapshot of its own.  ``config`` replaces the
        container config (default: the base's); name the result afterwards
        (``ImageService.tag`` by ID, which also drops the dangling record).
        """
        with self.client.lease() as leased:
            c = self.with_client(leased)
            layer = c.diff(key, base)
            if layer is not None:
                c.unpack_layer(base, layer)
            entry = history_entry(created_by, empty=layer is None, comment=comment, author=author)
            committed = c.write(
                base, layer, base.config if config is None else config, entry, author=author, comment=comment
            )
            c.record(committed)
        return committed


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _desc_json(d: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
    if d.annotations:
        out["annotations"] = dict(d.annotations)
    return out
