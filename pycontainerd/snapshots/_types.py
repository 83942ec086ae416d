"""Records and the protocol of a snapshotter."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from .. import filters
from ..mount import Mount

__all__ = [
    "INHERITED_LABEL_PREFIX",
    "LABEL_SNAPSHOT_REF",
    "UNPACK_KEY_PREFIX",
    "Info",
    "Kind",
    "Snapshotter",
    "Usage",
    "adaptor",
    "exists",
    "inherited_labels",
]

#: Labels with this prefix are handed from the metadata store down to the backend, which keeps them too.
INHERITED_LABEL_PREFIX = "containerd.io/snapshot/"
#: On Prepare: the name the caller will commit to; if it exists already the call fails with AlreadyExists.
LABEL_SNAPSHOT_REF = "containerd.io/snapshot.ref"
#: Keys of snapshots being unpacked into: ``extract-<nanoseconds> <chain id>``.
UNPACK_KEY_PREFIX = "extract"

_EPOCH = datetime.fromtimestamp(0, UTC)


class Kind(enum.IntEnum):
    """Values are the wire enum's (containerd.services.snapshots.v1.Kind)."""

    UNKNOWN = 0
    VIEW = 1
    ACTIVE = 2
    COMMITTED = 3

    @property
    def label(self) -> str:
        """``View``, ``Active``, ``Committed``: containerd's spelling in listings and filters."""
        return self.name.capitalize()

    @classmethod
    def parse(cls, s: str) -> Kind:
        return {"view": cls.VIEW, "active": cls.ACTIVE, "committed": cls.COMMITTED}.get(s.lower(), cls.UNKNOWN)


@dataclass(frozen=True)
class Info:
    """What is known about one snapshot.  ``name`` is its key (active, view) or name (committed)."""

    name: str
    kind: Kind = Kind.UNKNOWN
    parent: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime = _EPOCH
    updated_at: datetime = _EPOCH


@dataclass(frozen=True)
class Usage:
    """Disk used by a snapshot itself, without its parents."""

    size: int = 0
    inodes: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.size + other.size, self.inodes + other.inodes)


def inherited_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (labels or {}).items() if k.startswith(INHERITED_LABEL_PREFIX)}


def adaptor(info: Info) -> filters.Adaptor:
    """Filter fields of a snapshot: ``kind``, ``name``, ``parent``, ``labels.<key>``."""

    def field_(path: Sequence[str]) -> str | None:
        if not path:
            return None
        head = path[0]
        if len(path) == 1:
            if head == "kind":
                return info.kind.label.lower()
            if head == "name":
                return info.name
            if head == "parent":
                return info.parent
        if head == "labels":
            return filters.adapt_labels(path[1:], info.labels)
        return None

    return field_


@runtime_checkable
class Snapshotter(Protocol):
    """Copy-on-write filesystem trees with parent chains, containerd's vocabulary.

    *key* names an active snapshot or a view, *name* a committed one, and
    both live in one key space.  Prepare makes an active snapshot (writable)
    on top of a committed *parent* ("" for none); View makes a read-only
    one; Commit turns an active snapshot into a committed one under a new
    name and removes the active key.  Only committed snapshots can be
    parents, and a snapshot with children cannot be removed.  Snapshots are
    used through the mount lists Prepare, View and Mounts return.

    Errors: NotFound (no such key or parent), AlreadyExists (key or name
    taken), InvalidArgument (parent not committed, bad labels or field
    paths), FailedPrecondition (Mounts of a committed snapshot, Commit of a
    view, Remove of a parent).
    """

    def stat(self, key: str) -> Info: ...

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        """Replace labels: all (no paths, or ``labels``) or ``labels.<key>`` ones."""
        ...

    def usage(self, key: str) -> Usage:
        """Stored for committed snapshots; measured now for active ones."""
        ...

    def mounts(self, key: str) -> list[Mount]: ...

    def prepare(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]: ...

    def view(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]: ...

    def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None: ...

    def remove(self, key: str) -> None: ...

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        """Every snapshot matching any of ``filters``."""
        ...

    def cleanup(self) -> None:
        """Reclaim the space of removed snapshots now."""
        ...

    def close(self) -> None: ...


def exists(sn: Snapshotter, key: str) -> bool:
    """Whether ``key`` names a snapshot of ``sn``."""
    from ..errors import NotFound

    try:
        sn.stat(key)
    except NotFound:
        return False
    return True
