"""Leases of one namespace and the resources they hold."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .. import filters
from ..content import validate_digest
from ..errors import AlreadyExists, InvalidArgument, NotFound, quote
from ..leases import Lease, Resource
from ._util import dump_labels, load_labels, now_ns, to_datetime

if TYPE_CHECKING:
    from ._db import DB


def validate_lease_id(id: str) -> str:
    """Lease ids are only stored, never used as paths: containerd asks just for one (its clients' random ids
    may end in '-'); we also bound the length and refuse NUL."""
    if not id:
        raise InvalidArgument("lease id must be provided")
    if len(id.encode()) > 1024 or "\x00" in id:
        raise InvalidArgument("lease id must be at most 1024 bytes, without NUL")
    return id


def validate_resource(resource: Resource) -> None:
    """The resource types containerd's leases accept, with their id rules."""
    if not resource.id:
        raise InvalidArgument("resource id must not be empty")
    if resource.type == "content":
        validate_digest(resource.id)
    elif resource.type in ("ingests", "images") or (
        resource.type.startswith("snapshots/") and len(resource.type) > len("snapshots/")
    ):
        pass
    else:
        raise InvalidArgument(f"unsupported resource type {quote(resource.type)}")


def lease_exists(conn: sqlite3.Connection, namespace: str, lease: str) -> None:
    if not conn.execute("SELECT 1 FROM leases WHERE namespace = ? AND id = ?", (namespace, lease)).fetchone():
        raise NotFound(f"lease {quote(lease)}: not found")


def add_to_lease(conn: sqlite3.Connection, namespace: str, lease: str | None, type_: str, id_: str) -> None:
    """Record that ``lease`` holds an object; no-op without a lease."""
    if lease is None:
        return
    lease_exists(conn, namespace, lease)
    conn.execute(
        "INSERT OR IGNORE INTO lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)",
        (namespace, lease, type_, id_),
    )


class LeaseManager:
    def __init__(self, db: DB, namespace: str) -> None:
        self._db = db
        self.namespace = namespace

    def create(self, id: str, labels: Mapping[str, str] | None = None) -> Lease:
        from ._db import ensure_namespace

        validate_lease_id(id)
        stored = dump_labels(labels or {})
        created = now_ns()
        with self._db.write() as conn:
            ensure_namespace(conn, self.namespace)
            if conn.execute("SELECT 1 FROM leases WHERE namespace = ? AND id = ?", (self.namespace, id)).fetchone():
                raise AlreadyExists(f"lease {quote(id)}: already exists")
            conn.execute(
                "INSERT INTO leases (namespace, id, created_ns, labels) VALUES (?, ?, ?, ?)",
                (self.namespace, id, created, stored),
            )
        return Lease(id=id, created_at=to_datetime(created), labels=load_labels(stored))

    def delete(self, id: str) -> None:
        with self._db.write() as conn:
            cur = conn.execute("DELETE FROM leases WHERE namespace = ? AND id = ?", (self.namespace, id))
            if cur.rowcount == 0:
                raise NotFound(f"lease {quote(id)}: not found")
            conn.execute("DELETE FROM lease_resources WHERE namespace = ? AND lease = ?", (self.namespace, id))
        self._db.scheduler.schedule()

    def list(self, filters_: Sequence[str] = ()) -> builtins.list[Lease]:
        flt = filters.parse(filters_)
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT id, created_ns, labels FROM leases WHERE namespace = ? ORDER BY created_ns, id",
                (self.namespace,),
            ).fetchall()
        out = []
        for id_, created, labels in rows:
            lease = Lease(id=id_, created_at=to_datetime(created), labels=load_labels(labels))

            def field(path: Sequence[str], lease: Lease = lease) -> str | None:
                if list(path) == ["id"]:
                    return lease.id
                if path and path[0] == "labels":
                    return filters.adapt_labels(path[1:], lease.labels)
                return None

            if flt.match(field):
                out.append(lease)
        return out

    def add_resource(self, id: str, resource: Resource) -> None:
        validate_resource(resource)
        with self._db.write() as conn:
            add_to_lease(conn, self.namespace, id, resource.type, resource.id)

    def delete_resource(self, id: str, resource: Resource) -> None:
        validate_resource(resource)
        with self._db.write() as conn:
            lease_exists(conn, self.namespace, id)
            conn.execute(
                "DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND id = ?",
                (self.namespace, id, resource.type, resource.id),
            )
        self._db.scheduler.schedule()

    def list_resources(self, id: str) -> builtins.list[Resource]:
        with self._db.read() as conn:
            lease_exists(conn, self.namespace, id)
            rows = conn.execute(
                "SELECT type, id FROM lease_resources WHERE namespace = ? AND lease = ? ORDER BY type, id",
                (self.namespace, id),
            ).fetchall()
        return [Resource(id=r[1], type=r[0]) for r in rows]
