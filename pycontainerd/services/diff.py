"""The Diff gRPC service: containerd.services.diff.v1.Diff over the daemon's differ.

Apply unpacks a layer blob of the call's namespace onto the mounts the
client sends (containerd's ``ctr images pull`` unpacks this way, one layer
at a time); Diff writes the changes between two mount lists as a new layer
blob.  Both run on the thread pool: they are all disk work.
"""

from __future__ import annotations

import grpc

from ..api.convert import descriptor_from_pb, descriptor_to_pb, mount_from_pb
from ..api.services.diff.v1 import diff_pb2 as pb
from ..api.services.diff.v1 import diff_pb2_grpc as pb_grpc
from ..diff.local import LocalDiffer
from ..errors import InvalidArgument
from ..images import Descriptor
from ..metadata import DB
from .rpc import guarded, namespace_and_lease, offload

__all__ = ["DiffService"]


class DiffService(pb_grpc.DiffServicer):
    """Adapter from the Diff API to a :class:`~pycontainerd.diff.local.LocalDiffer` per namespace."""

    def __init__(self, db: DB) -> None:
        self._db = db

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_DiffServicer_to_server(guarded(self), server)

    def _differ(self, context: grpc.aio.ServicerContext) -> LocalDiffer:
        namespace, lease = namespace_and_lease(context)
        return LocalDiffer(self._db.content(namespace, lease))

    async def Apply(self, request: pb.ApplyRequest, context: grpc.aio.ServicerContext) -> pb.ApplyResponse:
        if not request.HasField("diff") or not request.diff.digest:
            raise InvalidArgument("diff descriptor required")
        differ = self._differ(context)
        desc = descriptor_from_pb(request.diff)
        mounts = [mount_from_pb(m) for m in request.mounts]
        applied = await offload(differ.apply, desc, mounts)
        return pb.ApplyResponse(applied=descriptor_to_pb(applied))

    async def Diff(self, request: pb.DiffRequest, context: grpc.aio.ServicerContext) -> pb.DiffResponse:
        differ = self._differ(context)
        lower = [mount_from_pb(m) for m in request.left]
        upper = [mount_from_pb(m) for m in request.right]

        def compare() -> Descriptor:
            return differ.compare(
                lower, upper, media_type=request.media_type, ref=request.ref, labels=dict(request.labels)
            )

        return pb.DiffResponse(diff=descriptor_to_pb(await offload(compare)))
