"""A namespace's view of the shared content store.

Blobs live once in the backend; each namespace has its own records of the
blobs it committed (or was given by the sharing policy), its own labels, and
its own ingests, whose backend refs are prefixed with the namespace.  Blobs
are only removed from the backend by garbage collection.

A namespace sees a blob only once it has a record of it.  How it gets one
without writing the bytes is the sharing policy (``DB.content_sharing_policy``,
the metadata plugin's ``content_sharing_policy``), as containerd's:

``shared`` (the default)
    Opening a writer with an expected digest that the backend already holds
    (and, when a total is given, of that size) records the blob in the
    namespace at once and answers AlreadyExists: a pull into a second
    namespace fetches nothing it need not.
``isolated``
    The namespace must write the whole blob itself; its commit is checked
    against the digest as any other, and only then recorded.  A blob recorded
    in a namespace labelled ``containerd.io/namespace.shareable=true`` is the
    exception: it is shared as under ``shared`` (containerd 1.7's label).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from .. import filters
from ..api.events.content_pb2 import ContentDelete
from ..content import Following, Info, ReaderAt, Status, Writer, validate_digest
from ..errors import AlreadyExists, InvalidArgument, NotFound, NotImplementedYet, quote
from ._util import apply_label_paths, dump_labels, load_labels, now_ns, to_datetime
from .leases import add_to_lease

if TYPE_CHECKING:
    import sqlite3

    from ._db import DB


def validate_ref(ref: str) -> str:
    if not ref:
        raise InvalidArgument("ref must not be empty")
    if len(ref.encode()) > 1024 or "\x00" in ref:
        raise InvalidArgument("ref must be at most 1024 bytes, without NUL")
    return ref


def _info(row: tuple[str, int, int, int, str]) -> Info:
    digest, size, created, updated, labels = row
    return Info(digest, size, to_datetime(created), to_datetime(updated), load_labels(labels))


def _adaptor(info: Info) -> filters.Adaptor:
    def field(path: Sequence[str]) -> str | None:
        if not path:
            return None
        if len(path) == 1 and path[0] == "digest":
            return info.digest
        if len(path) == 1 and path[0] == "size":
            return str(info.size)
        if path[0] == "labels":
            return filters.adapt_labels(path[1:], info.labels)
        return None

    return field


def _status_adaptor(st: Status) -> filters.Adaptor:
    fields = {"ref": st.ref, "expected": st.expected}
    return lambda path: fields.get(path[0]) if len(path) == 1 else None


_INFO = "SELECT digest, size, created_ns, updated_ns, labels FROM content"

SHARING_POLICIES = ("shared", "isolated")
SHAREABLE_LABEL = "containerd.io/namespace.shareable"
"""A namespace label; ``true`` lets its blobs be shared into others under the isolated policy."""


class ContentStore:
    """``content.Store`` bound to one namespace and, optionally, one lease."""

    def __init__(self, db: DB, namespace: str, lease: str | None = None) -> None:
        self._db = db
        self.namespace = namespace
        self.lease = lease

    # -- Manager / Provider -------------------------------------------------

    def info(self, digest: str) -> Info:
        validate_digest(digest)
        with self._db.read() as conn:
            row = conn.execute(f"{_INFO} WHERE namespace = ? AND digest = ?", (self.namespace, digest)).fetchone()
        if row is None:
            raise NotFound(f"content digest {digest}: not found")
        return _info(row)

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        validate_digest(info.digest)
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT labels FROM content WHERE namespace = ? AND digest = ?", (self.namespace, info.digest)
            ).fetchone()
            if row is None:
                raise NotFound(f"content digest {info.digest}: not found")
            if fieldpaths:
                labels = apply_label_paths(load_labels(row[0]), info.labels, list(fieldpaths))
                if labels is None:
                    bad = next(p for p in fieldpaths if p != "labels" and not p.startswith("labels."))
                    raise InvalidArgument(f"cannot update {quote(bad)} field on content info {quote(info.digest)}")
            else:
                labels = dict(info.labels)
            conn.execute(
                "UPDATE content SET labels = ?, updated_ns = ? WHERE namespace = ? AND digest = ?",
                (dump_labels(labels), now_ns(), self.namespace, info.digest),
            )
        self._db.bump("content", self.namespace)
        return self.info(info.digest)

    def walk(self, filters_: Sequence[str] = ()) -> Iterator[Info]:
        flt = filters.parse(filters_)
        with self._db.read() as conn:
            rows = conn.execute(f"{_INFO} WHERE namespace = ? ORDER BY digest", (self.namespace,)).fetchall()
        for row in rows:
            info = _info(row)
            if not filters_ or flt.match(_adaptor(info)):
                yield info

    def delete(self, digest: str) -> None:
        validate_digest(digest)
        with self._db.write() as conn:
            cur = conn.execute("DELETE FROM content WHERE namespace = ? AND digest = ?", (self.namespace, digest))
            if cur.rowcount == 0:
                raise NotFound(f"content digest {digest}: not found")
        self._db.bump("content", self.namespace)
        self._db.publish(self.namespace, "/content/delete", ContentDelete(digest=digest))
        self._db.scheduler.schedule()

    def reader_at(self, digest: str) -> ReaderAt:
        self.info(digest)
        return self._db.backend.reader_at(digest)

    # -- Ingester / IngestManager ------------------------------------------

    def writer(self, ref: str, total: int = 0, expected: str = "") -> Writer:
        from ._db import ensure_namespace

        validate_ref(ref)
        if expected:
            validate_digest(expected)
        exists = False
        with self._db.write() as conn:
            ensure_namespace(conn, self.namespace)
            if expected:
                exists = self._share(conn, expected, total)
            if not exists:
                row = conn.execute(
                    "SELECT backend_ref FROM ingests WHERE namespace = ? AND ref = ?", (self.namespace, ref)
                ).fetchone()
                backend_ref = row[0] if row else f"{self.namespace}/{ref}"
                conn.execute(
                    "INSERT OR REPLACE INTO ingests (namespace, ref, backend_ref, expected, total, created_ns, leased) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (self.namespace, ref, backend_ref, expected, total, now_ns(), self.lease is not None),
                )
                add_to_lease(conn, self.namespace, self.lease, "ingests", ref)
                try:
                    w = self._db.backend.writer(backend_ref, total=total, expected=expected)
                    untold = ""
                except AlreadyExists:
                    # The policy did not share the blob the backend holds: the
                    # bytes must come anyway, so the backend is not told the
                    # digest, and this writer's commit checks them against it.
                    w = self._db.backend.writer(backend_ref, total=total)
                    untold = expected
        if exists:
            self._db.bump("content", self.namespace)
            raise AlreadyExists(f"content {expected}: already exists")
        return NamespacedWriter(self, ref, w, untold)

    def _share(self, conn: sqlite3.Connection, digest: str, total: int = 0) -> bool:
        """Whether ``digest`` is here now: recorded already, or given to this namespace by the sharing policy."""
        if not conn.execute(
            "SELECT 1 FROM content WHERE namespace = ? AND digest = ?", (self.namespace, digest)
        ).fetchone():
            if not self._shareable(conn, digest):
                return False
            try:
                size = self._db.backend.info(digest).size
            except NotFound:
                return False
            if total and total != size:
                return False  # the caller's size is wrong or the digest is; its commit will tell
            now = now_ns()
            conn.execute(
                "INSERT INTO content (namespace, digest, size, created_ns, updated_ns) VALUES (?, ?, ?, ?, ?)",
                (self.namespace, digest, size, now, now),
            )
        add_to_lease(conn, self.namespace, self.lease, "content", digest)
        return True

    def _shareable(self, conn: sqlite3.Connection, digest: str) -> bool:
        """Whether the policy lets a blob this namespace has no record of be shared into it."""
        if self._db.content_sharing_policy == "shared":
            return True
        row = conn.execute(
            "SELECT 1 FROM content JOIN namespaces ON namespaces.name = content.namespace "
            "WHERE content.digest = ? AND content.namespace != ? AND json_extract(namespaces.labels, ?) = 'true' "
            "LIMIT 1",
            (digest, self.namespace, f'$."{SHAREABLE_LABEL}"'),
        ).fetchone()
        return row is not None

    def _backend_ref(self, conn: sqlite3.Connection, ref: str) -> str:
        return self._ingest(conn, ref)[0]

    def _ingest(self, conn: sqlite3.Connection, ref: str) -> tuple[str, str]:
        """Backend ref and expected digest of this namespace's ingest ``ref``."""
        row = conn.execute(
            "SELECT backend_ref, expected FROM ingests WHERE namespace = ? AND ref = ?", (self.namespace, ref)
        ).fetchone()
        if row is None:
            raise NotFound(f"ingest {quote(ref)}: not found")
        return str(row[0]), str(row[1])

    def status(self, ref: str) -> Status:
        with self._db.read() as conn:
            backend_ref, expected = self._ingest(conn, ref)
        return _rename(self._db.backend.status(backend_ref), ref, expected)

    def list_statuses(self, filters_: Sequence[str] = ()) -> list[Status]:
        flt = filters.parse(filters_)
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT ref, backend_ref, expected FROM ingests WHERE namespace = ? ORDER BY ref", (self.namespace,)
            ).fetchall()
        out = []
        for ref, backend_ref, expected in rows:
            try:
                st = _rename(self._db.backend.status(backend_ref), ref, expected)
            except NotFound:
                continue
            if flt.match(_status_adaptor(st)):
                out.append(st)
        return out

    def abort(self, ref: str) -> None:
        with self._db.write() as conn:
            backend_ref = self._backend_ref(conn, ref)
            try:
                self._db.backend.abort(backend_ref)
            except NotFound:
                pass
            conn.execute("DELETE FROM ingests WHERE namespace = ? AND ref = ?", (self.namespace, ref))
            conn.execute(
                "DELETE FROM lease_resources WHERE namespace = ? AND type = 'ingests' AND id = ?",
                (self.namespace, ref),
            )

    def _commit(self, ref: str, w: Writer, size: int, expected: str, labels: Mapping[str, str]) -> str:
        stored_labels = dump_labels(labels)
        already = False
        with self._db.write() as conn:
            try:
                digest = w.commit(size=size, expected=expected)
            except AlreadyExists:
                # The backend checked size and digest of these bytes before finding its copy.
                digest = expected or w.digest()
            conn.execute("DELETE FROM ingests WHERE namespace = ? AND ref = ?", (self.namespace, ref))
            conn.execute(
                "DELETE FROM lease_resources WHERE namespace = ? AND type = 'ingests' AND id = ?",
                (self.namespace, ref),
            )
            if conn.execute(
                "SELECT 1 FROM content WHERE namespace = ? AND digest = ?", (self.namespace, digest)
            ).fetchone():
                already = True
            else:
                now = now_ns()
                conn.execute(
                    "INSERT INTO content (namespace, digest, size, created_ns, updated_ns, labels) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (self.namespace, digest, self._db.backend.info(digest).size, now, now, stored_labels),
                )
            add_to_lease(conn, self.namespace, self.lease, "content", digest)
        self._db.bump("content", self.namespace)
        if already:
            raise AlreadyExists(f"content {digest}: already exists")
        return digest


