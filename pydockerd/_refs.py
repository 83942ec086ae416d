"""Image references the way Docker shows and accepts them.

Images are containerd image records named by the full normalised reference
(``docker.io/library/busybox:latest``), as Docker's containerd image store
names them; the API shows the familiar form (``busybox:latest``).  An image
that lost its last name keeps a record ``moby-dangling@<target digest>``,
again as Docker's store does, so its content is not collected.
"""

from __future__ import annotations

import re

from pycontainerd.errors import InvalidArgument
from pycontainerd.reference import DEFAULT_DOMAIN, Reference, parse_normalized

__all__ = [
    "DANGLING_PREFIX",
    "dangling_name",
    "familiar",
    "familiar_name",
    "is_dangling",
    "looks_like_id",
    "parse_docker",
    "with_tag",
]

DANGLING_PREFIX = "moby-dangling@"
_ID = re.compile(r"^(?:sha256:)?([a-f0-9]{1,64})$")


def dangling_name(target_digest: str) -> str:
    return DANGLING_PREFIX + target_digest


def is_dangling(name: str, target_digest: str) -> bool:
    return name == dangling_name(target_digest)


def parse_docker(ref: str) -> Reference:
    """``ref`` normalised as the Docker CLI means it; 400 "invalid reference format" when it is not one."""
    try:
        return parse_normalized(ref)
    except InvalidArgument as e:
        detail = str(e)
        # pycontainerd says "invalid reference 'x': why"; Docker says "invalid reference format: why".
        _, sep, why = detail.partition("': ")
        raise InvalidArgument(f"invalid reference format: {why}" if sep else "invalid reference format") from None


def with_tag(name: str, tag: str) -> str:
    """``fromImage`` and ``tag`` of a pull (or ``repo`` and ``tag`` of a tag) as one reference."""
    if not tag:
        return name
    if re.match(r"^[a-z0-9]+:[a-f0-9]{32,}$", tag):
        return f"{name}@{tag}"
    return f"{name}:{tag}"


def familiar_name(ref: Reference) -> str:
    """The repository as Docker shows it: ``busybox``, ``team/app``, ``127.0.0.1:5000/app``."""
    if ref.domain == DEFAULT_DOMAIN:
        return ref.path.removeprefix("library/") if ref.path.count("/") == 1 else ref.path
    return ref.name


def familiar(ref: Reference) -> str:
    out = familiar_name(ref)
    if ref.tag:
        out += f":{ref.tag}"
    if ref.digest:
        out += f"@{ref.digest}"
    return out


def looks_like_id(value: str) -> str | None:
    """The hex an image ID (``sha256:...``) or ID prefix names, or None."""
    m = _ID.match(value)
    # A bare word of hex is a repository name too: the caller tries it as a name first.
    return m[1] if m else None
