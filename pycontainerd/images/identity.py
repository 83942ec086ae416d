"""Chain ids: the names under which unpacked layers are shared.

The OCI image spec defines a layer stack's id as the digest of its parent
stack's id and its own diff id, so two images with the same bottom layers
share those snapshots whatever their compressed blobs look like.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["chain_id", "chain_ids"]


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The chain id of every prefix of ``diff_ids``, bottom layer first."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def chain_id(diff_ids: Sequence[str]) -> str:
    """The chain id of the whole stack ("" for no layers)."""
    ids = chain_ids(diff_ids)
    return ids[-1] if ids else ""
