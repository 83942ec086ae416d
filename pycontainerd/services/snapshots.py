"""The Snapshots gRPC service: containerd.services.snapshots.v1.Snapshots over the metadata store.

Each call names its snapshotter; an empty or unknown name is InvalidArgument,
as in containerd.  Work that touches the disk (prepare, commit, usage,
removal) runs on the thread pool; List streams its answer in batches.
Cleanup collects garbage now, which removes from the backends what removed
records left behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf.empty_pb2 import Empty

from ..api.convert import mount_to_pb, snapshot_info_from_pb, snapshot_info_to_pb
from ..api.services.snapshots.v1 import snapshots_pb2 as pb
from ..api.services.snapshots.v1 import snapshots_pb2_grpc as pb_grpc
from ..errors import InvalidArgument
from ..metadata import DB, SnapshotStore
from .rpc import field_paths, guarded, namespace_and_lease, offload

__all__ = ["SnapshotsService"]

_BATCH = 100


class SnapshotsService(pb_grpc.SnapshotsServicer):
    """Adapter from the Snapshots API to ``DB.snapshotter(name, namespace, lease)``."""

    def __init__(self, db: DB) -> None:
        self._db = db

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_SnapshotsServicer_to_server(guarded(self), server)

    def _store(self, name: str, context: grpc.aio.ServicerContext) -> SnapshotStore:
        if not name:
            raise InvalidArgument("snapshotter argument missing")
        namespace, lease = namespace_and_lease(context)
        return self._db.snapshotter(name, namespace, lease)

    async def Prepare(
        self, request: pb.PrepareSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> pb.PrepareSnapshotResponse:
        store = self._store(request.snapshotter, context)
        mounts = await offload(store.prepare, request.key, request.parent, dict(request.labels))
        return pb.PrepareSnapshotResponse(mounts=[mount_to_pb(m) for m in mounts])

    async def View(self, request: pb.ViewSnapshotRequest, context: grpc.aio.ServicerContext) -> pb.ViewSnapshotResponse:
        store = self._store(request.snapshotter, context)
        mounts = await offload(store.view, request.key, request.parent, dict(request.labels))
        return pb.ViewSnapshotResponse(mounts=[mount_to_pb(m) for m in mounts])

    async def Mounts(self, request: pb.MountsRequest, context: grpc.aio.ServicerContext) -> pb.MountsResponse:
        store = self._store(request.snapshotter, context)
        mounts = await offload(store.mounts, request.key)
        return pb.MountsResponse(mounts=[mount_to_pb(m) for m in mounts])

    async def Commit(self, request: pb.CommitSnapshotRequest, context: grpc.aio.ServicerContext) -> Empty:
        store = self._store(request.snapshotter, context)
        await offload(store.commit, request.name, request.key, dict(request.labels))
        return Empty()

    async def Remove(self, request: pb.RemoveSnapshotRequest, context: grpc.aio.ServicerContext) -> Empty:
        store = self._store(request.snapshotter, context)
        await offload(store.remove, request.key)
        return Empty()

    async def Stat(self, request: pb.StatSnapshotRequest, context: grpc.aio.ServicerContext) -> pb.StatSnapshotResponse:
        store = self._store(request.snapshotter, context)
        return pb.StatSnapshotResponse(info=snapshot_info_to_pb(store.stat(request.key)))  # a point lookup

    async def Update(
        self, request: pb.UpdateSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateSnapshotResponse:
        store = self._store(request.snapshotter, context)
        info = snapshot_info_from_pb(request.info)
        updated = await offload(store.update, info, field_paths(request.update_mask))
        return pb.UpdateSnapshotResponse(info=snapshot_info_to_pb(updated))

    async def List(
        self, request: pb.ListSnapshotsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ListSnapshotsResponse]:
        store = self._store(request.snapshotter, context)
        infos = await offload(lambda: list(store.walk(list(request.filters))))
        for i in range(0, len(infos), _BATCH):
            yield pb.ListSnapshotsResponse(info=[snapshot_info_to_pb(x) for x in infos[i : i + _BATCH]])

    async def Usage(self, request: pb.UsageRequest, context: grpc.aio.ServicerContext) -> pb.UsageResponse:
        store = self._store(request.snapshotter, context)
        usage = await offload(store.usage, request.key)
        return pb.UsageResponse(size=usage.size, inodes=usage.inodes)

    async def Cleanup(self, request: pb.CleanupRequest, context: grpc.aio.ServicerContext) -> Empty:
        store = self._store(request.snapshotter, context)
        await offload(store.cleanup)
        return Empty()
