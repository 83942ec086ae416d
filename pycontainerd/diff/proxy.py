"""A differ over gRPC: containerd's Diff service as an :class:`~pycontainerd.diff.differ.Applier`.

The mounts it sends name paths on the daemon's machine, which is where the
daemon mounts them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..api.convert import descriptor_from_pb, descriptor_to_pb, mount_to_pb
from ..api.services.diff.v1 import diff_pb2 as pb
from ..api.services.diff.v1 import diff_pb2_grpc
from ..client._rpc import Connection
from ..images import Descriptor
from ..mount import Mount

__all__ = ["ProxyDiffer"]


class ProxyDiffer:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stub = conn.stub(diff_pb2_grpc.DiffStub)

    def compare(
        self,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        *,
        media_type: str = "",
        ref: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> Descriptor:
        req = pb.DiffRequest(
            left=[mount_to_pb(m) for m in lower],
            right=[mount_to_pb(m) for m in upper],
            media_type=media_type,
            ref=ref,
            labels=dict(labels or {}),
        )
        return descriptor_from_pb(self._conn.unary(self._stub.Diff, req).diff)

    def apply(self, desc: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
        req = pb.ApplyRequest(diff=descriptor_to_pb(desc), mounts=[mount_to_pb(m) for m in mounts])
        return descriptor_from_pb(self._conn.unary(self._stub.Apply, req).applied)
