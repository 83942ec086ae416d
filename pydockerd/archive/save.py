"""``docker save`` as Docker 25+ writes it on the containerd store: an OCI image layout plus ``manifest.json``.

The tar holds ``oci-layout``, ``index.json`` (one entry per image name,
annotated with ``io.containerd.image.name`` and the tag as
``org.opencontainers.image.ref.name``; none for an image saved by ID),
``blobs/sha256/<hex>`` for everything reachable that is here, and Docker's
``manifest.json`` (``Config``, ``RepoTags``, ``Layers`` as blob paths) for
the one manifest per image that a loader without OCI support uses, this
host's platform preferred.  Members are sorted by name, as containerd's
exporter writes them.

A multi-platform image is kept whole: its index and every manifest that is
here go in; of a manifest whose config or layers are not all here only the
manifest itself goes (containerd's "skip missing"), so the archive says
what the image is without claiming content it lacks.

:func:`plan` reads documents (small) to decide the members; :func:`chunks`
yields the tar's bytes, reading each blob as it is written and checking its
digest, so nothing is held whole in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pycontainerd import platforms
from pycontainerd.content import Provider, read_blob, validate_digest
from pycontainerd.errors import InvalidArgument, NotFound, Unknown
from pycontainerd.images import Descriptor
from pycontainerd.images import mediatypes as mt
from pycontainerd.images.manifest import MAX_MANIFEST_SIZE, Manifest, parse_index, parse_manifest
from pycontainerd.reference import parse_normalized

from . import _tar

__all__ = ["IMAGE_NAME", "REF_NAME", "Export", "Plan", "chunks", "descriptor_json", "plan"]

IMAGE_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"
_SOURCE = "containerd.io/distribution.source."
_COPY = 1 << 20


@dataclass(frozen=True)
class Export:
    """One image to save: its target, and its full name ("" when saved by ID)."""

    target: Descriptor
    name: str = ""
    source_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    """The members of one archive: blobs by path, and the three small files."""

    blobs: dict[str, Descriptor] = field(default_factory=dict)
    index: bytes = b""
    manifest_json: bytes | None = None


def blob_path(digest: str) -> str:
    validate_digest(digest)
    algorithm, _, hex_ = digest.partition(":")
    return f"blobs/{algorithm}/{hex_}"


def _platform_json(p: platforms.Platform) -> dict[str, Any]:
    out: dict[str, Any] = {"architecture": p.architecture, "os": p.os}
    if p.os_version:
        out["os.version"] = p.os_version
    if p.os_features:
        out["os.features"] = list(p.os_features)
    if p.variant:
        out["variant"] = p.variant
    return out


def descriptor_json(d: Descriptor) -> dict[str, Any]:
    """A descriptor as Go's OCI types marshal it (field order and omissions)."""
    out: dict[str, Any] = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
    if d.urls:
        out["urls"] = list(d.urls)
    if d.annotations:
        out["annotations"] = dict(sorted(d.annotations.items()))
    if d.platform is not None:
        out["platform"] = _platform_json(d.platform)
    return out


def _tag_of(name: str) -> str:
    return parse_normalized(name).tag


def _familiar(name: str) -> str:
    ref = parse_normalized(name)
    s = str(ref)
    if ref.domain == "docker.io":
        path = ref.path.removeprefix("library/") if ref.path.count("/") == 1 else ref.path
        s = path + s[len(ref.name) :]
    return s


class _AllPreferring:
    """Every platform, ``preferred``'s first: what a save without a platform takes from an index."""

    def __init__(self, preferred: platforms.Matcher) -> None:
        self._preferred = preferred

    def match(self, p: platforms.Platform) -> bool:
        return True

    def less(self, a: platforms.Platform, b: platforms.Platform) -> bool:
        ma, mb = self._preferred.match(a), self._preferred.match(b)
        if ma != mb:
            return ma
        return ma and self._preferred.less(a, b)


