"""A namespace's view of one snapshotter.

The backend snapshotter knows nothing of namespaces: each snapshot a
namespace creates is stored in the backend under ``<namespace>/<id>/<key>``
(``id`` from this table's sequence, so a key removed and prepared again
never meets its old backend snapshot).  Keys, parents, kinds and labels
live here; only labels prefixed ``containerd.io/snapshot/`` go down to the
backend.  Remove only forgets the record: garbage collection removes the
backend snapshots no record names, children first, as containerd does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from .. import filters
from ..api.events import snapshot_pb2 as ev
from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, quote
from ..mount import Mount
from ..snapshots import LABEL_SNAPSHOT_REF, Info, Kind, Snapshotter, Usage, adaptor, inherited_labels
from ..snapshots.storage import validate_key
from ._util import apply_label_paths, dump_labels, load_labels, now_ns, to_datetime
from .leases import add_to_lease

if TYPE_CHECKING:
    import sqlite3

    from ._db import DB

__all__ = ["SnapshotStore", "backend_key"]

_COLUMNS = "id, key, kind, parent, labels, created_ns, updated_ns"


def backend_key(namespace: str, id_: int, key: str) -> str:
    return f"{namespace}/{id_}/{key}"


def _info(row: tuple[int, str, int, str, str, int, int]) -> Info:
    _, key, kind, parent, labels, created, updated = row
    return Info(key, Kind(kind), parent, load_labels(labels), to_datetime(created), to_datetime(updated))


class SnapshotStore:
    """The :class:`~pycontainerd.snapshots.Snapshotter` protocol for one namespace, over a backend."""

    def __init__(self, db: DB, name: str, backend: Snapshotter, namespace: str, lease: str | None = None) -> None:
        self._db = db
        self.name = name
        self.backend = backend
        self.namespace = namespace
        self.lease = lease
        self._resource = "snapshots/" + name

    def _row(self, conn: sqlite3.Connection, key: str) -> tuple[int, str, int, str, str, int, int]:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
            (self.namespace, self.name, key),
        ).fetchone()
        if row is None:
            raise NotFound(f"snapshot {quote(key)}: not found")
        return row  # type: ignore[no-any-return]

    def _bkey(self, key: str) -> tuple[str, Kind]:
        with self._db.read() as conn:
            row = self._row(conn, key)
        return backend_key(self.namespace, row[0], key), Kind(row[2])

    def stat(self, key: str) -> Info:
        with self._db.read() as conn:
            return _info(self._row(conn, key))

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        if not info.name:
            raise InvalidArgument("snapshot name must not be empty")
        paths = list(fieldpaths)
        with self._db.write() as conn:
            row = self._row(conn, info.name)
            if paths:
                labels = apply_label_paths(load_labels(row[4]), info.labels, paths)
                if labels is None:
                    bad = next(p for p in paths if p != "labels" and not p.startswith("labels."))
                    raise InvalidArgument(f"cannot update {quote(bad)} field on snapshot {quote(info.name)}")
            else:
                labels = dict(info.labels)
            conn.execute(
                "UPDATE snapshots SET labels = ?, updated_ns = ? WHERE id = ?", (dump_labels(labels), now_ns(), row[0])
            )
            bkey = backend_key(self.namespace, row[0], info.name)
            inner = inherited_labels(labels)
            self.backend.update(Info(bkey, labels=inner), ["labels"])
            updated = _info(self._row(conn, info.name))
        return updated

    def usage(self, key: str) -> Usage:
        bkey, _ = self._bkey(key)
        return self.backend.usage(bkey)

    def mounts(self, key: str) -> list[Mount]:
        bkey, kind = self._bkey(key)
        if kind == Kind.COMMITTED:
            raise FailedPrecondition(f"snapshot {quote(key)} is committed: only active snapshots and views mount")
        return self.backend.mounts(bkey)

    def prepare(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.ACTIVE, key, parent, labels or {})

    def view(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.VIEW, key, parent, labels or {})

    def _create(self, kind: Kind, key: str, parent: str, labels: Mapping[str, str]) -> list[Mount]:
        from ._db import ensure_namespace

        validate_key(key)
        stored = dump_labels(labels)
        target = labels.get(LABEL_SNAPSHOT_REF, "")
        now = now_ns()
        with self._db.write() as conn:
            ensure_namespace(conn, self.namespace)
            if target and self._exists(conn, target):
                raise AlreadyExists(f"target snapshot {quote(target)}: already exists")
            if self._exists(conn, key):
                raise AlreadyExists(f"snapshot {quote(key)}: already exists")
            bparent = ""
            if parent:
                try:
                    prow = self._row(conn, parent)
                except NotFound:
                    raise NotFound(f"parent snapshot {quote(parent)}: not found") from None
                if prow[2] != Kind.COMMITTED:
                    raise InvalidArgument(f"parent snapshot {quote(parent)} is not committed")
                bparent = backend_key(self.namespace, prow[0], parent)
            cur = conn.execute(
                "INSERT INTO snapshots (namespace, snapshotter, key, kind, parent, labels, created_ns, updated_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.namespace, self.name, key, int(kind), parent, stored, now, now),
            )
            assert cur.lastrowid is not None
            add_to_lease(conn, self.namespace, self.lease, self._resource, key)
            bkey = backend_key(self.namespace, cur.lastrowid, key)
            # The backend works inside the transaction: if it fails, the record goes too, and the
            # collector (which takes the same lock) never sees a backend snapshot without its record.
            create = self.backend.view if kind == Kind.VIEW else self.backend.prepare
            mounts = create(bkey, bparent, inherited_labels(labels))
        self._db.bump("snapshots", self.namespace)
        if kind == Kind.ACTIVE:
            self._db.publish(self.namespace, "/snapshot/prepare", ev.SnapshotPrepare(key=key, parent=parent))
        return mounts

    def _exists(self, conn: sqlite3.Connection, key: str) -> bool:
        return (
            conn.execute(
                "SELECT 1 FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
                (self.namespace, self.name, key),
            ).fetchone()
            is not None
        )

    def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        """Commit active ``key`` as ``name``: the record first, then the backend, under the database lock.

        The record keeps its id, so the backend snapshot is ``<ns>/<id>/<key>``
        before and ``<ns>/<id>/<name>`` after.  A crash between the two commits
        leaves a committed record over an active backend snapshot of the same
        id, which :func:`~pycontainerd.metadata.recover` finishes at start; a
        backend that refuses puts the record back as it was.
        """
        validate_key(name, "name")
        labels = labels or {}
        stored = dump_labels(labels)
        now = now_ns()
        with self._db.lock:
            with self._db.write() as conn:
                if self._exists(conn, name):
                    raise AlreadyExists(f"snapshot {quote(name)}: already exists")
                row = self._row(conn, key)
                if row[2] != Kind.ACTIVE:
                    raise FailedPrecondition(f"snapshot {quote(key)} is not active")
                conn.execute(
                    "UPDATE snapshots SET key = ?, kind = ?, labels = ?, created_ns = ?, updated_ns = ? WHERE id = ?",
                    (name, int(Kind.COMMITTED), stored, now, now, row[0]),
                )
                self._swap_lease(conn, key, name)
            try:
                self.backend.commit(
                    backend_key(self.namespace, row[0], name),
                    backend_key(self.namespace, row[0], key),
                    inherited_labels(labels),
                )
            except BaseException:
                with self._db.write() as conn:
                    conn.execute(
                        "UPDATE snapshots SET key = ?, kind = ?, labels = ?, created_ns = ?, updated_ns = ? "
                        "WHERE id = ?",
                        (key, int(Kind.ACTIVE), row[4], row[5], row[6], row[0]),
                    )
                    self._swap_lease(conn, name, key)
                raise
        self._db.bump("snapshots", self.namespace)
        self._db.publish(self.namespace, "/snapshot/commit", ev.SnapshotCommit(key=key, name=name))

    def _swap_lease(self, conn: sqlite3.Connection, old: str, new: str) -> None:
        add_to_lease(conn, self.namespace, self.lease, self._resource, new)
        if self.lease is not None:
            conn.execute(
                "DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND id = ?",
                (self.namespace, self.lease, self._resource, old),
            )

    def remove(self, key: str) -> None:
        with self._db.write() as conn:
            row = self._row(conn, key)
            child = conn.execute(
                "SELECT 1 FROM snapshots WHERE namespace = ? AND snapshotter = ? AND parent = ? LIMIT 1",
                (self.namespace, self.name, key),
            ).fetchone()
            if child is not None:
                raise FailedPrecondition(f"cannot remove snapshot {quote(key)}: it has children")
            conn.execute("DELETE FROM snapshots WHERE id = ?", (row[0],))
            conn.execute(
                "DELETE FROM lease_resources WHERE namespace = ? AND type = ? AND id = ?",
                (self.namespace, self._resource, key),
            )
        self._db.bump("snapshots", self.namespace)
        self._db.publish(self.namespace, "/snapshot/remove", ev.SnapshotRemove(key=key))
        self._db.scheduler.schedule()

    def walk(self, filters_: Sequence[str] = ()) -> Iterator[Info]:
        flt = filters.parse(filters_)
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM snapshots WHERE namespace = ? AND snapshotter = ? ORDER BY key",
                (self.namespace, self.name),
            ).fetchall()
        for row in rows:
            info = _info(row)
            if flt.match(adaptor(info)):
                yield info

    def cleanup(self) -> None:
        """Collect garbage now: removed snapshots leave the backend."""
        self._db.collect_garbage()

    def close(self) -> None:
        """The backend belongs to the daemon, not to one namespace's view."""
