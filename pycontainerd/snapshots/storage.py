"""The record keeping every local snapshotter shares: keys, kinds, parents, labels, backing ids.

A snapshotter keeps its files under directories named by a small integer
*id*, not by key: keys are arbitrary client strings, ids are safe path
components and short enough that a deep chain of overlay lower directories
still fits in one mount call.  Committing keeps the id, so an active
snapshot's directory becomes the committed one's without moving.

The records live in ``<root>/metadata.db``, SQLite, one table::

    snapshots(id, key, kind, parent_id, labels, created_ns, updated_ns, size, inodes)

The snapshotter does its filesystem work inside :meth:`MetaStore.write`, so
a failure there rolls the records back too.
"""

from __future__ import annotations

import contextlib
import pathlib
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from .. import filters
from .._sqlite import transaction
from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, quote
from ..metadata._util import apply_label_paths, dump_labels, load_labels, now_ns, to_datetime
from ._types import Info, Kind, Usage, adaptor

__all__ = ["MetaStore", "Snapshot", "Tx", "validate_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind INTEGER NOT NULL,
    parent_id INTEGER REFERENCES snapshots (id),
    labels TEXT NOT NULL DEFAULT '{}',
    created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    inodes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots (parent_id);
"""


_UNMEASURED = -1  # size and inodes of a committed snapshot whose usage is still being measured


@dataclass(frozen=True)
class Snapshot:
    """An active snapshot or view as its backend sees it."""

    id: str
    kind: Kind
    parent_ids: tuple[str, ...]
    """Ids of the parent chain, nearest first."""


def validate_key(key: str, what: str = "key") -> str:
    if not key:
        raise InvalidArgument(f"snapshot {what} must not be empty")
    if "\x00" in key or len(key.encode()) > 4096:
        raise InvalidArgument(f"snapshot {what} must be at most 4096 bytes, without NUL")
    return key


class Tx:
    """Reads and changes within one transaction of a :class:`MetaStore`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def _row(self, key: str) -> tuple[int, int, int | None, str, int, int, int, int]:
        row = self._c.execute(
            "SELECT id, kind, parent_id, labels, created_ns, updated_ns, size, inodes FROM snapshots WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            raise NotFound(f"snapshot {quote(key)}: not found")
        return row  # type: ignore[no-any-return]

    def _chain(self, parent_id: int | None) -> tuple[str, ...]:
        out: list[str] = []
        while parent_id is not None:
            out.append(str(parent_id))
            row = self._c.execute("SELECT parent_id FROM snapshots WHERE id = ?", (parent_id,)).fetchone()
            if row is None:
                raise NotFound(f"snapshot id {parent_id}: parent missing from the records")
            parent_id = row[0]
        return tuple(out)

    def _key_of(self, id_: int | None) -> str:
        if id_ is None:
            return ""
        row = self._c.execute("SELECT key FROM snapshots WHERE id = ?", (id_,)).fetchone()
        return str(row[0]) if row else ""

    def create(self, kind: Kind, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> Snapshot:
        """A new active snapshot or view; the parent must be committed."""
        if kind not in (Kind.ACTIVE, Kind.VIEW):
            raise InvalidArgument(f"snapshot kind {kind.label} cannot be created, only Active or View")
        validate_key(key)
        stored = dump_labels(labels or {})
        parent_id: int | None = None
        if parent:
            row = self._c.execute("SELECT id, kind FROM snapshots WHERE key = ?", (parent,)).fetchone()
            if row is None:
                raise NotFound(f"parent snapshot {quote(parent)}: not found")
            if row[1] != Kind.COMMITTED:
                raise InvalidArgument(f"parent snapshot {quote(parent)} is not committed")
            parent_id = row[0]
        if self._c.execute("SELECT 1 FROM snapshots WHERE key = ?", (key,)).fetchone():
            raise AlreadyExists(f"snapshot {quote(key)}: already exists")
        now = now_ns()
        cur = self._c.execute(
            "INSERT INTO snapshots (key, kind, parent_id, labels, created_ns, updated_ns) VALUES (?, ?, ?, ?, ?, ?)",
            (key, int(kind), parent_id, stored, now, now),
        )
        return Snapshot(str(cur.lastrowid), kind, self._chain(parent_id))

    def get(self, key: str) -> Snapshot:
        """An active snapshot or view; FailedPrecondition for a committed one."""
        id_, kind, parent_id, *_ = self._row(key)
        if kind not in (Kind.ACTIVE, Kind.VIEW):
            raise FailedPrecondition(f"snapshot {quote(key)} is not active or a view")
        return Snapshot(str(id_), Kind(kind), self._chain(parent_id))

    def commit(self, key: str, name: str, usage: Usage | None, labels: Mapping[str, str] | None = None) -> str:
        """Turn active ``key`` into committed ``name``, keeping its id; returns the id.

        ``usage`` None records it as not measured yet (see :meth:`set_usage`).
        """
        validate_key(name, "name")
        stored = dump_labels(labels or {})
        if self._c.execute("SELECT 1 FROM snapshots WHERE key = ?", (name,)).fetchone():
            raise AlreadyExists(f"snapshot {quote(name)}: already exists")
        id_, kind, *_ = self._row(key)
        if kind != Kind.ACTIVE:
            raise FailedPrecondition(f"snapshot {quote(key)} is not active")
        now = now_ns()
        self._c.execute(
            "UPDATE snapshots SET key = ?, kind = ?, labels = ?, created_ns = ?, updated_ns = ?, size = ?, inodes = ? "
            "WHERE id = ?",
            (
                name,
                int(Kind.COMMITTED),
                stored,
                now,
                now,
                _UNMEASURED if usage is None else usage.size,
                _UNMEASURED if usage is None else usage.inodes,
                id_,
            ),
        )
        return str(id_)

    def set_usage(self, id_: str, usage: Usage) -> None:
        """Record the measured usage of committed snapshot ``id_``, if it is still there and unmeasured."""
        self._c.execute(
            "UPDATE snapshots SET size = ?, inodes = ? WHERE id = ? AND kind = ? AND size < 0",
            (usage.size, usage.inodes, int(id_), int(Kind.COMMITTED)),
        )

    def remove(self, key: str) -> tuple[str, Kind]:
        """Forget ``key``; FailedPrecondition while it has children.  Returns its id and kind."""
        id_, kind, *_ = self._row(key)
        if self._c.execute("SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1", (id_,)).fetchone():
            raise FailedPrecondition(f"snapshot {quote(key)} has children: cannot remove")
        self._c.execute("DELETE FROM snapshots WHERE id = ?", (id_,))
        return str(id_), Kind(kind)

    def info(self, key: str) -> tuple[str, Info, Usage | None]:
        """Id, info and stored usage of any snapshot (None: a committed one not measured yet)."""
        id_, kind, parent_id, labels, created, updated, size, inodes = self._row(key)
        info = Info(
            key, Kind(kind), self._key_of(parent_id), load_labels(labels), to_datetime(created), to_datetime(updated)
        )
        return str(id_), info, None if size < 0 else Usage(size, inodes)

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        id_, _, _, labels, *_ = self._row(info.name)
        paths = list(fieldpaths)
        if paths:
            new = apply_label_paths(load_labels(labels), info.labels, paths)
            if new is None:
                bad = next(p for p in paths if p != "labels" and not p.startswith("labels."))
                raise InvalidArgument(f"cannot update {quote(bad)} field on snapshot {quote(info.name)}")
        else:
            new = dict(info.labels)
        self._c.execute(
            "UPDATE snapshots SET labels = ?, updated_ns = ? WHERE id = ?", (dump_labels(new), now_ns(), id_)
        )
        return self.info(info.name)[1]

    def walk(self, filter_strings: Sequence[str] = ()) -> list[Info]:
        flt = filters.parse(filter_strings)
        rows = self._c.execute(
            "SELECT s.key, s.kind, p.key, s.labels, s.created_ns, s.updated_ns "
            "FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id ORDER BY s.key"
        ).fetchall()
        out = []
        for key, kind, parent, labels, created, updated in rows:
            info = Info(key, Kind(kind), parent or "", load_labels(labels), to_datetime(created), to_datetime(updated))
            if flt.match(adaptor(info)):
                out.append(info)
        return out

    def ids(self) -> set[str]:
        return {str(r[0]) for r in self._c.execute("SELECT id FROM snapshots")}

    def totals(self) -> dict[Kind, tuple[int, int, int]]:
        """Per kind: how many snapshots, and the bytes and inodes of those whose usage is recorded."""
        rows = self._c.execute(
            "SELECT kind, COUNT(*), SUM(MAX(size, 0)), SUM(MAX(inodes, 0)) FROM snapshots GROUP BY kind"
        ).fetchall()
        return {Kind(kind): (count, size or 0, inodes or 0) for kind, count, size, inodes in rows}

    def parent_ids(self, key: str) -> tuple[str, ...]:
        """The ids of the chain under any snapshot, nearest first."""
        return self._chain(self._row(key)[2])


class MetaStore:
    """The records of one snapshotter; one writer at a time."""

    def __init__(self, path: pathlib.Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def write(self) -> Iterator[Tx]:
        """One transaction, rolled back on any exception (including the caller's filesystem work)."""
        with self._lock, transaction(self._conn):
            yield Tx(self._conn)

    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        with self._lock:
            yield Tx(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
