"""The diff service's two roles: apply a layer onto mounts, and compare two mounts into a layer.

Both speak in descriptors and mount lists, never paths, so the same unpack
code drives the daemon's local differ and a remote one over gRPC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from ..images import Descriptor
from ..mount import Mount

__all__ = ["LABEL_UNCOMPRESSED", "Applier", "Comparer"]

#: On a compressed layer blob: the digest of its uncompressed tar (its diff id).
LABEL_UNCOMPRESSED = "containerd.io/uncompressed"


class Applier(Protocol):
    def apply(self, desc: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
        """Unpack the layer blob ``desc`` onto ``mounts``; returns the uncompressed tar's descriptor.

        Raises NotFound (no such blob), InvalidArgument (a hostile or corrupt
        layer, an unknown media type), and leaves the mounts unmounted.
        """
        ...


class Comparer(Protocol):
    def compare(
        self,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        *,
        media_type: str = "",
        ref: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """Write the changes from ``lower`` to ``upper`` as a layer blob into the content store."""
        ...
