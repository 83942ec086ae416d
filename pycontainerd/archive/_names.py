"""Image names as the archive formats spell them."""

from __future__ import annotations

from ..reference import parse_normalized

__all__ = ["familiar", "oci_ref_name"]


def familiar(name: str) -> str:
    """Docker's short form: ``docker.io/library/busybox:latest`` → ``busybox:latest``."""
    s = str(parse_normalized(name))
    for prefix in ("docker.io/library/", "docker.io/"):
        if s.startswith(prefix):
            return s[len(prefix) :]
    return s


def oci_ref_name(name: str) -> str:
    """The OCI layout's ``ref.name`` for an image: its tag, as containerd writes it ("" without one)."""
    ref = parse_normalized(name)
    return ref.tag