class _Planner:
    def __init__(self, provider: Provider, has: Callable[[str], bool], matcher: platforms.Matcher) -> None:
        self.provider = provider
        self.has = has
        self.matcher = matcher
        self.plan = Plan()
        self.manifests: dict[str, tuple[Manifest, list[str]]] = {}  # manifest digest -> (manifest, names)

    def _document(self, desc: Descriptor) -> bytes | None:
        if desc.size > MAX_MANIFEST_SIZE:
            raise InvalidArgument(f"{desc.digest}: a {desc.size}-byte document is over the limit")
        try:
            return read_blob(self.provider, desc.digest)
        except NotFound:
            return None

    def _add(self, desc: Descriptor) -> None:
        if mt.is_non_distributable(desc.media_type):
            return
        self.plan.blobs.setdefault(blob_path(desc.digest), desc)

    def records(self, desc: Descriptor, depth: int = 0) -> Manifest | None:
        """Add ``desc`` and what is here below it; a manifest's parsed form when it is one."""
        if depth > 4:
            raise InvalidArgument(f"{desc.digest}: indexes nested too deep")
        if mt.is_manifest(desc.media_type):
            data = self._document(desc)
            if data is None:
                return None
            manifest = parse_manifest(data, desc.media_type)
            self._add(desc)
            kids = [manifest.config, *manifest.layers]
            if all(self.has(k.digest) for k in kids):
                for k in kids:
                    self._add(k)
            return manifest
        if mt.is_index(desc.media_type):
            data = self._document(desc)
            if data is None:
                return None
            self._add(desc)
            for child in parse_index(data, desc.media_type).manifests:
                self.records(child, depth + 1)
            return None
        if self.has(desc.digest):
            self._add(desc)
        return None

    def _available(self, m: Manifest) -> bool:
        return all(self.has(d.digest) for d in (m.config, *m.layers))

    def export(self, e: Export) -> None:
        target = e.target
        if mt.is_manifest(target.media_type):
            manifest = self.records(target)
            if manifest is None:
                raise NotFound(f"{e.name or target.digest}: manifest {target.digest} is not here")
            self._name(target.digest, manifest, e.name)
            return
        if not mt.is_index(target.media_type):
            raise InvalidArgument(f"only manifests and indexes may be saved, not {target.media_type}")
        data = self._document(target)
        if data is None:
            raise NotFound(f"{e.name or target.digest}: index {target.digest} is not here")
        self._add(target)
        candidates: list[tuple[Descriptor, Manifest]] = []
        for child in parse_index(data, target.media_type).manifests:
            manifest = self.records(child, 1)
            if manifest is None or (child.platform is not None and not self.matcher.match(child.platform)):
                continue
            candidates.append((child, manifest))
        available = [c for c in candidates if self._available(c[1])] or candidates
        if not available:
            return
        best = available[0]
        for c in available[1:]:
            if c[0].platform and best[0].platform and self.matcher.less(c[0].platform, best[0].platform):
                best = c
        self._name(best[0].digest, best[1], e.name)

    def _name(self, digest: str, manifest: Manifest, name: str) -> None:
        entry = self.manifests.setdefault(digest, (manifest, []))
        if name:
            entry[1].append(_familiar(name))


def plan(
    provider: Provider,
    has: Callable[[str], bool],
    exports: Sequence[Export],
    matcher: platforms.Matcher | None = None,
) -> Plan:
    """The members of the archive of ``exports``; NotFound when a target's document is not here."""
    p = _Planner(provider, has, matcher or _AllPreferring(platforms.default_matcher()))
    entries = []
    for e in exports:
        p.export(e)
        annotations = dict(e.target.annotations)
        annotations.update(e.source_labels)
        for key in (IMAGE_NAME, REF_NAME):
            annotations.pop(key, None)
        if e.name:
            annotations[IMAGE_NAME] = e.name
            annotations[REF_NAME] = _tag_of(e.name)
        d = Descriptor(e.target.media_type, e.target.digest, e.target.size, annotations, e.target.platform)
        entries.append(descriptor_json(d))
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    p.plan.index = json.dumps(index, separators=(",", ":")).encode()
    if p.manifests:
        docker = [
            {
                "Config": blob_path(m.config.digest),
                "RepoTags": names or None,
                "Layers": [blob_path(layer.digest) for layer in m.layers],
            }
            for m, names in p.manifests.values()
        ]
        p.plan.manifest_json = json.dumps(docker, separators=(",", ":")).encode()
    return p.plan


OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


def chunks(p: Plan, open_blob: Callable[[str], BinaryIO]) -> Iterator[bytes]:
    """The archive's bytes, members sorted by name; each blob's digest is checked as it goes (Unknown)."""
    members: list[tuple[str, Descriptor | bytes | None]] = [(path, d) for path, d in p.blobs.items()]
    members.append(("index.json", p.index))
    members.append(("oci-layout", OCI_LAYOUT))
    if p.manifest_json is not None:
        members.append(("manifest.json", p.manifest_json))
    dirs = {path.rsplit("/", 1)[0] for path in p.blobs}
    dirs |= {d.split("/", 1)[0] for d in dirs}
    members += [(d + "/", None) for d in dirs]
    members.sort(key=lambda m: m[0])
    for name, what in members:
        if what is None:
            yield _tar.dir_header(name)
        elif isinstance(what, bytes):
            mode = 0o444 if name == "oci-layout" else 0o644
            yield _tar.file_header(name, len(what), mode) + what + _tar.padding(len(what))
        else:
            yield _tar.file_header(name, what.size, 0o444)
            yield from _blob(what, open_blob)
            yield _tar.padding(what.size)
    yield _tar.END


def _blob(desc: Descriptor, open_blob: Callable[[str], BinaryIO]) -> Iterator[bytes]:
    algorithm, _, hex_ = desc.digest.partition(":")
    h = hashlib.new(algorithm)
    left = desc.size
    with open_blob(desc.digest) as f:
        while left > 0:
            chunk = f.read(min(_COPY, left))
            if not chunk:
                raise Unknown(f"{desc.digest}: the content store holds fewer than {desc.size} bytes")
            h.update(chunk)
            left -= len(chunk)
            yield chunk
    if h.hexdigest() != hex_:
        raise Unknown(f"{desc.digest}: the content store's bytes do not match the digest")
