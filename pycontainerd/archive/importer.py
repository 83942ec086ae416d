"""Read images from a tar archive: an OCI image layout, or Docker's ``docker save`` format.

Everything in an archive is hostile until checked: every blob is committed
against the digest and size its descriptor gives, documents are size-capped
and parsed strictly, and member names are only ever looked up, never
extracted, so no path in the archive can reach the filesystem.  The caller
holds a lease: until the image records exist, it is what keeps the blobs.

A Docker archive has no manifests: one is made per entry of its
``manifest.json`` (Docker schema2, layers typed by their compression), as
containerd does, so the config and layer digests survive, while the
manifest digest is new.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from .. import platforms
from ..content import Store as ContentStore
from ..content import validate_digest
from ..content.helpers import ensure_labels, open_writer, write_blob
from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ..images import Descriptor, Image, save, walk
from ..images import Store as ImageStore
from ..images import mediatypes as mt
from ..images.manifest import parse_index
from ..limits import current, exceeded
from ..reference import parse_normalized
from ..transfer.progress import Progress, ProgressFunc, Throttle, discard, ref_key
from .export import IMAGE_NAME_ANNOTATION, REF_NAME_ANNOTATION

__all__ = ["ImportOptions", "import_archive"]

COPY = 1 << 20
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True)
class ImportOptions:
    base_name: str = ""  # prefix for OCI entries named only by a tag
    index_name: str = ""  # also record the archive's whole index under this name
    matcher: platforms.Matcher = field(default_factory=lambda: platforms.ALL)
    labels: Mapping[str, str] = field(default_factory=dict)
    progress: ProgressFunc = discard


class _Archive:
    """The regular files of a tar, by normalised name."""

    def __init__(self, src: IO[bytes]) -> None:
        # A compressed archive is read through to list it: members are bounded in number and size so a
        # small bomb cannot keep the import decompressing for hours.
        lim = current()
        try:
            self.tar = tarfile.open(fileobj=src, mode="r:*")  # noqa: SIM115
            self.members: dict[str, tarfile.TarInfo] = {}
            for i, m in enumerate(self.tar):
                if i >= lim.max_entries:
                    raise exceeded(f"archive: more than {lim.max_entries} members", "max_entries", lim.max_entries)
                if m.size > lim.max_layer_size:
                    raise exceeded(f"archive member {m.name}: {m.size} bytes", "max_layer_size", lim.max_layer_size)
                name = m.name.removeprefix("./").strip("/")
                if m.isfile() or m.issym() or m.islnk():
                    self.members[name] = m
        except (tarfile.TarError, EOFError, OSError) as e:
            raise InvalidArgument(f"not a readable tar archive: {e}") from None

    def member(self, name: str) -> tarfile.TarInfo:
        seen = 0
        m = self.members.get(name)
        while m is not None and (m.issym() or m.islnk()) and seen < 8:
            seen += 1
            target = m.linkname if m.islnk() else _join(name, m.linkname)
            name = target.removeprefix("./").strip("/")
            m = self.members.get(name)
        if m is None or not m.isfile():
            raise NotFound(f"{name}: not in the archive")
        return m

    def open(self, name: str) -> IO[bytes]:
        f = self.tar.extractfile(self.member(name))
        if f is None:
            raise NotFound(f"{name}: not a file in the archive")
        return f

    def read(self, name: str, key: str) -> bytes:
        """A document of the archive, at most as large as the limit ``key`` allows."""
        m = self.member(name)
        limit: int = getattr(current(), key)
        if m.size > limit:
            raise exceeded(f"{name}: {m.size} bytes", key, limit)
        with self.open(name) as f:
            return f.read()


def _join(base: str, link: str) -> str:
    if link.startswith("/"):
        return link
    parts = base.split("/")[:-1]
    for p in link.split("/"):
        if p == "..":
            if parts:
                parts.pop()
        elif p not in ("", "."):
            parts.append(p)
    return "/".join(parts)


def _blob_name(digest: str) -> str:
    validate_digest(digest)
    algorithm, _, hex_ = digest.partition(":")
    return f"blobs/{algorithm}/{hex_}"


class _Importer:
    def __init__(self, archive: _Archive, store: ContentStore, progress: ProgressFunc = discard) -> None:
        self.archive = archive
        self.store = store
        self.progress = progress

    def exists(self, desc: Descriptor) -> bool:
        try:
            return self.store.info(desc.digest).size == desc.size
        except NotFound:
            return False

    def copy(self, desc: Descriptor, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Stream one member into the store, checked against ``desc``."""
        m = self.archive.member(name)
        if m.size != desc.size:
            raise InvalidArgument(f"{name}: {m.size} bytes in the archive, the descriptor says {desc.size}")
        key = ref_key(desc)
        try:
            w = open_writer(self.store, f"import-{desc.digest}", total=desc.size, expected=desc.digest)
        except AlreadyExists:
            self.progress(Progress("already exists", key, progress=desc.size, total=desc.size, desc=desc))
            return
        throttle, done = Throttle(), 0
        try:
            if w.status().offset:
                w.truncate(0)
            with self.archive.open(name) as f:
                while chunk := f.read(COPY):
                    w.write(chunk)
                    done += len(chunk)
                    if throttle.due():
                        self.progress(Progress("importing", key, progress=done, total=desc.size, desc=desc))
            w.commit(size=desc.size, expected=desc.digest, labels=labels)
            self.progress(Progress("complete", key, progress=desc.size, total=desc.size, desc=desc))
        except AlreadyExists:
            pass
        except FailedPrecondition as e:
            self.store.abort(f"import-{desc.digest}")
            raise InvalidArgument(f"{name}: does not match its digest {desc.digest} ({e})") from None
        finally:
            w.close()

    def document(self, desc: Descriptor, name: str) -> bytes:
        limit = current().max_manifest_size
        if desc.size > limit:
            raise exceeded(f"{desc.digest}: a {desc.size}-byte document", "max_manifest_size", limit)
        data = self.archive.read(name, "max_manifest_size")
        algorithm, _, hex_ = desc.digest.partition(":")
        if len(data) != desc.size or hashlib.new(algorithm, data).hexdigest() != hex_:
            raise InvalidArgument(f"{name}: does not match its descriptor {desc.digest}")
        return data

    def tree(self, desc: Descriptor, matcher: platforms.Matcher, seen: set[str]) -> None:
        """Import ``desc`` and what it references for the wanted platforms, children first."""
        if desc.digest in seen:
            return
        seen.add(desc.digest)
        name = _blob_name(desc.digest)
        m = desc.media_type
        if mt.is_schema1(m):
            raise InvalidArgument(f"{desc.digest}: Docker schema 1 manifests are not supported")
        if not (mt.is_index(m) or mt.is_manifest(m)):
            if not self.exists(desc):
                self.copy(desc, name)
            return
        data = self.document(desc, name)
        children = walk.children(desc, data)
        follow = walk.filter_platforms(children, matcher) if mt.is_index(m) else children
        for child in follow:
            self.tree(child, matcher, seen)
        labels = walk.child_gc_labels(desc, children)
        if not self.exists(desc):
            self.copy(desc, name, labels)
        ensure_labels(self.store, desc.digest, labels)  # a blob shared from another namespace has none


