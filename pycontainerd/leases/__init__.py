"""Leases: client-held references that keep resources alive.

A lease protects what is written while it is active (content, ingests,
snapshots, images) from garbage collection, until the lease is deleted or
its ``containerd.io/gc.expire`` time passes.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

__all__ = ["GRPC_HEADER", "LABEL_EXPIRE", "LABEL_FLAT", "Lease", "Manager", "Resource"]

GRPC_HEADER = "containerd-lease"
LABEL_EXPIRE = "containerd.io/gc.expire"
LABEL_FLAT = "containerd.io/gc.flat"


@dataclass(frozen=True)
class Lease:
    id: str
    created_at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Resource:
    """A leased object: ``type`` is content, ingests, images or snapshots/<snapshotter>."""

    id: str
    type: str


class Manager(Protocol):
    """Leases of one namespace."""

    def create(self, id: str, labels: Mapping[str, str] | None = None) -> Lease:
        """Raises AlreadyExists, InvalidArgument."""
        ...

    def delete(self, id: str) -> None:
        """Raises NotFound."""
        ...

    def list(self, filters: Sequence[str] = ()) -> builtins.list[Lease]:
        """Filter fields: id, labels.<key>."""
        ...

    def add_resource(self, id: str, resource: Resource) -> None:
        """Raises NotFound (lease), InvalidArgument (type or id)."""
        ...

    def delete_resource(self, id: str, resource: Resource) -> None: ...

    def list_resources(self, id: str) -> builtins.list[Resource]: ...
