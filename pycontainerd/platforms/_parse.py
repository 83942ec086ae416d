"""Platform specifiers as users type them: ``linux``, ``arm64``, ``linux/arm/v7``, ``arm64/v8``.

containerd's rules, with one addition: a two-part specifier whose first part
is an architecture rather than an operating system (``arm64/v8``) is
``arch/variant`` on this host's operating system.  An operating system we do
not know is refused rather than silently matching nothing.
"""

from __future__ import annotations

import re

from ..errors import InvalidArgument, quote
from ._host import default
from ._platform import Platform, normalize, normalize_arch, normalize_os

__all__ = ["KNOWN_ARCHITECTURES", "KNOWN_OS", "parse"]

_COMPONENT = re.compile(r"^[A-Za-z0-9_-]+$")

# Go's list of operating systems and architectures (go/build/syslist.go), as containerd uses it.
KNOWN_OS = frozenset(
    {"aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js", "linux", "nacl", "netbsd",
     "openbsd", "plan9", "solaris", "wasip1", "windows", "zos"}
)  # fmt: skip
KNOWN_ARCHITECTURES = frozenset(
    {"386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le", "loong64", "mips", "mipsle",
     "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64",
     "wasm"}
)  # fmt: skip


def _arch(arch: str, variant: str = "") -> tuple[str, str] | None:
    a, v = normalize_arch(arch, variant)
    return (a, v) if a in KNOWN_ARCHITECTURES else None


def parse(spec: str) -> Platform:
    """``os``, ``arch``, ``os/arch``, ``arch/variant`` or ``os/arch/variant`` → a normalised platform.

    What is left out is this host's.  Raises InvalidArgument naming the specifier.
    """
    if "*" in spec:
        raise InvalidArgument(f"invalid platform {quote(spec)}: wildcards are not supported")
    parts = spec.split("/")
    for part in parts:
        if not _COMPONENT.match(part):
            raise InvalidArgument(
                f"invalid platform {quote(spec)}: component {quote(part)} must match {_COMPONENT.pattern}"
            )
    if len(parts) > 3:
        raise InvalidArgument(f"invalid platform {quote(spec)}: want os[/arch[/variant]]")
    here = default()
    os_ = normalize_os(parts[0])
    if len(parts) == 1:
        if os_ in KNOWN_OS:
            return normalize(Platform(os_, here.architecture, here.variant))
        known = _arch(parts[0])
        if known is None:
            raise InvalidArgument(f"invalid platform {quote(spec)}: unknown operating system or architecture")
        return normalize(Platform(here.os, *known))
    if os_ not in KNOWN_OS:
        if len(parts) == 2 and (known := _arch(parts[0], parts[1])) is not None:
            return normalize(Platform(here.os, *known))
        raise InvalidArgument(f"invalid platform {quote(spec)}: unknown operating system {quote(parts[0])}")
    return normalize(Platform(os_, parts[1], parts[2] if len(parts) == 3 else ""))
