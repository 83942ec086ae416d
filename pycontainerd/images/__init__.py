"""Image records: a name pointing at a target descriptor, with labels.

The records are plain metadata; the content they point at is kept alive by
garbage collection following the target and the gc labels of the blobs.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ..platforms import Platform

__all__ = ["Descriptor", "Image", "Store", "save"]


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None  # in an index: whom the manifest is for
    urls: tuple[str, ...] = ()  # where a foreign layer may be fetched from


@dataclass(frozen=True)
class Image:
    name: str
    target: Descriptor
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Store(Protocol):
    """Image records of one namespace."""

    def get(self, name: str) -> Image:
        """Raises NotFound."""
        ...

    def list(self, filters: Sequence[str] = ()) -> builtins.list[Image]:
        """Filter fields: name, target.digest, target.mediatype, labels.<key>."""
        ...

    def create(self, image: Image) -> Image:
        """Raises AlreadyExists, InvalidArgument (empty name, bad target)."""
        ...

    def update(self, image: Image, fieldpaths: Sequence[str] = ()) -> Image:
        """Paths: ``labels``, ``labels.<key>``, ``target``, ``annotations``... none means all.  Raises NotFound."""
        ...

    def delete(self, name: str) -> None:
        """Raises NotFound."""
        ...


def save(store: Store, image: Image) -> Image:
    """Create the record, or replace the one of that name: what a pull or an import does with its result."""
    from ..errors import AlreadyExists

    try:
        return store.create(image)
    except AlreadyExists:
        return store.update(image)
