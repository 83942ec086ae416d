"""The Leases gRPC service: containerd.services.leases.v1.Leases over the metadata store.

A lease created without an id gets a random one shaped like containerd's
(``<nanoseconds>-<random>``), but drawn from an alphabet that always passes
identifier validation.  A synchronous delete collects garbage before
returning, so whatever only the lease held is gone when the call ends.
"""

from __future__ import annotations

import secrets
import time

import grpc
from google.protobuf.empty_pb2 import Empty

from ..api.convert import lease_to_pb
from ..api.services.leases.v1 import leases_pb2 as pb
from ..api.services.leases.v1 import leases_pb2_grpc as pb_grpc
from ..leases import Manager, Resource
from ..metadata import DB
from .rpc import guarded, namespace_of, offload

__all__ = ["LeasesService", "random_lease_id"]


def random_lease_id() -> str:
    return f"{time.time_ns() % 1_000_000_000}-{secrets.token_hex(3)}"


class LeasesService(pb_grpc.LeasesServicer):
    """Adapter from the Leases API to ``DB.leases(namespace)``."""

    def __init__(self, db: DB) -> None:
        self._db = db

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_LeasesServicer_to_server(guarded(self), server)

    def _manager(self, context: grpc.aio.ServicerContext) -> Manager:
        return self._db.leases(namespace_of(context))

    async def Create(self, request: pb.CreateRequest, context: grpc.aio.ServicerContext) -> pb.CreateResponse:
        manager = self._manager(context)
        lease = await offload(manager.create, request.id or random_lease_id(), dict(request.labels))
        return pb.CreateResponse(lease=lease_to_pb(lease))

    async def Delete(self, request: pb.DeleteRequest, context: grpc.aio.ServicerContext) -> Empty:
        manager = self._manager(context)
        await offload(manager.delete, request.id)
        if request.sync:
            await offload(self._db.collect_garbage)
        return Empty()

    async def List(self, request: pb.ListRequest, context: grpc.aio.ServicerContext) -> pb.ListResponse:
        manager = self._manager(context)
        leases = await offload(manager.list, list(request.filters))
        return pb.ListResponse(leases=[lease_to_pb(lease) for lease in leases])

    async def AddResource(self, request: pb.AddResourceRequest, context: grpc.aio.ServicerContext) -> Empty:
        manager = self._manager(context)
        resource = Resource(id=request.resource.id, type=request.resource.type)
        await offload(manager.add_resource, request.id, resource)
        return Empty()

    async def DeleteResource(self, request: pb.DeleteResourceRequest, context: grpc.aio.ServicerContext) -> Empty:
        manager = self._manager(context)
        resource = Resource(id=request.resource.id, type=request.resource.type)
        await offload(manager.delete_resource, request.id, resource)
        return Empty()

    async def ListResources(
        self, request: pb.ListResourcesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListResourcesResponse:
        manager = self._manager(context)
        resources = await offload(manager.list_resources, request.id)
        return pb.ListResourcesResponse(resources=[pb.Resource(id=r.id, type=r.type) for r in resources])
