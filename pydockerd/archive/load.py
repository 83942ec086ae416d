"""``docker load``: an image archive read from a stream of any size into the content store.

Both forms ``docker save`` has written are read: the OCI image layout with
``index.json`` (Docker 25+ on containerd, containerd, skopeo) and the Docker
archive of ``manifest.json``, ``<id>.json`` configs and ``<id>/layer.tar``
layers (any Docker, gzip- and zstd-compressed layers too).  As containerd's
importer does, every regular member is written to the content store as it
passes — the stream is read once, never seeked — and only the few small
files that describe the archive are kept in memory; the images are worked
out at the end from what was stored.

The archive is hostile.  Names are only looked up, never extracted, and a
name or link that leaves the archive is refused; a blob stored under
``blobs/<alg>/<hex>`` must hash to that digest; descriptors must agree with
the sizes in the archive; what ``manifest.json`` or an index names must be
there; documents are size-capped and parsed strictly; a truncated archive is
an error.  Every refusal is one :class:`InvalidArgument`.  The caller gives
a content store under a lease, so whatever was written before a refusal goes
with the lease.  A gzip, bzip2 or xz compressed archive is read too.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import lzma
import secrets
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pycontainerd import platforms
from pycontainerd.content import Store as ContentStore
from pycontainerd.content import read_blob
from pycontainerd.content.helpers import ensure_labels, open_writer, write_blob
from pycontainerd.errors import AlreadyExists, InvalidArgument, NotFound, NotImplementedYet
from pycontainerd.images import Descriptor, walk
from pycontainerd.images import mediatypes as mt
from pycontainerd.images.manifest import MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, parse_config, parse_index, parse_manifest

from .._refs import parse_docker
from ._tarstream import Member, TarStream
from .save import IMAGE_NAME, REF_NAME

__all__ = ["MAX_JSON", "ArchiveReader", "Loaded"]

MAX_JSON = 8 << 20  # manifest.json, index.json: generous, but bounded
_META = frozenset({"oci-layout", "index.json", "manifest.json", "repositories"})
_LINK_HOPS = 8


def _bad(why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid image archive: {why}")


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class Loaded:
    """One image the archive holds: its name as given ("" for none) and its target."""

    name: str
    target: Descriptor


class _Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


class _Gzip:
    """Concatenated gzip members, as gzip files may be."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(wbits=31)

    def decompress(self, data: bytes) -> bytes:
        out = bytearray()
        while data:
            out += self._d.decompress(data)
            data = self._d.unused_data
            if data:
                self._d = zlib.decompressobj(wbits=31)
        return bytes(out)


def _decompressor(head: bytes) -> _Decompressor | None:
    if head.startswith(b"\x1f\x8b"):
        return _Gzip()
    if head.startswith(b"BZh"):
        return bz2.BZ2Decompressor()
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMADecompressor()
    return None


def clean_name(name: str) -> str:
    """A member name as a path inside the archive; InvalidArgument when it leaves it."""
    if name.startswith("/"):
        raise _bad(f"member {name!r} has an absolute path")
    parts = []
    for p in name.split("/"):
        if p == "..":
            raise _bad(f"member {name!r} leaves the archive")
        if p not in ("", "."):
            parts.append(p)
    return "/".join(parts)


def link_target(name: str, linkname: str, symlink: bool) -> str:
    """Where a link member points, inside the archive; InvalidArgument when outside."""
    if linkname.startswith("/"):
        raise _bad(f"link {name!r} points outside the archive ({linkname!r})")
    parts = name.split("/")[:-1] if symlink else []
    for p in linkname.split("/"):
        if p == "..":
            if not parts:
                raise _bad(f"link {name!r} points outside the archive ({linkname!r})")
            parts.pop()
        elif p not in ("", "."):
            parts.append(p)
    return "/".join(parts)


