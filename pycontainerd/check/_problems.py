"""What ``pyctr check`` finds: one typed record per problem."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Kind", "Problem"]


class Kind(StrEnum):
    """The kinds of problem, each with what it means.  ``repairable`` kinds are safe to remove offline."""

    IMAGE_TARGET_MISSING = "image-target-missing"
    """An image's target has no content record in its namespace."""
    CONTENT_BLOB_MISSING = "content-blob-missing"
    """A content record whose blob is not in the content store."""
    BLOB_CORRUPT = "blob-corrupt"
    """A blob whose bytes do not hash to its name."""
    BLOB_SIZE = "blob-size"
    """A blob whose size differs from its content record's."""
    BLOB_UNREFERENCED = "blob-unreferenced"
    """A blob no namespace records (the collector removes these)."""
    GC_REF_MISSING = "gc-ref-missing"
    """An image's manifest whose config or layer, or a config whose unpacked snapshot, is not there."""
    LEASE_RESOURCE_MISSING = "lease-resource-missing"
    """A lease holding a resource its namespace does not have."""
    SNAPSHOTTER_MISSING = "snapshotter-missing"
    """Records of a snapshotter whose storage is not there."""
    SNAPSHOT_BACKEND_MISSING = "snapshot-backend-missing"
    """A snapshot record whose backing snapshot the snapshotter does not have."""
    SNAPSHOT_COMMIT_UNFINISHED = "snapshot-commit-unfinished"
    """A snapshot recorded committed that its snapshotter still has active (the daemon finishes it at start)."""
    SNAPSHOT_MISMATCH = "snapshot-mismatch"
    """A snapshot record and its backing snapshot disagree on kind or parent."""
    SNAPSHOT_PARENT_MISSING = "snapshot-parent-missing"
    """A snapshot record whose parent is not a committed snapshot of the namespace."""
    SNAPSHOT_UNREFERENCED = "snapshot-unreferenced"
    """A backing snapshot no record names (the collector removes these)."""
    SNAPSHOT_DIR_MISSING = "snapshot-dir-missing"
    """A snapshotter record whose directory is not on disk."""
    SNAPSHOT_DIR_ORPHANED = "snapshot-dir-orphaned"
    """A directory in a snapshotter's storage that no record names (a removal or a create cut short)."""
    CONTAINER_SNAPSHOT_MISSING = "container-snapshot-missing"
    """A container whose snapshot key names no snapshot of its snapshotter."""
    INGEST_DATA_MISSING = "ingest-data-missing"
    """An ingest record whose data is not in the content store."""
    INGEST_UNREFERENCED = "ingest-unreferenced"
    """An ingest in the content store that no namespace records (the collector removes these)."""
    INGEST_BROKEN = "ingest-broken"
    """An ingest directory that cannot be read back, or a temporary one left by a killed writer."""
    INGEST_EXPIRED = "ingest-expired"
    """An ingest opened under a lease that no longer holds it or that expired, or without a lease over a day ago."""
    MOUNT_LEFTOVER = "mount-leftover"
    """Something mounted under the daemon's root or state directory that nothing uses."""
    UNREADABLE = "unreadable"
    """A database or directory the check could not read."""


REPAIRABLE = frozenset(
    {
        Kind.BLOB_UNREFERENCED,
        Kind.SNAPSHOT_DIR_ORPHANED,
        Kind.INGEST_DATA_MISSING,
        Kind.INGEST_UNREFERENCED,
        Kind.INGEST_BROKEN,
        Kind.MOUNT_LEFTOVER,
    }
)


@dataclass(frozen=True)
class Problem:
    """One problem: its kind, the namespace it is in ("" for shared storage), what it is about, and why."""

    kind: Kind
    subject: str
    detail: str
    namespace: str = ""
    path: str = ""
    """The file or directory a repair would remove, when there is one."""

    @property
    def repairable(self) -> bool:
        return self.kind in REPAIRABLE

    def __str__(self) -> str:
        where = f"[{self.namespace}] " if self.namespace else ""
        return f"{self.kind.value}: {where}{self.subject}: {self.detail}"
