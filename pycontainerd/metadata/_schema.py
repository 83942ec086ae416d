"""The on-disk schema of the metadata store, and its migrations.

One SQLite file (WAL) holds every namespaced record::

    namespaces(name, labels)
    content(namespace, digest, size, created_ns, updated_ns, labels)
        -- a namespace's view of a blob in the shared backend store
    ingests(namespace, ref, backend_ref, expected, total, created_ns, leased)
        -- an open ingest; backend_ref is the backend store's ref; one opened
        -- under a lease (leased = 1) lives only as long as a lease holds it
    images(namespace, name, media_type, digest, size, annotations, labels, created_ns, updated_ns)
    leases(namespace, id, created_ns, labels)
    lease_resources(namespace, lease, type, id)
    snapshots(id, namespace, snapshotter, key, kind, parent, labels, created_ns, updated_ns)
        -- a namespace's snapshot; the backend knows it as '<namespace>/<id>/<key>'
    containers(namespace, id, labels, image, runtime, runtime_options_type, runtime_options,
               spec_type, spec, snapshotter, snapshot_key, extensions, created_ns, updated_ns)
        -- options and spec are a protobuf Any kept as (type URL, bytes); extensions
        -- are a JSON object of name -> [type URL, base64 bytes]

Labels and annotations are JSON objects.  Times are integer nanoseconds
since the epoch, UTC.  ``MIGRATIONS[i]`` takes the schema from version i to
i + 1; the version lives in ``PRAGMA user_version``.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE namespaces (
        name TEXT PRIMARY KEY,
        labels TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE content (
        namespace TEXT NOT NULL,
        digest TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_ns INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (namespace, digest)
    );
    CREATE INDEX content_digest ON content (digest);
    CREATE TABLE ingests (
        namespace TEXT NOT NULL,
        ref TEXT NOT NULL,
        backend_ref TEXT NOT NULL UNIQUE,
        expected TEXT NOT NULL DEFAULT '',
        total INTEGER NOT NULL DEFAULT 0,
        created_ns INTEGER NOT NULL,
        leased INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (namespace, ref)
    );
    CREATE TABLE images (
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        media_type TEXT NOT NULL,
        digest TEXT NOT NULL,
        size INTEGER NOT NULL,
        annotations TEXT NOT NULL DEFAULT '{}',
        labels TEXT NOT NULL DEFAULT '{}',
        created_ns INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL,
        PRIMARY KEY (namespace, name)
    );
    CREATE TABLE leases (
        namespace TEXT NOT NULL,
        id TEXT NOT NULL,
        created_ns INTEGER NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (namespace, id)
    );
    CREATE TABLE lease_resources (
        namespace TEXT NOT NULL,
        lease TEXT NOT NULL,
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        PRIMARY KEY (namespace, lease, type, id)
    );
    """,
    """
    CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        namespace TEXT NOT NULL,
        snapshotter TEXT NOT NULL,
        key TEXT NOT NULL,
        kind INTEGER NOT NULL,
        parent TEXT NOT NULL DEFAULT '',
        labels TEXT NOT NULL DEFAULT '{}',
        created_ns INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL,
        UNIQUE (namespace, snapshotter, key)
    );
    CREATE INDEX snapshots_parent ON snapshots (namespace, snapshotter, parent);
    """,
    """
    CREATE TABLE containers (
        namespace TEXT NOT NULL,
        id TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        image TEXT NOT NULL DEFAULT '',
        runtime TEXT NOT NULL,
        runtime_options_type TEXT,
        runtime_options BLOB,
        spec_type TEXT NOT NULL,
        spec BLOB NOT NULL,
        snapshotter TEXT NOT NULL DEFAULT '',
        snapshot_key TEXT NOT NULL DEFAULT '',
        extensions TEXT NOT NULL DEFAULT '{}',
        created_ns INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL,
        PRIMARY KEY (namespace, id)
    );
    """,
)

VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring ``conn`` to the current schema, one transaction per step; returns the version."""
    (current,) = conn.execute("PRAGMA user_version").fetchone()
    if current > VERSION:
        raise RuntimeError(f"metadata schema version {current} is newer than this pycontainerd ({VERSION})")
    for version in range(current, VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in MIGRATIONS[version].split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return VERSION
