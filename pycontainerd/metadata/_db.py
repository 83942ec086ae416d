"""The metadata database: one SQLite file, one writer at a time.

Every store of this package works through :class:`DB`, which owns the
connection and the lock.  The lock is also what makes a content commit and
a garbage collection exclude each other: a blob is renamed into the backend
and recorded in SQLite under the lock, so the collector never sees a blob
that is committed but not yet recorded.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from google.protobuf.message import Message

from .. import content as content_api
from .._sqlite import transaction
from ..errors import InvalidArgument, quote
from ..events import Publisher
from ..namespaces import validate_namespace
from ..snapshots import Snapshotter
from . import _schema

log = logging.getLogger("pycontainerd.metadata")


@dataclass(frozen=True)
class GCConfig:
    """When the background collector runs (seconds)."""

    schedule_delay: float = 0.0
    startup_delay: float = 0.1
    interval: float = 3600.0
    pause_threshold: float = 0.02
    """Collections triggered by deletions are spaced so they take at most this share of the time."""


class DB:
    """Namespaced records over one physical content store."""

    def __init__(
        self,
        path: pathlib.Path,
        backend: content_api.Store,
        gc_config: GCConfig | None = None,
        snapshotters: Mapping[str, Snapshotter] | None = None,
    ) -> None:
        from .gc import Scheduler

        self.snapshotters: dict[str, Snapshotter] = dict(snapshotters or {})
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.backend = backend
        self.lock = threading.RLock()
        self._conn = self._connect()
        self._conn.execute("PRAGMA journal_mode = WAL")
        _schema.migrate(self._conn)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._generations: dict[tuple[str, str], int] = {}
        self.scheduler = Scheduler(self, gc_config or GCConfig())
        self.publisher: Publisher | None = None
        """Where the stores report their changes (the daemon's event exchange); None sends nothing."""
        self.content_sharing_policy = "shared"
        """How blobs cross namespaces: "shared" or "isolated" (see :mod:`.content`)."""

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reading, without the writer's lock.

        WAL lets readers run beside the writer and the collector, so each
        thread reads on a connection of its own and sees committed state.
        Inside a write on the same thread, the writer's connection is used so
        the transaction sees its own changes.
        """
        if getattr(self._local, "writing", False):
            yield self._conn
            return
        conn = getattr(self._local, "reader", None)
        if conn is None:
            conn = self._connect()
            self._local.reader = conn
            with self._readers_lock:
                self._readers.append(conn)
        yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; rolled back on any exception."""
        with self.lock:
            outer = getattr(self._local, "writing", False)
            self._local.writing = True
            try:
                with transaction(self._conn, savepoint="w" if outer else ""):
                    yield self._conn
            finally:
                self._local.writing = outer

    def generation(self, kind: str, namespace: str) -> int:
        """A counter that changes whenever records of ``kind`` in ``namespace`` change.

        Lets readers keep derived results (a converted image list) until the
        records under them change.  Stores bump it after their transaction
        commits, so a result cached under a generation is never older than it.
        """
        return self._generations.get((kind, namespace), 0)

    def bump(self, kind: str, namespace: str) -> None:
        with self.lock:
            key = (kind, namespace)
            self._generations[key] = self._generations.get(key, 0) + 1

    def publish(self, namespace: str, topic: str, event: Message) -> None:
        """Report a committed change; a failure to publish is logged, never undoes the change."""
        if self.publisher is None:
            return
        try:
            self.publisher.publish(namespace, topic, event)
        except Exception:
            log.exception("publishing %s in %s", topic, namespace)

    def namespaces(self) -> NamespaceStore:
        return NamespaceStore(self)

    def content(self, namespace: str, lease: str | None = None) -> ContentStore:
        return ContentStore(self, validate_namespace(namespace), lease or None)

    def images(self, namespace: str) -> ImageStore:
        return ImageStore(self, validate_namespace(namespace))

    def snapshotter(self, name: str, namespace: str, lease: str | None = None) -> SnapshotStore:
        """Namespace ``namespace``'s view of snapshotter ``name``; InvalidArgument when none is loaded by that name."""
        backend = self.snapshotters.get(name)
        if backend is None:
            raise InvalidArgument(f"snapshotter not loaded: {quote(name)}")
        return SnapshotStore(self, name, backend, validate_namespace(namespace), lease or None)

    def containers(self, namespace: str) -> ContainerStore:
        return ContainerStore(self, validate_namespace(namespace))

    def leases(self, namespace: str) -> LeaseManager:
        return LeaseManager(self, validate_namespace(namespace))

    def collect_garbage(self) -> GCStats:
        """A full mark-and-sweep now, waiting for it."""
        from .gc import collect

        return collect(self)

    def close(self) -> None:
        self.scheduler.stop()
        with self.lock, self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            self._conn.close()


def ensure_namespace(conn: sqlite3.Connection, namespace: str) -> None:
    """Namespaces come into being with their first object, as in containerd."""
    conn.execute("INSERT OR IGNORE INTO namespaces (name) VALUES (?)", (namespace,))


from .containers import ContainerStore  # noqa: E402
from .content import ContentStore  # noqa: E402
from .gc import GCStats  # noqa: E402
from .images import ImageStore  # noqa: E402
from .leases import LeaseManager  # noqa: E402
from .namespaces import NamespaceStore  # noqa: E402
from .snapshots import SnapshotStore  # noqa: E402
