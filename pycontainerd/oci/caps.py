"""Linux capabilities by name: the kernel's numbering and the caller's own effective set.

A privileged container gets the capabilities its creator holds (containerd's
``WithAllCurrentCapabilities``), which may be fewer than every known one when
the daemon itself runs in a container.
"""

from __future__ import annotations

from typing import Final

from ..errors import InvalidArgument, quote

__all__ = [
    "KNOWN_CAPABILITIES",
    "capabilities_from_bitmap",
    "capability_bitmap",
    "current_capabilities",
    "parse_status_capabilities",
]

KNOWN_CAPABILITIES: Final = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
"""Capability names in the kernel's order: the index is the capability's number (as of Linux 5.9)."""

_NUMBER: Final = {name: i for i, name in enumerate(KNOWN_CAPABILITIES)}


def capabilities_from_bitmap(bitmap: int) -> list[str]:
    """The names of the bits set in ``bitmap`` (bit n is capability n), lowest first; unknown bits are left out."""
    return [name for i, name in enumerate(KNOWN_CAPABILITIES) if bitmap >> i & 1]


def capability_bitmap(names: list[str] | tuple[str, ...]) -> int:
    """The bitmap of ``names``, as /proc/<pid>/status shows a set; InvalidArgument for an unknown name."""
    bits = 0
    for name in names:
        number = _NUMBER.get(name)
        if number is None:
            raise InvalidArgument(f"unknown capability {quote(name)}")
        bits |= 1 << number
    return bits


def parse_status_capabilities(status: str, field: str = "CapEff") -> int:
    """The bitmap of ``field`` (CapInh, CapPrm, CapEff, CapBnd, CapAmb) in the text of /proc/<pid>/status."""
    for line in status.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == field:
            try:
                return int(value.strip(), 16)
            except ValueError:
                raise InvalidArgument(f"malformed {field} line in a process status: {quote(line)}") from None
    raise InvalidArgument(f"no {field} line in a process status")


def current_capabilities() -> list[str]:
    """The effective capabilities of this process, by name."""
    with open("/proc/self/status", encoding="ascii", errors="replace") as f:
        return capabilities_from_bitmap(parse_status_capabilities(f.read()))
