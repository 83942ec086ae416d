"""The Containers gRPC service: containerd.services.containers.v1 over the metadata store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf.empty_pb2 import Empty

from ..api.convert import container_from_pb, container_to_pb
from ..api.services.containers.v1 import containers_pb2 as pb
from ..api.services.containers.v1 import containers_pb2_grpc as pb_grpc
from ..errors import InvalidArgument
from ..metadata import DB, ContainerStore
from .rpc import field_paths, guarded, namespace_of, offload

__all__ = ["ContainersService"]


class ContainersService(pb_grpc.ContainersServicer):
    """Adapter from the Containers API to ``DB.containers(namespace)``."""

    def __init__(self, db: DB) -> None:
        self._db = db

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_ContainersServicer_to_server(guarded(self), server)

    def _store(self, context: grpc.aio.ServicerContext) -> ContainerStore:
        return self._db.containers(namespace_of(context))

    async def Get(self, request: pb.GetContainerRequest, context: grpc.aio.ServicerContext) -> pb.GetContainerResponse:
        store = self._store(context)
        return pb.GetContainerResponse(container=container_to_pb(store.get(request.id)))

    async def List(
        self, request: pb.ListContainersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListContainersResponse:
        store = self._store(context)
        found = await offload(store.list, list(request.filters))
        return pb.ListContainersResponse(containers=[container_to_pb(c) for c in found])

    async def ListStream(
        self, request: pb.ListContainersRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ListContainerMessage]:
        store = self._store(context)
        for c in await offload(store.list, list(request.filters)):
            yield pb.ListContainerMessage(container=container_to_pb(c))

    async def Create(
        self, request: pb.CreateContainerRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateContainerResponse:
        store = self._store(context)
        created = await offload(store.create, container_from_pb(request.container))
        return pb.CreateContainerResponse(container=container_to_pb(created))

    async def Update(
        self, request: pb.UpdateContainerRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateContainerResponse:
        if not request.container.id:
            raise InvalidArgument("Container.ID required")
        store = self._store(context)
        updated = await offload(store.update, container_from_pb(request.container), field_paths(request.update_mask))
        return pb.UpdateContainerResponse(container=container_to_pb(updated))

    async def Delete(self, request: pb.DeleteContainerRequest, context: grpc.aio.ServicerContext) -> Empty:
        store = self._store(context)
        await offload(store.delete, request.id)
        return Empty()
