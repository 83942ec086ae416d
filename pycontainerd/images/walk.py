"""Walking an image: from its target through indexes and manifests to configs and layers.

:func:`children`, :func:`child_gc_labels` and the platform filters are pure:
they look at a document already in memory.  The read helpers below fetch
documents from a content provider and answer what ``images ls``, ``images
check``, export and push ask — which manifest serves a platform, what the
image weighs, what is missing — with the rules of containerd's ``images``
package (1.6), so both daemons give the same answers for the same content.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .. import platforms
from ..content import Provider, read_blob
from ..errors import NotFound
from ..limits import current, exceeded
from . import Descriptor
from . import mediatypes as mt
from .manifest import (
    ImageConfig,
    Manifest,
    parse_config,
    parse_index,
    parse_manifest,
)

__all__ = [
    "GC_REF_PREFIX",
    "CheckResult",
    "check",
    "child_gc_key",
    "child_gc_labels",
    "children",
    "config_for",
    "filter_platforms",
    "image_platforms",
    "image_size",
    "limit_manifests",
    "manifest_for",
    "walk",
]

GC_REF_PREFIX = "containerd.io/gc.ref.content"


def _is_document(desc: Descriptor) -> bool:
    return mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type)


def children(desc: Descriptor, data: bytes) -> list[Descriptor]:
    """What a document references: an index's manifests, a manifest's config then layers.

    Layers, configs and blobs of unknown types have no children (no error), as in containerd.
    """
    if mt.is_index(desc.media_type):
        return list(parse_index(data, desc.media_type).manifests)
    if mt.is_manifest(desc.media_type):
        m = parse_manifest(data, desc.media_type)
        return [m.config, *m.layers]
    return []


def child_gc_key(child: Descriptor) -> str:
    """The label key stem a parent uses for ``child``; one ending in ``.`` is numbered per stem.

    The kind of the child decides, not the parent's: configs (including
    checkpoint configs) are ``.config``, image manifests ``.m.``, layers
    ``.l.``, anything else (a nested index, an artifact blob) plain ``.``.
    """
    if mt.is_known_config(child.media_type):
        return f"{GC_REF_PREFIX}.config"
    if mt.is_manifest(child.media_type):
        return f"{GC_REF_PREFIX}.m."
    if mt.is_layer(child.media_type):
        return f"{GC_REF_PREFIX}.l."
    return f"{GC_REF_PREFIX}."


def child_gc_labels(desc: Descriptor, kids: Sequence[Descriptor]) -> dict[str, str]:
    """The labels a pull writes on ``desc`` so that garbage collection keeps ``kids`` while it lives.

    Each stem counts its own children from 0 (``.m.0``, ``.m.1``, ``.l.0``, ``.0``);
    a stem without a trailing dot gets a number only from its second use
    (``.config``, then ``.config1``).  These are containerd's keys, so content
    pulled by either daemon is collected alike.
    """
    del desc  # the children's kinds decide; kept in the signature for the caller's sake
    labels: dict[str, str] = {}
    counts: dict[str, int] = {}
    for child in kids:
        key = child_gc_key(child)
        n = counts.get(key, 0)
        counts[key] = n + 1
        labels[f"{key}{n}" if n or key.endswith(".") else key] = child.digest
    return labels


def filter_platforms(kids: Sequence[Descriptor], matcher: platforms.Matcher) -> list[Descriptor]:
    """The descriptors without a platform, and those whose platform ``matcher`` accepts."""
    return [d for d in kids if d.platform is None or matcher.match(d.platform)]


def _preference(matcher: platforms.Matcher, a: Descriptor, b: Descriptor) -> int:
    """Entries without a platform sort after those with one; otherwise the matcher decides."""
    if a.platform is None:
        return 0 if b.platform is None else 1
    if b.platform is None:
        return -1
    if matcher.less(a.platform, b.platform):
        return -1
    return 1 if matcher.less(b.platform, a.platform) else 0


def limit_manifests(kids: Sequence[Descriptor], matcher: platforms.Matcher, n: int) -> list[Descriptor]:
    """An index's entries, most preferred first (index order among equals), at most ``n`` of them.

    ``n <= 0`` only sorts.  With a limit and nothing to choose from, raises
    NotFound: a pull of an index that has nothing for the platform fails.
    """
    ranked = sorted(kids, key=functools.cmp_to_key(functools.partial(_preference, matcher)))
    if n > 0:
        if not ranked:
            raise NotFound("no match for platform in manifest")
        del ranked[n:]
    return ranked


def _read(provider: Provider, desc: Descriptor, key: str) -> bytes:
    limit: int = getattr(current(), key)
    if desc.size > limit:
        raise exceeded(f"{desc.digest}: {desc.media_type} of {desc.size} bytes", key, limit)
    return read_blob(provider, desc.digest)


def _read_children(provider: Provider, desc: Descriptor) -> list[Descriptor]:
    """A document's children read from ``provider``; none for anything else (without reading it)."""
    if not _is_document(desc):
        return []
    return children(desc, _read(provider, desc, "max_manifest_size"))


def _read_config(provider: Provider, desc: Descriptor) -> ImageConfig:
    return parse_config(_read(provider, desc, "max_config_size"))


