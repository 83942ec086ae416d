"""A snapshotter over gRPC: containerd's Snapshots service as a :class:`~pycontainerd.snapshots.Snapshotter`.

The mount lists it returns name paths on the daemon's machine, so they are
usable where the client runs beside the daemon, as ``ctr`` assumes too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from google.protobuf.field_mask_pb2 import FieldMask

from ..api.convert import mount_from_pb, snapshot_info_from_pb, snapshot_info_to_pb
from ..api.services.snapshots.v1 import snapshots_pb2 as pb
from ..api.services.snapshots.v1 import snapshots_pb2_grpc
from ..client._rpc import Connection
from ..mount import Mount
from ._types import Info, Usage

__all__ = ["ProxySnapshotter"]


class ProxySnapshotter:
    """Snapshotter ``name`` of a remote daemon, in the connection's namespace (and lease)."""

    def __init__(self, conn: Connection, name: str) -> None:
        self._conn = conn
        self._stub = conn.stub(snapshots_pb2_grpc.SnapshotsStub)
        self.name = name

    def stat(self, key: str) -> Info:
        resp = self._conn.unary(self._stub.Stat, pb.StatSnapshotRequest(snapshotter=self.name, key=key))
        return snapshot_info_from_pb(resp.info)

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        req = pb.UpdateSnapshotRequest(
            snapshotter=self.name, info=snapshot_info_to_pb(info), update_mask=FieldMask(paths=list(fieldpaths))
        )
        return snapshot_info_from_pb(self._conn.unary(self._stub.Update, req).info)

    def usage(self, key: str) -> Usage:
        resp = self._conn.unary(self._stub.Usage, pb.UsageRequest(snapshotter=self.name, key=key))
        return Usage(size=resp.size, inodes=resp.inodes)

    def mounts(self, key: str) -> list[Mount]:
        resp = self._conn.unary(self._stub.Mounts, pb.MountsRequest(snapshotter=self.name, key=key))
        return [mount_from_pb(m) for m in resp.mounts]

    def prepare(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        req = pb.PrepareSnapshotRequest(snapshotter=self.name, key=key, parent=parent, labels=dict(labels or {}))
        return [mount_from_pb(m) for m in self._conn.unary(self._stub.Prepare, req).mounts]

    def view(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        req = pb.ViewSnapshotRequest(snapshotter=self.name, key=key, parent=parent, labels=dict(labels or {}))
        return [mount_from_pb(m) for m in self._conn.unary(self._stub.View, req).mounts]

    def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        req = pb.CommitSnapshotRequest(snapshotter=self.name, name=name, key=key, labels=dict(labels or {}))
        self._conn.unary(self._stub.Commit, req)

    def remove(self, key: str) -> None:
        self._conn.unary(self._stub.Remove, pb.RemoveSnapshotRequest(snapshotter=self.name, key=key))

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        req = pb.ListSnapshotsRequest(snapshotter=self.name, filters=list(filters))
        for resp in self._conn.stream(self._stub.List, req):
            for m in resp.info:
                yield snapshot_info_from_pb(m)

    def cleanup(self) -> None:
        self._conn.unary(self._stub.Cleanup, pb.CleanupRequest(snapshotter=self.name))

    def close(self) -> None:
        """The connection belongs to the client."""