def _name_for(annotations: Mapping[str, str], base_name: str) -> str:
    full = annotations.get(IMAGE_NAME_ANNOTATION, "")
    if full:
        return str(parse_normalized(full))
    ref_name = annotations.get(REF_NAME_ANNOTATION, "")
    if not ref_name:
        return ""
    if base_name and ("/" not in ref_name and ":" not in ref_name):
        return str(parse_normalized(f"{base_name}:{ref_name}"))
    if "/" in ref_name or ":" in ref_name:
        return str(parse_normalized(ref_name))
    return ""


def _oci(archive: _Archive, store: ContentStore, opts: ImportOptions) -> list[Image]:
    raw = archive.read("index.json", "max_manifest_size")
    index = parse_index(raw, mt.OCI_INDEX)
    imp = _Importer(archive, store, opts.progress)
    named: list[Image] = []
    seen: set[str] = set()
    for entry in index.manifests:
        imp.tree(entry, opts.matcher, seen)
        name = _name_for(entry.annotations, opts.base_name)
        if name:
            target = Descriptor(entry.media_type, entry.digest, entry.size, dict(entry.annotations))
            named.append(Image(name=name, target=target, labels=dict(opts.labels)))
    if opts.index_name:
        data = raw
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        desc = Descriptor(mt.OCI_INDEX, digest, len(data))
        labels = walk.child_gc_labels(desc, list(index.manifests))
        write_blob(store, f"import-{digest}", data, expected=digest, labels=labels)
        ensure_labels(store, digest, labels)
        named.append(Image(name=str(parse_normalized(opts.index_name)), target=desc, labels=dict(opts.labels)))
    return named


