"""This host's platform: the machine name mapped to OCI architectures, and the ARM variant.

On ARM the variant is not in the machine name reliably, so, as containerd
does, it is read from the ``CPU architecture`` line of ``/proc/cpuinfo``.
The parsing is a pure function of the file's text.
"""

from __future__ import annotations

import functools
import platform as _host

from ._platform import Platform, host_os, normalize

__all__ = ["cpu_variant", "default", "host_architecture"]

# uname -m → the architecture names Go (and so OCI) uses
_MACHINE = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "386",
    "i486": "386",
    "i586": "386",
    "i686": "386",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv8b": "arm64be",
    "aarch64_be": "arm64be",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loong64",
    "mips64": "mips64",
    "mips": "mips",
}

# what the kernel prints as "CPU architecture" → the OCI variant
_CPU_ARCH = {
    "8": "v8",
    "aarch64": "v8",
    "7": "v7",
    "7m": "v7",
    **{f"?({n})": "v7" for n in range(12, 18)},
    "6": "v6",
    "6tej": "v6",
    "5": "v5",
    "5t": "v5",
    "5te": "v5",
    "5tej": "v5",
    "4": "v4",
    "4t": "v4",
    "3": "v3",
}


def host_architecture(machine: str) -> str:
    """``uname -m`` spelled as OCI spells architectures (``armv7l`` → ``arm``)."""
    m = machine.lower()
    if m in _MACHINE:
        return _MACHINE[m]
    if m.startswith("arm"):
        return "arm"
    return m


def _cpuinfo_field(cpuinfo: str, name: str) -> str | None:
    """The first ``name: value`` of the file (the first core is enough), name compared case-insensitively."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == name.lower():
            return value.split(":", 1)[0].strip()
    return None


def cpu_variant(cpuinfo: str, arch: str) -> str:
    """The ARM variant (``v5`` … ``v8``) that ``/proc/cpuinfo`` describes; ``unknown`` if unrecognised."""
    variant = _cpuinfo_field(cpuinfo, "Cpu architecture")
    if variant is None:
        return ""
    # Raspberry Pi ARMv6 boards report architecture 7 and give themselves away in the model name.
    if arch == "arm" and variant == "7":
        model = _cpuinfo_field(cpuinfo, "model name") or ""
        if model.lower().startswith("armv6-compatible"):
            variant = "6"
    return _CPU_ARCH.get(variant.lower(), "unknown")


def _variant(os_: str, arch: str) -> str:
    if arch not in ("arm", "arm64"):
        return ""
    if os_ in ("windows", "darwin"):  # these only run v7 on arm and v8 on arm64
        return "v8" if arch == "arm64" else "v7"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return cpu_variant(f.read(), arch)
    except OSError:
        return ""


@functools.cache
def default() -> Platform:
    """This host's platform, normalised (``linux/amd64`` on a PC; ``linux/arm/v6`` on a Raspberry Pi 1)."""
    os_ = host_os()
    arch = host_architecture(_host.machine())
    return normalize(Platform(os_, arch, _variant(os_, arch)))
