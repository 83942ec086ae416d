"""Bounds on what one layer, manifest, index or config may make the daemon read, hold and write.

Layers and image documents come from strangers.  Each bound below stops one
way a hostile input could exhaust the daemon: memory (huge extended headers,
extended attributes, documents), time (millions of entries) or disk
(decompression bombs).  The defaults are far above what real images need;
the daemon reads them from its config (a version 2 file)::

    version = 2
    [plugins."io.containerd.grpc.v1.diff"]
      max_header_size = 1048576          # pax + GNU long name/link headers of one entry, bytes
      max_xattr_size = 262144            # extended attributes of one entry (names + values), bytes
      max_entries = 10000000             # entries in one layer
      max_layer_size = 274877906944      # uncompressed bytes of one layer (256 GiB)
      max_ratio = 0                      # uncompressed / compressed bytes; 0: off
      ratio_floor = 1073741824           # ... checked once a layer has expanded past this
      max_manifest_size = 4393216        # an index or manifest read from a registry or archive
      max_config_size = 16777216         # an image config

A layer over a bound is refused with one
:class:`~pycontainerd.errors.ResourceExhausted` that names the key to
raise; the unpacker then removes the snapshot it was writing.  The checks
run per entry and per chunk, never per byte.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Final

from .errors import ResourceExhausted

__all__ = [
    "SECTION",
    "Limits",
    "configure",
    "current",
    "exceeded",
]

SECTION: Final = 'plugins."io.containerd.grpc.v1.diff"'


@dataclass(frozen=True)
class Limits:
    """The bounds (see the module docstring); also the diff plugin's config section."""

    max_header_size: int = 1 << 20
    max_xattr_size: int = 256 << 10
    max_entries: int = 10_000_000
    max_layer_size: int = 256 << 30
    max_ratio: int = 0
    ratio_floor: int = 1 << 30
    # containerd's limit on manifests and indexes (remotes/docker.MaxManifestSize: 4 * 1048 * 1048)
    max_manifest_size: int = 4 * 1048 * 1048
    max_config_size: int = 16 << 20

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{f.name}: must be an integer")
            if f.name == "max_ratio":
                if value < 0:
                    raise ValueError("max_ratio: must not be negative (0 turns it off)")
            elif value <= 0:
                raise ValueError(f"{f.name}: must be positive")
        if self.max_header_size < 512:
            raise ValueError("max_header_size: must be at least 512 (one tar block)")

    def with_(self, **changes: Any) -> Limits:
        return replace(self, **changes)


_in_force = [Limits()]  # one slot, replaced whole


def current() -> Limits:
    """The limits in force: the daemon's configured ones, else the defaults."""
    return _in_force[0]


def configure(limits: Limits) -> None:
    """Set the limits of this process (the daemon does, from its config, before serving)."""
    _in_force[0] = limits


def exceeded(what: str, key: str, limit: int) -> ResourceExhausted:
    """The error of a bound overstepped: what did, and which key raises the bound."""
    return ResourceExhausted(f"{what}: over the limit of {limit} ({SECTION}.{key})")
