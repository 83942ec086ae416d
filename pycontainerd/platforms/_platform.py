"""A platform record (os/architecture/variant) and its canonical spelling.

Images name platforms loosely (``x86_64``, ``aarch64``, ``armhf``, ``arm64/v8``);
everything that compares platforms first brings both sides to one spelling
with :func:`normalize`, using the same aliases containerd does.
"""

from __future__ import annotations

import platform as _host
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument

__all__ = ["Platform", "format", "from_oci", "normalize", "to_oci"]


@dataclass(frozen=True, order=True)
class Platform:
    """What an image (or a host) is built for; the fields of an OCI ``platform`` object."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        return format(self)


def host_os() -> str:
    """The operating system name an empty ``os`` stands for (containerd uses its own GOOS)."""
    return _host.system().lower() or "linux"


def normalize_os(os_: str) -> str:
    if not os_:
        return host_os()
    os_ = os_.lower()
    return "darwin" if os_ == "macos" else os_


def normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """Resolve architecture aliases and the variants each architecture spells several ways."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        return "arm64", "" if variant in ("8", "v8") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def normalize(p: Platform) -> Platform:
    """The canonical form: lower case, aliases resolved, arm's default v7 explicit, arm64's v8 dropped.

    An empty ``os`` means this host's, as in containerd.  ``os_version`` and
    ``os_features`` are kept as they are.
    """
    arch, variant = normalize_arch(p.architecture, p.variant)
    return Platform(normalize_os(p.os), arch, variant, p.os_version, p.os_features)


def format(p: Platform) -> str:
    """``os/arch[/variant]``, empty parts left out; ``unknown`` when there is no os at all."""
    if not p.os:
        return "unknown"
    return "/".join(x for x in (p.os, p.architecture, p.variant) if x)


def _string(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"platform {key} must be a string, not {type(value).__name__}")
    return value


def from_oci(obj: Any) -> Platform:
    """The platform of an OCI ``platform`` object (or image config), as written: not normalised.

    The object comes from a registry or an archive, so every field is type-checked.
    """
    if not isinstance(obj, dict):
        raise InvalidArgument("platform must be a JSON object")
    features = obj.get("os.features")
    if features is None:
        features = []
    if not isinstance(features, list) or not all(isinstance(x, str) for x in features):
        raise InvalidArgument("platform os.features must be a list of strings")
    return Platform(
        _string(obj, "os"),
        _string(obj, "architecture"),
        _string(obj, "variant"),
        _string(obj, "os.version"),
        tuple(features),
    )


def to_oci(p: Platform) -> dict[str, Any]:
    """The OCI JSON object, optional fields only when set."""
    out: dict[str, Any] = {"architecture": p.architecture, "os": p.os}
    if p.os_version:
        out["os.version"] = p.os_version
    if p.os_features:
        out["os.features"] = list(p.os_features)
    if p.variant:
        out["variant"] = p.variant
    return out
