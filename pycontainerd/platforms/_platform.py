"""A platform (os/architecture/variant) and its canonical spelling, as containerd normalises it."""

from __future__ import annotations

import platform as _host
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument

__all__ = ["Platform", "default", "format", "from_oci", "normalize", "parse", "to_oci"]

_PART = re.compile(r"^[A-Za-z0-9_-]+$")
_OS = {"macos": "darwin"}
_ARCH: Mapping[str, tuple[str, str]] = {
    # name -> (architecture, variant implied)
    "i386": ("386", ""),
    "i686": ("386", ""),
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
}


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        return format(self)


def _arch_variant(arch: str, variant: str) -> tuple[str, str]:
    arch = arch.lower()
    variant = variant.lower()
    if arch in _ARCH:
        arch, implied = _ARCH[arch]
        variant = variant or implied
    if arch == "arm64":
        if variant in ("8", "v8"):
            variant = ""
    elif arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return arch, variant


def normalize(p: Platform) -> Platform:
    """The canonical form: lower case, aliases resolved, default variants made explicit or dropped."""
    os_ = p.os.lower()
    os_ = _OS.get(os_, os_)
    arch, variant = _arch_variant(p.architecture, p.variant)
    return Platform(os_, arch, variant, p.os_version, p.os_features)


def _host_variant(arch: str) -> str:
    if arch != "arm":
        return ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip().lower() == "cpu architecture":
                    return "v" + value.strip().split()[0] if value.strip() else ""
    except OSError:
        pass
    return "v7"


def default() -> Platform:
    """This host's platform."""
    arch, _ = _arch_variant(_host.machine(), "")
    return normalize(Platform(_host.system().lower() or "linux", arch, _host_variant(arch)))


_KNOWN_OS = frozenset(
    {"aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "linux", "netbsd", "openbsd",
     "plan9", "solaris", "wasip1", "windows", "macos"}
)  # fmt: skip


def parse(spec: str) -> Platform:
    """``os[/arch[/variant]]`` or ``arch[/variant]`` (this host's os) → a normalised platform."""
    parts = spec.split("/")
    if not spec or len(parts) > 3 or not all(_PART.match(p) for p in parts):
        raise InvalidArgument(f"invalid platform {spec!r}: want os[/arch[/variant]]")
    here = default()
    first = parts[0].lower()
    if len(parts) == 1:
        if first in _KNOWN_OS:
            return normalize(Platform(first, here.architecture, here.variant))
        return normalize(Platform(here.os, first))
    if len(parts) == 2:
        if first in _KNOWN_OS:
            return normalize(Platform(first, parts[1]))
        return normalize(Platform(here.os, parts[0], parts[1]))
    if first not in _KNOWN_OS:
        raise InvalidArgument(f"invalid platform {spec!r}: unknown operating system {parts[0]!r}")
    return normalize(Platform(first, parts[1], parts[2]))


def format(p: Platform) -> str:
    return "/".join(x for x in (p.os or "unknown", p.architecture or "unknown", p.variant) if x)


def from_oci(obj: Any) -> Platform:
    """An OCI ``platform`` object from a (hostile) document."""
    if not isinstance(obj, dict):
        raise InvalidArgument("platform must be an object")
    os_, arch = obj.get("os", ""), obj.get("architecture", "")
    variant, version = obj.get("variant", ""), obj.get("os.version", "")
    features = obj.get("os.features", [])
    if not all(isinstance(x, str) for x in (os_, arch, variant, version)):
        raise InvalidArgument("platform fields must be strings")
    if not isinstance(features, list) or not all(isinstance(x, str) for x in features):
        raise InvalidArgument("platform os.features must be a list of strings")
    return Platform(os_, arch, variant, version, tuple(features))


def to_oci(p: Platform) -> dict[str, Any]:
    out: dict[str, Any] = {"architecture": p.architecture, "os": p.os}
    if p.os_version:
        out["os.version"] = p.os_version
    if p.os_features:
        out["os.features"] = list(p.os_features)
    if p.variant:
        out["variant"] = p.variant
    return out
