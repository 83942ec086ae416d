"""The mount record that snapshotters hand out and the diff service takes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import InvalidArgument, quote

__all__ = ["Mount", "lowerdirs", "option_value", "readonly", "validate"]

#: Mount types pycontainerd mounts itself; others are refused rather than passed to the kernel blindly.
KNOWN_TYPES = frozenset({"bind", "rbind", "overlay", "tmpfs"})


@dataclass(frozen=True)
class Mount:
    """One mount, as containerd's ``types.Mount``: what to mount, how, with which options.

    ``options`` mixes mount flags (``ro``, ``rbind``, ``nosuid``) and
    filesystem data (``lowerdir=...``), in containerd's spelling.
    """

    type: str
    source: str
    options: tuple[str, ...] = field(default_factory=tuple)
    target: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.options, tuple):
            object.__setattr__(self, "options", tuple(self.options))


def option_value(options: Sequence[str], key: str) -> str | None:
    """The value of ``key=value`` in ``options``, or None."""
    prefix = key + "="
    for o in options:
        if o.startswith(prefix):
            return o[len(prefix) :]
    return None


def lowerdirs(m: Mount) -> list[str]:
    """An overlay mount's lower directories, highest first."""
    value = option_value(m.options, "lowerdir")
    return value.split(":") if value else []


def readonly(m: Mount) -> bool:
    if "ro" in m.options:
        return True
    return m.type == "overlay" and option_value(m.options, "upperdir") is None


def validate(mounts: Sequence[Mount]) -> None:
    """Refuse mount lists pycontainerd will not hand to the kernel (they come from clients)."""
    if not mounts:
        raise InvalidArgument("no mounts given")
    for m in mounts:
        if m.type not in KNOWN_TYPES:
            raise InvalidArgument(f"mount type {quote(m.type)} is not supported")
        if m.type in ("bind", "rbind") and not m.source.startswith("/"):
            raise InvalidArgument(f"bind mount source {quote(m.source)} must be an absolute path")
        for o in m.options:
            if "\x00" in o or "," in o:
                raise InvalidArgument(f"mount option {quote(o)} is malformed")