def _blob_name(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"blobs/{algorithm}/{hex_}"


def _digest_of_name(name: str) -> str | None:
    """``sha256:<hex>`` for a member named ``blobs/sha256/<hex>``, else None."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] in ("sha256", "sha384", "sha512"):
        return f"{parts[1]}:{parts[2]}"
    return None


class ArchiveReader:
    """Reads one archive fed in chunks into ``store``; :meth:`finish` says which images it holds.

    ``keep(digest)`` is called for each blob the archive holds that the store
    already had, so the caller's lease protects it too.
    """

    def __init__(self, store: ContentStore, keep: Callable[[str], None]) -> None:
        self._store = store
        self._keep = keep
        self._tar = TarStream()
        self._started = False
        self._head = b""
        self._decompressor: _Decompressor | None = None
        self._token = secrets.token_hex(6)
        self._count = 0
        self.blobs: dict[str, Blob] = {}  # archive path -> stored blob
        self.meta: dict[str, bytes] = {}
        self._links: dict[str, str] = {}
        self._member: Member | None = None
        self._meta_buf: bytearray | None = None
        self._writer: Any = None
        self._ref = ""
        self._hash: Any = None
        self._written = 0

    # -- reading the stream --------------------------------------------------

    def feed(self, data: bytes) -> None:
        if not self._started:
            self._head += data
            if len(self._head) < 6:
                return
            self._started = True
            self._decompressor = _decompressor(self._head)
            data, self._head = self._head, b""
        if self._decompressor is not None:
            try:
                data = self._decompressor.decompress(data)
            except (zlib.error, OSError, EOFError, lzma.LZMAError) as e:
                raise _bad(f"corrupt compressed stream: {e}") from None
        for event in self._tar.feed(data):
            if isinstance(event, Member):
                self._begin(event)
            elif event is None:
                self._end()
            else:
                self._data(event)

    def _begin(self, m: Member) -> None:
        name = clean_name(m.name)
        if not name:
            return
        self._member = None
        if m.kind in ("symlink", "hardlink"):
            if name in self._links or name in self.blobs or name in self.meta:
                raise _bad(f"member {name!r} appears twice")
            self._links[name] = link_target(name, m.linkname, m.kind == "symlink")
            return
        if m.kind != "file":
            return  # directories and devices say nothing about images
        if name in self.blobs or name in self.meta or name in self._links:
            raise _bad(f"member {name!r} appears twice")
        self._member = Member(name, m.kind, m.size)
        if name in _META:
            if m.size > MAX_JSON:
                raise _bad(f"{name} is {m.size} bytes, over the limit of {MAX_JSON}")
            self._meta_buf = bytearray()
            return
        self._count += 1
        self._ref = f"load-{self._token}-{self._count}"
        self._writer = open_writer(self._store, self._ref, total=m.size)
        if self._writer.status().offset:
            self._writer.truncate(0)
        self._hash = hashlib.sha256()
        self._written = 0

    def _data(self, data: bytes) -> None:
        if self._member is None:
            return
        if self._meta_buf is not None:
            self._meta_buf += data
            return
        self._hash.update(data)
        self._writer.write(data)
        self._written += len(data)

    def _end(self) -> None:
        m, self._member = self._member, None
        if m is None:
            return
        if self._meta_buf is not None:
            self.meta[m.name] = bytes(self._meta_buf)
            self._meta_buf = None
            return
        digest = "sha256:" + self._hash.hexdigest()
        named = _digest_of_name(m.name)
        if named is not None and named.startswith("sha256:") and named != digest:
            self.abort()
            raise _bad(f"{m.name} does not match its digest (its content hashes to {digest})")
        writer, self._writer = self._writer, None
        try:
            writer.commit(size=m.size, expected=digest)
        except AlreadyExists:
            self._keep(digest)
        self.blobs[m.name] = Blob(digest, m.size)

    def abort(self) -> None:
        """Drop the ingest being written, if any (after a failure)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            try:
                self._store.abort(self._ref)
            except NotFound:
                pass

    # -- what the archive holds ------------------------------------------------

    def finish(self) -> list[Loaded]:
        """The images of the archive, once its last byte was fed; its documents get their gc labels."""
        if not self._started:
            if not self._head:
                raise _bad("the archive is empty")
            self._started = True
            for event in self._tar.feed(self._head):
                if isinstance(event, Member):
                    self._begin(event)
                elif event is None:
                    self._end()
                else:
                    self._data(event)
        self._tar.finish()
        if "oci-layout" in self.meta:
            return self._oci()
        if "manifest.json" in self.meta:
            return self._docker()
        raise _bad("unrecognized image format: neither an OCI image layout (index.json) nor a Docker archive")

    def blob(self, name: str) -> Blob:
        """The blob stored for archive path ``name``, links followed; InvalidArgument when absent."""
        seen = 0
        path = clean_name(name)
        while path in self._links and seen < _LINK_HOPS:
            path = self._links[path]
            seen += 1
        found = self.blobs.get(path)
        if found is None:
            raise _bad(f"{name} is not in the archive")
        return found

    def _json(self, name: str) -> Any:
        try:
            return json.loads(self.meta[name])
        except (ValueError, UnicodeDecodeError) as e:
            raise _bad(f"{name} is not JSON: {e}") from None

    def _document(self, desc: Descriptor, limit: int) -> bytes:
        if desc.size > limit:
            raise _bad(f"{desc.digest}: a {desc.size}-byte document is over the limit of {limit}")
        return read_blob(self._store, desc.digest)

    def _present(self, desc: Descriptor) -> bool:
        """Whether the archive holds ``desc`` (by its blob path), with the size the descriptor says."""
        blob = self.blobs.get(_blob_name(desc.digest))
        if blob is None:
            return False
        if blob.size != desc.size:
            raise _bad(f"{_blob_name(desc.digest)}: {blob.size} bytes in the archive, the descriptor says {desc.size}")
        return True

    def _tree(self, desc: Descriptor, depth: int) -> bool:
        """Check what ``desc`` reaches in the archive and label its documents; whether one manifest is whole."""
        if depth > 4:
            raise _bad(f"{desc.digest}: indexes nested too deep")
        if mt.is_schema1(desc.media_type):
            raise _bad(f"{desc.digest}: Docker schema 1 manifests are not supported")
        if not self._present(desc):
            return False
        if mt.is_index(desc.media_type):
            index = parse_index(self._document(desc, MAX_MANIFEST_SIZE), desc.media_type)
            whole = [self._tree(child, depth + 1) for child in index.manifests]
            ensure_labels(self._store, desc.digest, walk.child_gc_labels(desc, list(index.manifests)))
            return any(whole)
        if mt.is_manifest(desc.media_type):
            manifest = parse_manifest(self._document(desc, MAX_MANIFEST_SIZE), desc.media_type)
            kids = [manifest.config, *manifest.layers]
            ensure_labels(self._store, desc.digest, walk.child_gc_labels(desc, kids))
            return all(self._present(k) or mt.is_non_distributable(k.media_type) for k in kids)
        return True

    def _oci(self) -> list[Loaded]:
        layout = self._json("oci-layout")
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if version != "1.0.0":
            raise _bad(f"unsupported OCI layout version {version!r}")
        if "index.json" not in self.meta:
            raise _bad("index.json is missing from the OCI image layout")
        try:
            index = parse_index(self.meta["index.json"], mt.OCI_INDEX)
        except (InvalidArgument, NotImplementedYet) as e:
            raise _bad(f"index.json: {e}") from None
        out = []
        for entry in index.manifests:
            if not (mt.is_index(entry.media_type) or mt.is_manifest(entry.media_type)):
                continue
            if not self._tree(entry, 0):
                raise _bad(f"index.json names {entry.digest}, whose content is not in the archive")
            out.append(Loaded(_oci_name(entry.annotations), entry))
        return out

    def _docker(self) -> list[Loaded]:
        entries = self._json("manifest.json")
        if not isinstance(entries, list):
            raise _bad("manifest.json: expected a list of images")
        out = []
        for i, entry in enumerate(entries):
            config_name, layer_names, tags = _docker_entry(entry, i)
            config_blob = self.blob(config_name)
            config = Descriptor(mt.DOCKER_CONFIG, config_blob.digest, config_blob.size)
            try:
                parsed = parse_config(self._document(config, MAX_CONFIG_SIZE))
            except (InvalidArgument, NotImplementedYet) as e:
                raise _bad(f"{config_name}: {e}") from None
            layers = []
            for name in layer_names:
                b = self.blob(name)
                layers.append(Descriptor(self._layer_type(b), b.digest, b.size))
            if len(parsed.diff_ids) != len(layers):
                raise _bad(f"{config_name}: {len(parsed.diff_ids)} diff ids for {len(layers)} layers")
            manifest = {
                "schemaVersion": 2,
                "mediaType": mt.DOCKER_MANIFEST,
                "config": {"mediaType": config.media_type, "digest": config.digest, "size": config.size},
                "layers": [{"mediaType": d.media_type, "digest": d.digest, "size": d.size} for d in layers],
            }
            data = json.dumps(manifest, separators=(",", ":")).encode()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            p = parsed.platform
            platform = platforms.normalize(platforms.Platform(p.os, p.architecture, p.variant)) if p.os else None
            desc = Descriptor(mt.DOCKER_MANIFEST, digest, len(data), platform=platform)
            labels = walk.child_gc_labels(desc, [config, *layers])
            write_blob(self._store, f"load-{digest}", data, expected=digest, labels=labels)
            self._keep(digest)
            ensure_labels(self._store, digest, labels)
            names = [_normalize_tag(t) for t in tags]
            out += [Loaded(n, desc) for n in names] or [Loaded("", desc)]
        return out

    def _layer_type(self, b: Blob) -> str:
        if b.size < 4:
            return mt.DOCKER_LAYER
        r = self._store.reader_at(b.digest)
        try:
            head = r.read_at(0, 4)
        finally:
            r.close()
        if head.startswith(b"\x1f\x8b"):
            return mt.DOCKER_LAYER_GZIP
        if head.startswith(b"\x28\xb5\x2f\xfd"):
            return mt.DOCKER_LAYER_ZSTD
        return mt.DOCKER_LAYER


def _docker_entry(entry: Any, i: int) -> tuple[str, list[str], list[str]]:
    where = f"manifest.json entry {i}"
    if not isinstance(entry, dict):
        raise _bad(f"{where}: expected an object")
    config, layers, tags = entry.get("Config"), entry.get("Layers"), entry.get("RepoTags") or []
    if not isinstance(config, str) or not config:
        raise _bad(f"{where}: Config must be a file name")
    if not isinstance(layers, list) or not all(isinstance(x, str) and x for x in layers):
        raise _bad(f"{where}: Layers must be a list of file names")
    if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
        raise _bad(f"{where}: RepoTags must be a list of names")
    return config, list(layers), list(tags)


def _normalize_tag(tag: str) -> str:
    try:
        return str(parse_docker(tag))
    except InvalidArgument as e:
        raise _bad(f"manifest.json: RepoTags {tag!r}: {e}") from None


def _oci_name(annotations: Mapping[str, str]) -> str:
    """The full name an OCI index entry gives its image ("" for none or one that is not a reference)."""
    for key in (IMAGE_NAME, REF_NAME):
        value = annotations.get(key, "")
        if key == REF_NAME and ("/" not in value and ":" not in value):
            continue  # a bare tag names no repository
        if value:
            try:
                return str(parse_docker(value))
            except InvalidArgument:
                continue
    return ""
