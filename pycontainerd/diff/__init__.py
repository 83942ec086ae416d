"""Layers as change sets: apply a layer tar to a directory, and write the tar of a change.

This is the library under the Diff service and the unpacker.  It knows
nothing of snapshotters, mounts or gRPC: it takes directories and streams.

The public surface is small on purpose, and everything else lives in
private modules (the tar parser and writer, the safe resolver, the reader
thread) so that they can change without breaking callers:

* :func:`apply_layer` (with :class:`WhiteoutMode`, :class:`ApplyResult`):
  a layer blob onto a directory, the plain way (whiteouts delete) or into an
  overlayfs upper directory (whiteouts become overlay's own markers);
* :func:`write_diff` (with :class:`DiffResult`): the layer that turns one
  tree into another, or that an overlay upper directory holds;
* :class:`Compression` and its helpers: what a media type or a blob's first
  bytes say, and streams through gzip or zstd.
"""

from __future__ import annotations

from .apply import ApplyResult, WhiteoutMode, apply_layer
from .compare import DiffResult, write_diff
from .compression import Compression, from_media_type, open_compressed, open_decompressed, sniff

__all__ = [
    "ApplyResult",
    "Compression",
    "DiffResult",
    "WhiteoutMode",
    "apply_layer",
    "from_media_type",
    "open_compressed",
    "open_decompressed",
    "sniff",
    "write_diff",
]