def _rename(st: Status, ref: str, expected: str = "") -> Status:
    """The backend's status under the namespace's ref (and expected digest, if the backend was not told it)."""
    return Status(ref, st.offset, st.total, st.expected or expected, st.started_at, st.updated_at)


class NamespacedWriter:
    """A backend writer whose commit is recorded in the namespace."""

    def __init__(self, store: ContentStore, ref: str, backend: Writer, expected: str = "") -> None:
        self._store = store
        self._ref = ref
        self._w = backend
        self._expected = expected
        """The digest the writer was opened for; the backend may not know it (isolated policy)."""

    def write(self, data: bytes) -> int:
        return self._w.write(data)

    def digest(self) -> str:
        return self._w.digest()

    def status(self) -> Status:
        return _rename(self._w.status(), self._ref, self._expected)

    def truncate(self, size: int) -> None:
        self._w.truncate(size)

    def commit(self, size: int = 0, expected: str = "", labels: Mapping[str, str] | None = None) -> str:
        return self._store._commit(self._ref, self._w, size, expected or self._expected, labels or {})

    def reader(self) -> ReaderAt:
        """The backend's data as it is written, when the backend can show it (see ``Following``)."""
        if not isinstance(self._w, Following):
            raise NotImplementedYet("this content store cannot read an ingest while it is written")
        return self._w.reader()

    def close(self) -> None:
        self._w.close()
