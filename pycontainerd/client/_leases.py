"""Leases over gRPC: containerd's Leases service as a :class:`~pycontainerd.leases.Manager`."""

from __future__ import annotations

import builtins
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from ..api.convert import lease_from_pb
from ..api.services.leases.v1 import leases_pb2 as pb
from ..api.services.leases.v1 import leases_pb2_grpc
from ..leases import LABEL_EXPIRE, Lease, Resource
from ._rpc import Connection

__all__ = ["LeaseManager", "expire_label", "random_lease_id"]


def random_lease_id() -> str:
    """A fresh id in containerd's identifier alphabet: time for ordering, random bits against clashes."""
    return f"{time.time_ns() % 1_000_000_000}-{secrets.token_hex(4)}"


def expire_label(after: timedelta, now: datetime | None = None) -> str:
    """The RFC 3339 value of ``containerd.io/gc.expire`` for a lease ending ``after`` from now."""
    when = (now or datetime.now(UTC)) + after
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LeaseManager:
    """The leases of one namespace of a remote daemon."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stub = conn.stub(leases_pb2_grpc.LeasesStub)

    def create(self, id: str, labels: Mapping[str, str] | None = None) -> Lease:
        """Raises AlreadyExists, InvalidArgument."""
        resp = self._conn.unary(self._stub.Create, pb.CreateRequest(id=id, labels=dict(labels or {})))
        return lease_from_pb(resp.lease)

    def create_expiring(self, expire: timedelta, labels: Mapping[str, str] | None = None, id: str = "") -> Lease:
        """A lease with a generated id (unless given) that the collector drops after ``expire``."""
        return self.create(id or random_lease_id(), {**(labels or {}), LABEL_EXPIRE: expire_label(expire)})

    def delete(self, id: str, *, sync: bool = False) -> None:
        """Raises NotFound; ``sync`` waits for the garbage collection the delete triggers."""
        self._conn.unary(self._stub.Delete, pb.DeleteRequest(id=id, sync=sync))

    def list(self, filters: Sequence[str] = ()) -> builtins.list[Lease]:
        resp = self._conn.unary(self._stub.List, pb.ListRequest(filters=list(filters)))
        return [lease_from_pb(m) for m in resp.leases]

    def add_resource(self, id: str, resource: Resource) -> None:
        req = pb.AddResourceRequest(id=id, resource=pb.Resource(id=resource.id, type=resource.type))
        self._conn.unary(self._stub.AddResource, req)

    def delete_resource(self, id: str, resource: Resource) -> None:
        req = pb.DeleteResourceRequest(id=id, resource=pb.Resource(id=resource.id, type=resource.type))
        self._conn.unary(self._stub.DeleteResource, req)

    def list_resources(self, id: str) -> builtins.list[Resource]:
        resp = self._conn.unary(self._stub.ListResources, pb.ListResourcesRequest(id=id))
        return [Resource(id=r.id, type=r.type) for r in resp.resources]
