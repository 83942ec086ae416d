"""The Namespaces gRPC service: containerd.services.namespaces.v1.Namespaces.

Unlike the other services, calls here do not run inside a namespace: the
namespace is the object.  Update follows containerd: with a field mask only
``labels.<key>`` paths are accepted; without one, the labels are replaced.
"""

from __future__ import annotations

import grpc
from google.protobuf.empty_pb2 import Empty

from ..api.services.namespaces.v1 import namespace_pb2 as pb
from ..api.services.namespaces.v1 import namespace_pb2_grpc as pb_grpc
from ..errors import InvalidArgument
from ..metadata import DB
from ..namespaces import Store
from .rpc import field_paths, guarded, offload

__all__ = ["NamespacesService"]


def _update(store: Store, name: str, labels: dict[str, str], paths: list[str]) -> dict[str, str]:
    if paths:
        for path in paths:
            if not path.startswith("labels."):
                raise InvalidArgument(f"cannot update {path!r} field")
        for path in paths:
            key = path.removeprefix("labels.")
            store.set_label(name, key, labels.get(key, ""))
    else:
        for key in store.labels(name):
            if key not in labels:
                store.set_label(name, key, "")
        for key, value in labels.items():
            store.set_label(name, key, value)
    return store.labels(name)


def _list(store: Store) -> list[pb.Namespace]:
    return [pb.Namespace(name=name, labels=store.labels(name)) for name in store.list()]


class NamespacesService(pb_grpc.NamespacesServicer):
    """Adapter from the Namespaces API to ``DB.namespaces()``."""

    def __init__(self, db: DB) -> None:
        self._db = db

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_NamespacesServicer_to_server(guarded(self), server)

    async def Get(self, request: pb.GetNamespaceRequest, context: grpc.aio.ServicerContext) -> pb.GetNamespaceResponse:
        labels = await offload(self._db.namespaces().labels, request.name)
        return pb.GetNamespaceResponse(namespace=pb.Namespace(name=request.name, labels=labels))

    async def List(
        self, request: pb.ListNamespacesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListNamespacesResponse:
        return pb.ListNamespacesResponse(namespaces=await offload(_list, self._db.namespaces()))

    async def Create(
        self, request: pb.CreateNamespaceRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateNamespaceResponse:
        ns = request.namespace
        await offload(self._db.namespaces().create, ns.name, dict(ns.labels))
        return pb.CreateNamespaceResponse(namespace=ns)

    async def Update(
        self, request: pb.UpdateNamespaceRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateNamespaceResponse:
        ns = request.namespace
        paths = field_paths(request.update_mask)
        labels = await offload(_update, self._db.namespaces(), ns.name, dict(ns.labels), paths)
        return pb.UpdateNamespaceResponse(namespace=pb.Namespace(name=ns.name, labels=labels))

    async def Delete(self, request: pb.DeleteNamespaceRequest, context: grpc.aio.ServicerContext) -> Empty:
        await offload(self._db.namespaces().delete, request.name)
        return Empty()
