"""Namespaces over gRPC: containerd's Namespaces service as a :class:`~pycontainerd.namespaces.Store`."""

from __future__ import annotations

import builtins
from collections.abc import Mapping

from google.protobuf.field_mask_pb2 import FieldMask

from ..api.services.namespaces.v1 import namespace_pb2 as pb
from ..api.services.namespaces.v1 import namespace_pb2_grpc
from ._rpc import Connection

__all__ = ["NamespaceStore"]


class NamespaceStore:
    """The namespace records of a remote daemon."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stub = conn.stub(namespace_pb2_grpc.NamespacesStub)

    def create(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Raises AlreadyExists, InvalidArgument."""
        ns = pb.Namespace(name=name, labels=dict(labels or {}))
        self._conn.unary(self._stub.Create, pb.CreateNamespaceRequest(namespace=ns))

    def labels(self, name: str) -> dict[str, str]:
        """Raises NotFound."""
        resp = self._conn.unary(self._stub.Get, pb.GetNamespaceRequest(name=name))
        return dict(resp.namespace.labels)

    def set_label(self, name: str, key: str, value: str) -> None:
        """Sets one label through the ``labels.<key>`` path; an empty value removes it."""
        ns = pb.Namespace(name=name, labels={key: value} if value else {})
        req = pb.UpdateNamespaceRequest(namespace=ns, update_mask=FieldMask(paths=[f"labels.{key}"]))
        self._conn.unary(self._stub.Update, req)

    def list(self) -> builtins.list[str]:
        resp = self._conn.unary(self._stub.List, pb.ListNamespacesRequest())
        return [ns.name for ns in resp.namespaces]

    def delete(self, name: str) -> None:
        """Raises NotFound, and FailedPrecondition while the namespace still holds objects."""
        self._conn.unary(self._stub.Delete, pb.DeleteNamespaceRequest(name=name))
