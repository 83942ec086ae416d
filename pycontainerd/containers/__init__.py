"""Container records: the metadata a task is created from.

A container is only a record — id, OCI runtime spec, runtime name and
options, the snapshot holding its root filesystem, labels — as in
containerd; nothing runs until a task is created from it.  Values that are
opaque to the store (the spec, runtime options, extensions) stay as
:class:`TypedValue`, a type URL and its bytes, exactly as the client sent them.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from .. import filters
from ..errors import InvalidArgument
from ..identifiers import validate, validate_labels

__all__ = [
    "UPDATABLE_FIELDS",
    "Container",
    "RuntimeInfo",
    "Store",
    "TypedValue",
    "adaptor",
    "validate_container",
]

UPDATABLE_FIELDS = ("labels", "spec", "extensions", "image", "snapshotkey")
"""What an update with no field paths replaces; the other fields are fixed at creation."""


@dataclass(frozen=True)
class TypedValue:
    """A ``google.protobuf.Any`` held without decoding: the type URL and the encoded value."""

    type_url: str
    value: bytes = b""


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    """The runtime that runs the container's tasks, e.g. ``io.containerd.runc.v2``."""
    options: TypedValue | None = None


@dataclass(frozen=True)
class Container:
    id: str
    runtime: RuntimeInfo
    spec: TypedValue | None
    labels: Mapping[str, str] = field(default_factory=dict)
    image: str = ""
    snapshotter: str = ""
    snapshot_key: str = ""
    extensions: Mapping[str, TypedValue] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


def validate_container(c: Container) -> None:
    """containerd's rules: a valid id, labels and extension keys; runtime and spec set."""
    try:
        validate("container id", c.id)
    except InvalidArgument as e:
        raise InvalidArgument(f"container.ID: {e}") from None
    if any(not k for k in c.extensions):
        raise InvalidArgument("container.Extension keys must not be zero-length")
    try:
        validate_labels(c.labels)
    except InvalidArgument as e:
        raise InvalidArgument(f"containers.Labels: {e}") from None
    if not c.runtime.name:
        raise InvalidArgument("container.Runtime.Name must be set")
    if c.spec is None:
        raise InvalidArgument("container.Spec must be set")
    if c.snapshot_key and not c.snapshotter:
        raise InvalidArgument("container.Snapshotter must be set if container.SnapshotKey is set")


def adaptor(c: Container) -> filters.Adaptor:
    """Filter fields: ``id``, ``image``, ``runtime.name``, ``snapshotter``, ``labels.<key>``."""

    def get(path: Sequence[str]) -> str | None:
        if not path:
            return None
        head = path[0]
        if len(path) == 1:
            return {"id": c.id, "image": c.image, "snapshotter": c.snapshotter}.get(head)
        if head == "runtime" and len(path) == 2 and path[1] == "name":
            return c.runtime.name
        if head == "labels":
            return filters.adapt_labels(path[1:], c.labels)
        return None

    return get


class Store(Protocol):
    """Container records of one namespace.

    ``update`` replaces the fields named by ``fieldpaths`` (``labels``,
    ``labels.<key>``, ``spec``, ``extensions``, ``extensions.<key>``,
    ``image``, ``snapshotkey``), or all of :data:`UPDATABLE_FIELDS` when none
    are given — then the snapshotter and runtime name must not change.
    Raises NotFound, AlreadyExists and InvalidArgument.
    """

    def get(self, id: str) -> Container: ...

    def list(self, filters_: Sequence[str] = ()) -> builtins.list[Container]: ...

    def create(self, container: Container) -> Container: ...

    def update(self, container: Container, fieldpaths: Sequence[str] = ()) -> Container: ...

    def delete(self, id: str) -> None: ...
