"""Image references (``registry.example.com:5000/team/app:1.0@sha256:...``), parsed and normalised.

The grammar is the Docker distribution one that every registry client
shares; :func:`parse_normalized` adds what the Docker CLI assumes (the
``docker.io`` registry, its ``library/`` namespace, the ``latest`` tag), so
``busybox`` means what a Docker user expects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..content import validate_digest
from ..errors import ContainerdError, InvalidArgument

__all__ = ["DEFAULT_DOMAIN", "Reference", "parse", "parse_normalized"]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
MAX_NAME = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"^(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest if there is one, else the tag."""
        return self.digest or self.tag


def _looks_like_domain(first: str) -> bool:
    """A first component with a dot or a colon, or ``localhost``, names a registry.

    (Docker also takes one with capitals for a registry; we refuse it as a
    repository that must be lowercase, which is what its author meant.)
    """
    return "." in first or ":" in first or first == "localhost"


def parse(ref: str) -> Reference:
    """Parse ``ref`` as written; InvalidArgument (naming it) when it breaks the grammar."""
    if not isinstance(ref, str) or not ref:
        raise InvalidArgument("invalid reference: empty")
    rest, digest = ref, ""
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        try:
            validate_digest(digest)
        except ContainerdError:
            raise InvalidArgument(f"invalid reference {ref!r}: bad digest {digest!r}") from None
    tag = ""
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidArgument(f"invalid reference {ref!r}: bad tag {tag!r}")
    domain, path = "", rest
    first, sep, remainder = rest.partition("/")
    if sep and _looks_like_domain(first):
        if not _DOMAIN.match(first):
            raise InvalidArgument(f"invalid reference {ref!r}: bad registry host {first!r}")
        domain, path = first, remainder
    if not path:
        raise InvalidArgument(f"invalid reference {ref!r}: no repository name")
    if path != path.lower() and _PATH.match(path.lower()):
        raise InvalidArgument(f"invalid reference {ref!r}: repository name must be lowercase")
    if not _PATH.match(path):
        raise InvalidArgument(f"invalid reference {ref!r}: bad repository name {path!r}")
    if len(domain) + bool(domain) + len(path) > MAX_NAME:
        raise InvalidArgument(f"invalid reference {ref!r}: repository name longer than {MAX_NAME} characters")
    return Reference(domain, path, tag, digest)


def parse_normalized(ref: str) -> Reference:
    """Parse ``ref`` the Docker CLI's way: ``busybox`` → ``docker.io/library/busybox:latest``."""
    r = parse(ref)
    if not r.domain and _HEX64.match(r.path):
        raise InvalidArgument(
            f"invalid reference {ref!r}: a 64-character hexadecimal name is ambiguous with an image ID"
        )
    domain, path = r.domain, r.path
    if not domain:
        domain = DEFAULT_DOMAIN
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    tag = r.tag if (r.tag or r.digest) else DEFAULT_TAG
    return replace(r, domain=domain, path=path, tag=tag)