def manifest_for(provider: Provider, target: Descriptor, matcher: platforms.Matcher) -> tuple[Descriptor, Manifest]:
    """The manifest an image uses on a platform ``matcher`` accepts, and its descriptor.

    A target that is itself a manifest is returned as it is, whatever its
    config says.  In an index the most preferred matching entry is taken
    (nested indexes likewise); an entry without a platform is judged by its
    config's os and architecture.  NotFound when nothing matches, or when
    content on the way is missing.
    """
    was_index = False

    def visit(desc: Descriptor) -> tuple[Descriptor, Manifest] | None:
        nonlocal was_index
        if mt.is_manifest(desc.media_type):
            manifest = parse_manifest(_read(provider, desc, "max_manifest_size"), desc.media_type)
            if desc.digest != target.digest:
                if desc.platform is not None and not matcher.match(desc.platform):
                    return None
                if desc.platform is None:
                    config = _read_config(provider, manifest.config).platform
                    if not matcher.match(platforms.normalize(platforms.Platform(config.os, config.architecture))):
                        return None
            return desc, manifest
        if mt.is_index(desc.media_type):
            was_index = True
            index = parse_index(_read(provider, desc, "max_manifest_size"), desc.media_type)
            best = limit_manifests(filter_platforms(index.manifests, matcher), matcher, 0)
            return visit(best[0]) if best else None
        raise NotFound(f"unexpected media type {desc.media_type} for {desc.digest}: not found")

    found = visit(target)
    if found is None:
        if was_index:
            raise NotFound(f"no match for platform in manifest {target.digest}")
        raise NotFound(f"manifest {target.digest}: not found")
    return found


def config_for(provider: Provider, target: Descriptor, matcher: platforms.Matcher) -> ImageConfig:
    """The config of the manifest :func:`manifest_for` picks."""
    _, manifest = manifest_for(provider, target, matcher)
    return _read_config(provider, manifest.config)


def _walk_one_platform(provider: Provider, desc: Descriptor, matcher: platforms.Matcher) -> Iterator[Descriptor]:
    """``desc`` and, depth first, the children of each document, keeping the single best entry of an index."""
    yield desc
    kids = filter_platforms(_read_children(provider, desc), matcher)
    if mt.is_index(desc.media_type):
        kids = limit_manifests(kids, matcher, 1)
    for child in kids:
        yield from _walk_one_platform(provider, child, matcher)


def image_size(provider: Provider, target: Descriptor, matcher: platforms.Matcher) -> int:
    """Bytes of the target, the chosen manifest, its config and layers: ``ctr images ls``'s SIZE.

    Each descriptor counts as often as it is listed (a layer listed twice, twice), as in containerd.
    NotFound when an index has nothing for the platform or a document is missing.
    """
    return sum(d.size for d in _walk_one_platform(provider, target, matcher))


def image_platforms(provider: Provider, target: Descriptor) -> list[platforms.Platform]:
    """Every platform the image offers, each once, in the order met.

    An index entry's platform is taken as written (not normalised) and not
    looked into; a manifest without one is read down to its config, whose os
    and architecture count, normalised — containerd's ``images.Platforms``.
    """
    out: list[platforms.Platform] = []

    def visit(desc: Descriptor) -> None:
        found: platforms.Platform | None = None
        if desc.platform is not None:
            found = desc.platform
        elif mt.is_config(desc.media_type):
            p = _read_config(provider, desc).platform
            found = platforms.normalize(platforms.Platform(p.os, p.architecture))
        else:
            for child in _read_children(provider, desc):
                visit(child)
        if found is not None and found not in out:
            out.append(found)

    visit(target)
    return out


@dataclass(frozen=True)
class CheckResult:
    """containerd's ``images.Check``: ``available`` says the manifest for the platform was found,
    so ``required`` is the whole of what the image needs; ``missing`` is what of it is not here.
    """

    available: bool
    required: list[Descriptor] = field(default_factory=list)
    present: list[Descriptor] = field(default_factory=list)
    missing: list[Descriptor] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Everything the image needs on the platform is here (``ctr images check``'s "complete")."""
        return self.available and not self.missing


def _has(provider: Provider, digest: str) -> bool:
    try:
        provider.reader_at(digest).close()
    except NotFound:
        return False
    return True


def check(provider: Provider, target: Descriptor, matcher: platforms.Matcher) -> CheckResult:
    """Whether the image's content for the platform is here, as ``ctr images check`` asks.

    When the manifest cannot be resolved (missing, or nothing for the
    platform) the target alone is reported required and missing.  Otherwise
    the config and layers are required; other errors (a corrupt document)
    are raised.
    """
    try:
        _, manifest = manifest_for(provider, target, matcher)
    except NotFound:
        return CheckResult(False, [target], [], [target])
    required = [manifest.config, *manifest.layers]
    present: list[Descriptor] = []
    missing: list[Descriptor] = []
    for desc in required:
        (present if _has(provider, desc.digest) else missing).append(desc)
    return CheckResult(True, required, present, missing)


def walk(provider: Provider, target: Descriptor, matcher: platforms.Matcher = platforms.ALL) -> Iterator[Descriptor]:
    """Every descriptor reachable from ``target``, each digest once, parents before children, depth first.

    Index entries ``matcher`` refuses are skipped with all below them; every
    document on the way is read (NotFound if one is missing), blobs are not.
    """
    seen: set[str] = set()
    stack = [target]
    while stack:
        desc = stack.pop()
        if desc.digest in seen:
            continue
        seen.add(desc.digest)
        yield desc
        kids = _read_children(provider, desc)
        if mt.is_index(desc.media_type):
            kids = filter_platforms(kids, matcher)
        stack.extend(reversed(kids))