def _layer_type(archive: _Archive, name: str) -> str:
    with archive.open(name) as f:
        head = f.read(4)
    if head.startswith(_GZIP):
        return mt.DOCKER_LAYER_GZIP
    if head.startswith(_ZSTD):
        return mt.OCI_LAYER_ZSTD
    return mt.DOCKER_LAYER


def _digest_member(archive: _Archive, name: str) -> Descriptor:
    h = hashlib.sha256()
    size = 0
    with archive.open(name) as f:
        while chunk := f.read(COPY):
            h.update(chunk)
            size += len(chunk)
    return Descriptor("", f"sha256:{h.hexdigest()}", size)


def _docker(archive: _Archive, store: ContentStore, opts: ImportOptions) -> list[Image]:
    try:
        entries = json.loads(archive.read("manifest.json", "max_config_size"))
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"manifest.json: not JSON: {e}") from None
    if not isinstance(entries, list):
        raise InvalidArgument("manifest.json: expected a list of images")
    imp = _Importer(archive, store, opts.progress)
    named: list[Image] = []
    for i, entry in enumerate(entries):
        config_name, layer_names, tags = _docker_entry(entry, i)
        config_data = archive.read(config_name, "max_config_size")
        config_digest = "sha256:" + hashlib.sha256(config_data).hexdigest()
        config = Descriptor(mt.DOCKER_CONFIG, config_digest, len(config_data))
        layers = []
        for name in layer_names:
            d = _digest_member(archive, name)
            layers.append(Descriptor(_layer_type(archive, name), d.digest, d.size))
        diff_ids = _diff_ids(config_data, config_name)
        if len(diff_ids) != len(layers):
            raise InvalidArgument(f"{config_name}: {len(diff_ids)} diff ids for {len(layers)} layers")
        for d, name in zip(layers, layer_names, strict=True):
            if not imp.exists(d):
                imp.copy(d, name)
        if not imp.exists(config):
            imp.copy(config, config_name)
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": d.media_type, "digest": d.digest, "size": d.size} for d in layers],
        }
        data = json.dumps(manifest, indent=3).encode()
        mdesc = Descriptor(mt.DOCKER_MANIFEST, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
        labels = walk.child_gc_labels(mdesc, [config, *layers])
        write_blob(store, f"import-{mdesc.digest}", data, mdesc.digest, labels)
        ensure_labels(store, mdesc.digest, labels)
        for tag in tags:
            named.append(Image(name=str(parse_normalized(tag)), target=mdesc, labels=dict(opts.labels)))
    return named


def _docker_entry(entry: Any, i: int) -> tuple[str, list[str], list[str]]:
    where = f"manifest.json entry {i}"
    if not isinstance(entry, dict):
        raise InvalidArgument(f"{where}: expected an object")
    config, layers, tags = entry.get("Config"), entry.get("Layers"), entry.get("RepoTags") or []
    if not isinstance(config, str) or not config:
        raise InvalidArgument(f"{where}: Config must be a file name")
    if not isinstance(layers, list) or not all(isinstance(x, str) and x for x in layers):
        raise InvalidArgument(f"{where}: Layers must be a list of file names")
    if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
        raise InvalidArgument(f"{where}: RepoTags must be a list of names")
    return config, list(layers), list(tags)


def _diff_ids(config: bytes, name: str) -> list[str]:
    try:
        doc = json.loads(config)
        ids = doc["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidArgument(f"{name}: not an image config with rootfs.diff_ids") from None
    if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
        raise InvalidArgument(f"{name}: rootfs.diff_ids must be a list of digests")
    return ids


def import_archive(
    store: ContentStore,
    images: ImageStore,
    src: BinaryIO,
    opts: ImportOptions | None = None,
) -> list[Image]:
    """Import every image in the archive ``src`` (seekable) and record the named ones; returns the records."""
    opts = opts or ImportOptions()
    archive = _Archive(src)
    if "index.json" in archive.members:
        found = _oci(archive, store, opts)
    elif "manifest.json" in archive.members:
        found = _docker(archive, store, opts)
    else:
        raise InvalidArgument("neither an OCI image layout (index.json) nor a Docker archive (manifest.json)")
    return [save(images, image) for image in found]
