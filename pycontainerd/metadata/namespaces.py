"""Namespace records and the rule that only empty namespaces are deleted."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..api.events import namespace_pb2 as ev
from ..errors import AlreadyExists, FailedPrecondition, NotFound
from ..namespaces import validate_namespace
from ._util import dump_labels, load_labels

if TYPE_CHECKING:
    from ._db import DB

# What a namespace can hold, and the word used when refusing to delete it.
_HOLDINGS = (
    ("images", "images"),
    ("content", "blobs"),
    ("leases", "leases"),
    ("ingests", "ingests"),
    ("snapshots", "snapshots"),
    ("containers", "containers"),
)


class NamespaceStore:
    def __init__(self, db: DB) -> None:
        self._db = db

    def create(self, name: str, labels: Mapping[str, str]) -> None:
        validate_namespace(name)
        with self._db.write() as conn:
            if conn.execute("SELECT 1 FROM namespaces WHERE name = ?", (name,)).fetchone():
                raise AlreadyExists(f"namespace {name}: already exists")
            conn.execute("INSERT INTO namespaces (name, labels) VALUES (?, ?)", (name, dump_labels(labels)))
        self._db.publish(name, "/namespaces/create", ev.NamespaceCreate(name=name, labels=labels))

    def labels(self, name: str) -> dict[str, str]:
        with self._db.read() as conn:
            row = conn.execute("SELECT labels FROM namespaces WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"namespace {name}: not found")
        return load_labels(row[0])

    def set_label(self, name: str, key: str, value: str) -> None:
        with self._db.write() as conn:
            row = conn.execute("SELECT labels FROM namespaces WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"namespace {name}: not found")
            labels = load_labels(row[0])
            labels[key] = value
            conn.execute("UPDATE namespaces SET labels = ? WHERE name = ?", (dump_labels(labels), name))
        self._db.publish(name, "/namespaces/update", ev.NamespaceUpdate(name=name, labels=labels))

    def list(self) -> builtins.list[str]:
        with self._db.read() as conn:
            return [r[0] for r in conn.execute("SELECT name FROM namespaces ORDER BY name")]

    def delete(self, name: str) -> None:
        with self._db.write() as conn:
            if not conn.execute("SELECT 1 FROM namespaces WHERE name = ?", (name,)).fetchone():
                raise NotFound(f"namespace {name}: not found")
            held = [
                word
                for table, word in _HOLDINGS
                if conn.execute(f"SELECT 1 FROM {table} WHERE namespace = ? LIMIT 1", (name,)).fetchone()
            ]
            if held:
                raise FailedPrecondition(f"namespace {name} must be empty, but it still has {', '.join(held)}")
            conn.execute("DELETE FROM namespaces WHERE name = ?", (name,))
        self._db.publish(name, "/namespaces/delete", ev.NamespaceDelete(name=name))
