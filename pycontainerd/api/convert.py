"""Records to wire messages and back: the one place both the daemon's services
and the client's proxies convert between core records and protobuf.

Times: an unknown time is an unset field on the wire; a zero or unset
timestamp read back is the epoch where the record needs a time, None where
it may have none.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import overload

from google.protobuf import any_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from ..containers import Container, RuntimeInfo, TypedValue
from ..content import Info, Status
from ..events import Envelope
from ..images import Descriptor, Image
from ..leases import Lease
from ..mount import Mount
from ..snapshots import Info as SnapshotInfo
from ..snapshots import Kind
from .services.containers.v1 import containers_pb2
from .services.content.v1 import content_pb2
from .services.events.v1 import events_pb2
from .services.images.v1 import images_pb2
from .services.leases.v1 import leases_pb2
from .services.snapshots.v1 import snapshots_pb2
from .types import descriptor_pb2, mount_pb2

__all__ = [
    "EPOCH",
    "any_from_pb",
    "any_to_pb",
    "container_from_pb",
    "container_to_pb",
    "descriptor_from_pb",
    "descriptor_to_pb",
    "envelope_from_pb",
    "envelope_to_pb",
    "image_from_pb",
    "image_to_pb",
    "info_from_pb",
    "info_to_pb",
    "lease_from_pb",
    "lease_to_pb",
    "mount_from_pb",
    "mount_to_pb",
    "snapshot_info_from_pb",
    "snapshot_info_to_pb",
    "status_from_pb",
    "status_to_pb",
    "time_from_pb",
    "time_or_none",
    "timestamp",
]

EPOCH = datetime.fromtimestamp(0, UTC)


@overload
def timestamp(dt: datetime) -> Timestamp: ...
@overload
def timestamp(dt: None) -> None: ...
@overload
def timestamp(dt: datetime | None) -> Timestamp | None: ...
def timestamp(dt: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp (None stays unset); cheaper than Timestamp.FromDatetime, which matters in lists."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return Timestamp(seconds=math.floor(dt.timestamp()), nanos=dt.microsecond * 1000)


def time_or_none(ts: Timestamp) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def time_from_pb(ts: Timestamp) -> datetime:
    return time_or_none(ts) or EPOCH


def info_to_pb(info: Info) -> content_pb2.Info:
    # Empty maps are left out: filling a map field costs more than the rest of the message.
    return content_pb2.Info(
        digest=info.digest,
        size=info.size,
        created_at=timestamp(info.created_at),
        updated_at=timestamp(info.updated_at),
        labels=info.labels or None,
    )


def info_from_pb(m: content_pb2.Info) -> Info:
    return Info(m.digest, m.size, time_from_pb(m.created_at), time_from_pb(m.updated_at), dict(m.labels))


def status_to_pb(st: Status) -> content_pb2.Status:
    return content_pb2.Status(
        ref=st.ref,
        offset=st.offset,
        total=st.total,
        expected=st.expected,
        started_at=timestamp(st.started_at),
        updated_at=timestamp(st.updated_at),
    )


def status_from_pb(m: content_pb2.Status) -> Status:
    return Status(m.ref, m.offset, m.total, m.expected, time_from_pb(m.started_at), time_from_pb(m.updated_at))


def descriptor_to_pb(d: Descriptor) -> descriptor_pb2.Descriptor:
    return descriptor_pb2.Descriptor(
        media_type=d.media_type, digest=d.digest, size=d.size, annotations=d.annotations or None
    )


def descriptor_from_pb(m: descriptor_pb2.Descriptor) -> Descriptor:
    return Descriptor(m.media_type, m.digest, m.size, dict(m.annotations))


def image_to_pb(image: Image) -> images_pb2.Image:
    return images_pb2.Image(
        name=image.name,
        labels=image.labels or None,
        target=descriptor_to_pb(image.target),
        created_at=timestamp(image.created_at),
        updated_at=timestamp(image.updated_at),
    )


def image_from_pb(m: images_pb2.Image) -> Image:
    return Image(
        name=m.name,
        target=descriptor_from_pb(m.target),
        labels=dict(m.labels),
        created_at=time_or_none(m.created_at),
        updated_at=time_or_none(m.updated_at),
    )


def lease_to_pb(lease: Lease) -> leases_pb2.Lease:
    return leases_pb2.Lease(id=lease.id, created_at=timestamp(lease.created_at), labels=lease.labels or None)


def lease_from_pb(m: leases_pb2.Lease) -> Lease:
    return Lease(id=m.id, created_at=time_from_pb(m.created_at), labels=dict(m.labels))


def mount_to_pb(m: Mount) -> mount_pb2.Mount:
    return mount_pb2.Mount(type=m.type, source=m.source, target=m.target, options=list(m.options))


def mount_from_pb(m: mount_pb2.Mount) -> Mount:
    return Mount(type=m.type, source=m.source, options=tuple(m.options), target=m.target)


def snapshot_info_to_pb(info: SnapshotInfo) -> snapshots_pb2.Info:
    return snapshots_pb2.Info(
        name=info.name,
        parent=info.parent,
        kind=int(info.kind),  # type: ignore[arg-type]
        created_at=timestamp(info.created_at),
        updated_at=timestamp(info.updated_at),
        labels=dict(info.labels),
    )


def snapshot_info_from_pb(m: snapshots_pb2.Info) -> SnapshotInfo:
    kind = Kind(m.kind) if m.kind in tuple(Kind) else Kind.UNKNOWN
    return SnapshotInfo(
        name=m.name,
        kind=kind,
        parent=m.parent,
        labels=dict(m.labels),
        created_at=time_from_pb(m.created_at),
        updated_at=time_from_pb(m.updated_at),
    )


def any_to_pb(v: TypedValue) -> any_pb2.Any:
    return any_pb2.Any(type_url=v.type_url, value=v.value)


def any_from_pb(m: any_pb2.Any) -> TypedValue:
    return TypedValue(m.type_url, m.value)


def container_to_pb(c: Container) -> containers_pb2.Container:
    m = containers_pb2.Container(
        id=c.id,
        labels=c.labels,
        image=c.image,
        runtime=containers_pb2.Container.Runtime(name=c.runtime.name),
        snapshotter=c.snapshotter,
        snapshot_key=c.snapshot_key,
        created_at=timestamp(c.created_at),
        updated_at=timestamp(c.updated_at),
    )
    if c.runtime.options is not None:
        m.runtime.options.CopyFrom(any_to_pb(c.runtime.options))
    if c.spec is not None:
        m.spec.CopyFrom(any_to_pb(c.spec))
    for name, value in c.extensions.items():
        m.extensions[name].CopyFrom(any_to_pb(value))
    return m


def container_from_pb(m: containers_pb2.Container) -> Container:
    """A container as a client sent it; an unset spec or runtime options stay None (validation decides)."""
    return Container(
        id=m.id,
        labels=dict(m.labels),
        image=m.image,
        runtime=RuntimeInfo(m.runtime.name, any_from_pb(m.runtime.options) if m.runtime.HasField("options") else None),
        spec=any_from_pb(m.spec) if m.HasField("spec") else None,
        snapshotter=m.snapshotter,
        snapshot_key=m.snapshot_key,
        extensions={k: any_from_pb(v) for k, v in m.extensions.items()},
        created_at=time_or_none(m.created_at),
        updated_at=time_or_none(m.updated_at),
    )


def envelope_to_pb(e: Envelope) -> events_pb2.Envelope:
    ts = Timestamp()
    ts.FromNanoseconds(e.timestamp_ns)
    return events_pb2.Envelope(timestamp=ts, namespace=e.namespace, topic=e.topic, event=e.event)


def envelope_from_pb(m: events_pb2.Envelope) -> Envelope:
    return Envelope(m.timestamp.ToNanoseconds(), m.namespace, m.topic, m.event)
