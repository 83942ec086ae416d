"""Containers over gRPC: containerd's Containers service as a :class:`~pycontainerd.containers.Store`."""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from google.protobuf.field_mask_pb2 import FieldMask

from ..api.convert import container_from_pb, container_to_pb
from ..api.services.containers.v1 import containers_pb2 as pb
from ..api.services.containers.v1 import containers_pb2_grpc
from ..containers import Container
from ._rpc import Connection

__all__ = ["ContainerStore"]


class ContainerStore:
    """The container records of one namespace of a remote daemon."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stub = conn.stub(containers_pb2_grpc.ContainersStub)

    def get(self, id: str) -> Container:
        """Raises NotFound."""
        return container_from_pb(self._conn.unary(self._stub.Get, pb.GetContainerRequest(id=id)).container)

    def list(self, filters: Sequence[str] = ()) -> builtins.list[Container]:
        req = pb.ListContainersRequest(filters=list(filters))
        return [container_from_pb(m.container) for m in self._conn.stream(self._stub.ListStream, req)]

    def create(self, container: Container) -> Container:
        """Raises AlreadyExists, InvalidArgument."""
        req = pb.CreateContainerRequest(container=container_to_pb(container))
        return container_from_pb(self._conn.unary(self._stub.Create, req).container)

    def update(self, container: Container, fieldpaths: Sequence[str] = ()) -> Container:
        """Only the ``fieldpaths`` given change (every updatable field when none); raises NotFound."""
        req = pb.UpdateContainerRequest(container=container_to_pb(container))
        if fieldpaths:
            req.update_mask.CopyFrom(FieldMask(paths=list(fieldpaths)))
        return container_from_pb(self._conn.unary(self._stub.Update, req).container)

    def delete(self, id: str) -> None:
        """Raises NotFound."""
        self._conn.unary(self._stub.Delete, pb.DeleteContainerRequest(id=id))
