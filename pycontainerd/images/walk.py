"""Walking an image: from its target through indexes and manifests to configs and layers.

:func:`children` and the filters are pure: they look at a document already
in memory.  The read helpers below fetch documents from a content provider
and answer what ``images ls``, ``images check``, export and push ask: which
manifest serves a platform, what the image weighs, what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .. import platforms
from ..content import Provider, read_blob
from ..errors import NotFound
from . import Descriptor
from . import mediatypes as mt
from .manifest import ImageConfig, Manifest, parse_config, parse_index, parse_manifest

__all__ = [
    "GC_REF_PREFIX",
    "CheckResult",
    "check",
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


def children(desc: Descriptor, data: bytes) -> list[Descriptor]:
    """What a document references: an index's manifests, a manifest's config then layers; blobs have none."""
    if mt.is_index(desc.media_type):
        return list(parse_index(data, desc.media_type).manifests)
    if mt.is_manifest(desc.media_type):
        m = parse_manifest(data, desc.media_type)
        return [m.config, *m.layers]
    return []


def child_gc_labels(desc: Descriptor, kids: Sequence[Descriptor]) -> dict[str, str]:
    """The labels on ``desc`` that make garbage collection keep ``kids`` while ``desc`` lives."""
    labels: dict[str, str] = {}
    if mt.is_manifest(desc.media_type):
        layer = 0
        for child in kids:
            if mt.is_config(child.media_type):
                labels[f"{GC_REF_PREFIX}.config"] = child.digest
            else:
                labels[f"{GC_REF_PREFIX}.l.{layer}"] = child.digest
                layer += 1
    elif mt.is_index(desc.media_type):
        for i, child in enumerate(kids):
            labels[f"{GC_REF_PREFIX}.m.{i}"] = child.digest
    else:
        for i, child in enumerate(kids):
            labels[f"{GC_REF_PREFIX}.{i}"] = child.digest
    return labels


def _wanted(desc: Descriptor, matcher: platforms.Matcher) -> bool:
    return desc.platform is None or matcher.match(desc.platform)


def filter_platforms(kids: Sequence[Descriptor], matcher: platforms.Matcher) -> list[Descriptor]:
    """Drop the manifests (and indexes) for platforms ``matcher`` does not accept; keep all else."""
    return [d for d in kids if not (mt.is_manifest(d.media_type) or mt.is_index(d.media_type)) or _wanted(d, matcher)]


def limit_manifests(kids: Sequence[Descriptor], matcher: platforms.Matcher, n: int) -> list[Descriptor]:
    """The ``n`` most preferred manifests (stable order among equals); ``n <= 0`` keeps all."""
    if n <= 0:
        return list(kids)
    manifests = [d for d in kids if mt.is_manifest(d.media_type) or mt.is_index(d.media_type)]
    others = [d for d in kids if d not in manifests]
    ranked = sorted(
        manifests,
        key=lambda d: sum(1 for o in manifests if o.platform and d.platform and matcher.less(o.platform, d.platform)),
    )
    return ranked[:n] + others


def _best(kids: list[Descriptor], matcher: platforms.Matcher) -> list[Descriptor]:
    """The matching manifests of an index, most preferred first."""
    found = [d for d in filter_platforms(kids, matcher) if mt.is_manifest(d.media_type) or mt.is_index(d.media_type)]
    return limit_manifests(found, matcher, len(found))


def manifest_for(provider: Provider, target: Descriptor, matcher: platforms.Matcher) -> tuple[Descriptor, Manifest]:
    """The manifest an image uses on a platform ``matcher`` accepts; NotFound if none."""
    if mt.is_manifest(target.media_type):
        manifest = parse_manifest(read_blob(provider, target.digest), target.media_type)
        if target.platform is None and matcher is not platforms.ALL:
            config = parse_config(read_blob(provider, manifest.config.digest))
            if not matcher.match(config.platform):
                raise NotFound(f"{target.digest}: no match for platform in manifest")
        return target, manifest
    if mt.is_index(target.media_type):
        index = parse_index(read_blob(provider, target.digest), target.media_type)
        for candidate in _best(list(index.manifests), matcher):
            try:
                return manifest_for(provider, candidate, matcher)
            except NotFound:
                continue
        raise NotFound(f"{target.digest}: no match for platform in manifest")
    raise NotFound(f"{target.digest}: {target.media_type} is not an image manifest or index")


def config_for(provider: Provider, target: Descriptor, matcher: platforms.Matcher) -> ImageConfig:
    _, manifest = manifest_for(provider, target, matcher)
    return parse_config(read_blob(provider, manifest.config.digest))


def image_size(provider: Provider, target: Descriptor, matcher: platforms.Matcher) -> int:
    """Bytes of the target, the platform's manifest, its config and layers (``ctr images ls`` SIZE)."""
    mdesc, manifest = manifest_for(provider, target, matcher)
    total = manifest.config.size + sum(layer.size for layer in manifest.layers) + mdesc.size
    return total + (target.size if target.digest != mdesc.digest else 0)


def image_platforms(provider: Provider, target: Descriptor) -> list[platforms.Platform]:
    """The platforms an index lists, or the one a single manifest's config names."""
    if mt.is_index(target.media_type):
        index = parse_index(read_blob(provider, target.digest), target.media_type)
        out: list[platforms.Platform] = []
        for d in index.manifests:
            if d.platform is not None:
                p = platforms.normalize(d.platform)
                if p not in out:
                    out.append(p)
        return out
    if mt.is_manifest(target.media_type):
        manifest = parse_manifest(read_blob(provider, target.digest), target.media_type)
        return [platforms.normalize(parse_config(read_blob(provider, manifest.config.digest)).platform)]
    return []


@dataclass(frozen=True)
class CheckResult:
    available: bool
    required: list[Descriptor] = field(default_factory=list)
    present: list[Descriptor] = field(default_factory=list)
    missing: list[Descriptor] = field(default_factory=list)


def _has(provider: Provider, digest: str) -> bool:
    try:
        provider.reader_at(digest).close()
    except NotFound:
        return False
    return True


def check(provider: Provider, target: Descriptor, matcher: platforms.Matcher) -> CheckResult:
    """Whether everything the image needs on the platform is here, as ``ctr images check`` reports."""
    try:
        _, manifest = manifest_for(provider, target, matcher)
    except NotFound:
        if not _has(provider, target.digest):
            return CheckResult(False, [target], [], [target])
        if mt.is_index(target.media_type):  # the index names a manifest for the platform, which is not here
            kids = parse_index(read_blob(provider, target.digest), target.media_type).manifests
            wanted = _best(list(kids), matcher)[:1]
            return CheckResult(False, wanted, [], wanted)
        return CheckResult(False)
    required = [manifest.config, *manifest.layers]
    present = [d for d in required if _has(provider, d.digest)]
    missing = [d for d in required if d not in present]
    return CheckResult(not missing, required, present, missing)


def walk(provider: Provider, target: Descriptor, matcher: platforms.Matcher = platforms.ALL) -> Iterator[Descriptor]:
    """Every descriptor reachable from ``target``, each once, parents before children."""
    seen: set[str] = set()
    stack = [target]
    while stack:
        desc = stack.pop()
        if desc.digest in seen:
            continue
        seen.add(desc.digest)
        yield desc
        if mt.is_index(desc.media_type) or mt.is_manifest(desc.media_type):
            kids = children(desc, read_blob(provider, desc.digest))
            if mt.is_index(desc.media_type):
                kids = filter_platforms(kids, matcher)
            stack.extend(reversed(kids))
