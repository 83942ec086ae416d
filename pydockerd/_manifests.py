"""The platform manifests of an image, and which of them an operation uses.

Docker's containerd store keeps a multi-platform image whole (its index) but
may hold the content of only some platforms.  Push, save, inspect and delete
with a platform all ask the same questions: which manifests does the target
reach, for which platform, with all content here or not.  The walk reads
documents through a Provider; the choices (:func:`push_target`,
:func:`pick`) are pure.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pycontainerd import platforms
from pycontainerd.content import Provider, read_blob
from pycontainerd.errors import InvalidArgument, NotFound
from pycontainerd.images import Descriptor
from pycontainerd.images import mediatypes as mt
from pycontainerd.images.manifest import MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Manifest, parse_index, parse_manifest

from ._errors import Conflict

__all__ = [
    "PlatformManifest",
    "PlatformNotFound",
    "parse_platform",
    "pick",
    "platform_manifests",
    "push_target",
]

_REFERENCE_TYPE = "vnd.docker.reference.type"  # BuildKit's attestation manifests carry it


class PlatformNotFound(NotFound):
    """Docker's message for an image that has nothing (here) for the asked platform."""

    def __init__(self, image: str, wanted: platforms.Platform | None) -> None:
        msg = f"image with reference {image} was found but does not provide the specified platform"
        if wanted is not None:
            msg += f" ({platforms.format(wanted)})"
        super().__init__(msg)


@dataclass(frozen=True)
class PlatformManifest:
    """One manifest an image reaches: for whom, and whether its config and layers are all here."""

    desc: Descriptor
    manifest: Manifest
    platform: platforms.Platform
    available: bool


def parse_platform(text: str) -> platforms.Platform | None:
    """A platform as the API sends it: JSON (an OCI platform object) or ``os/arch[/variant]``; None when empty."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidArgument(f"invalid platform {text!r}: {e}") from None
        try:
            p = platforms.from_oci(doc)
        except InvalidArgument as e:
            raise InvalidArgument(f"invalid platform {text!r}: {e}") from None
        if not p.os and not p.architecture:
            return None
    else:
        try:
            p = platforms.parse(text)
        except InvalidArgument as e:
            raise InvalidArgument(f"invalid platform {text!r}: {e}") from None
    return platforms.normalize(p)


def _config_platform(provider: Provider, desc: Descriptor) -> platforms.Platform | None:
    if desc.size > MAX_CONFIG_SIZE:
        return None
    try:
        doc = json.loads(read_blob(provider, desc.digest))
    except (NotFound, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    os_, arch = str(doc.get("os") or ""), str(doc.get("architecture") or "")
    if not os_ or not arch:
        return None
    return platforms.normalize(platforms.Platform(os_, arch, str(doc.get("variant") or "")))


def platform_manifests(
    provider: Provider, has: Callable[[str], bool], target: Descriptor
) -> tuple[list[PlatformManifest], bool]:
    """Every image manifest ``target`` reaches whose document is here, and whether any content is missing.

    Attestation manifests are left out.  A manifest's platform is its index
    entry's, else its config's; one whose platform cannot be told is left out.
    """
    out: list[PlatformManifest] = []
    missing = False
    seen: set[str] = set()

    def visit(desc: Descriptor, depth: int) -> None:
        nonlocal missing
        if desc.digest in seen or depth > 4:
            return
        seen.add(desc.digest)
        if desc.size > MAX_MANIFEST_SIZE:
            return
        try:
            data = read_blob(provider, desc.digest)
        except NotFound:
            missing = True
            return
        if mt.is_index(desc.media_type):
            with contextlib.suppress(InvalidArgument):
                for child in parse_index(data, desc.media_type).manifests:
                    if child.annotations.get(_REFERENCE_TYPE):
                        continue
                    if mt.is_index(child.media_type) or mt.is_manifest(child.media_type):
                        visit(child, depth + 1)
            return
        if not mt.is_manifest(desc.media_type):
            return
        try:
            manifest = parse_manifest(data, desc.media_type)
        except InvalidArgument:
            return
        available = all(has(d.digest) for d in (manifest.config, *manifest.layers))
        missing = missing or not available
        platform = platforms.normalize(desc.platform) if desc.platform else None
        if platform is None:
            platform = _config_platform(provider, manifest.config)
        if platform is not None:
            out.append(PlatformManifest(desc, manifest, platform, available))

    visit(target, 0)
    return out, missing


def pick(entries: Sequence[PlatformManifest], wanted: platforms.Platform | None, image: str) -> PlatformManifest:
    """The available manifest for ``wanted`` (strictly), or for this host by preference; PlatformNotFound."""
    matcher = platforms.only_strict(wanted) if wanted else platforms.default_matcher()
    best: PlatformManifest | None = None
    for e in entries:
        if not e.available or not matcher.match(e.platform):
            continue
        if best is None or matcher.less(e.platform, best.platform):
            best = e
    if best is None:
        raise PlatformNotFound(image, wanted)
    return best


def push_target(
    target: Descriptor,
    entries: Sequence[PlatformManifest],
    any_missing: bool,
    wanted: platforms.Platform | None,
    image: str,
) -> Descriptor:
    """What a push (or save) of an image sends: the whole target when it is all here, else one manifest.

    With ``wanted``, the one manifest for that platform.  Without, the target
    if nothing is missing; else the one available manifest, or the host's
    best among several (a Conflict when none of them suits this host), as
    Docker's containerd store chooses.
    """
    matcher = platforms.only_strict(wanted) if wanted else platforms.ALL
    present = [e for e in entries if e.available and matcher.match(e.platform)]
    if not present:
        raise PlatformNotFound(image, wanted)
    if wanted is not None:
        if len(present) > 1:
            raise Conflict(f"multiple manifests found for platform {platforms.format(wanted)}")
        return present[0].desc
    if not any_missing:
        return target
    if len(present) == 1:
        return present[0].desc
    host = platforms.default_matcher()
    best = [e for e in present if host.match(e.platform)]
    if not best:
        raise Conflict("multiple matching manifests found but no specific platform requested")
    best.sort(key=lambda e: sum(host.less(o.platform, e.platform) for o in best))
    return best[0].desc
