"""The labels that tie a migrated image to what rebuilds its layers: the contract between import and on-demand blobs.

A migrated image's manifest lists each layer uncompressed (digest its diff
id), but the layer blobs themselves are not stored: the committed snapshots
hold the files, and Docker's tar-split record of each layer, stored as a
small content blob, holds everything else (headers, padding, order).  The
two together rebuild the exact tar stream whenever a blob is wanted (a
push, an export), so the migration writes each layer's bytes once, into its
snapshot.

* On the manifest, ``containerd.io/gc.ref.content.tar-split.<i>`` = the
  tar-split blob of layer ``i``: the collector keeps the records as long as
  the manifest, and a reader finds them by index.
* On each tar-split blob, :data:`LABEL_DIFF_ID` = the diff id the record
  rebuilds (checked again on every rebuild, by the stream's digest).
"""

from __future__ import annotations

from typing import Final

__all__ = ["LABEL_DIFF_ID", "LABEL_TAR_SPLIT", "TAR_SPLIT_MEDIA_TYPE", "tar_split_label", "tar_splits"]

LABEL_TAR_SPLIT: Final = "containerd.io/gc.ref.content.tar-split."
LABEL_DIFF_ID: Final = "pycontainerd.io/tar-split.diff-id"
# What the record is, for descriptors naming it: Docker's gzip of tar-split's JSON lines.
TAR_SPLIT_MEDIA_TYPE: Final = "application/vnd.docker.tar-split.v1+json+gzip"


def tar_split_label(index: int) -> str:
    return f"{LABEL_TAR_SPLIT}{index}"


def tar_splits(labels: dict[str, str]) -> dict[int, str]:
    """Layer index -> tar-split blob digest, from a manifest's labels (other labels and bad indexes ignored)."""
    found: dict[int, str] = {}
    for key, value in labels.items():
        if key.startswith(LABEL_TAR_SPLIT):
            suffix = key[len(LABEL_TAR_SPLIT) :]
            if suffix.isdigit() and len(suffix) < 6:
                found[int(suffix)] = value
    return found
