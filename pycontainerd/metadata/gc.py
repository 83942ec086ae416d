"""Garbage collection: mark from the roots, sweep the rest.

Roots are images (their targets), content and snapshots labelled
``containerd.io/gc.root``, containers (their snapshot, and what their labels
reference), the resources of unexpired leases, and ingests opened without a
lease during the last day (:data:`UNLEASED_INGEST_TTL`, as containerd's).  Content and snapshots reference content through
``containerd.io/gc.ref.content[.<suffix>]`` labels and snapshots through
``containerd.io/gc.ref.snapshot.<snapshotter>``; a snapshot also keeps its
parent.  A lease labelled ``containerd.io/gc.flat`` holds only what it lists.
Backend snapshots that no record names any more are removed children first,
then each snapshotter cleans up.

:func:`mark` is pure; :func:`collect` reads the graph from the database and
sweeps, holding the database lock so no commit interleaves.
"""

from __future__ import annotations

import functools
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import ContainerdError, NotFound
from ..leases import LABEL_EXPIRE, LABEL_FLAT
from ..metrics import REGISTRY
from ..snapshots import Info
from ._util import load_labels

if TYPE_CHECKING:
    from ._db import DB, GCConfig

log = logging.getLogger(__name__)

UNLEASED_INGEST_TTL = 24 * 3600.0
"""Seconds an ingest opened without a lease stays a root; then the collector aborts it."""
LABEL_ROOT = "containerd.io/gc.root"
LABEL_REF_CONTENT = "containerd.io/gc.ref.content"
LABEL_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot."

Node = tuple[str, str, str]
"""(type, namespace, id); type is ``content``, ``ingests`` or ``snapshots/<snapshotter>``."""


_RUNS = REGISTRY.counter("pycontainerd_gc_runs_total", "Garbage collections completed.")
_FAILURES = REGISTRY.counter("pycontainerd_gc_failures_total", "Garbage collections that failed.")
_DURATION = REGISTRY.histogram(
    "pycontainerd_gc_duration_seconds",
    "How long each garbage collection took, the database locked most of it.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0),
)
_REMOVED = REGISTRY.counter(
    "pycontainerd_gc_removed_total",
    "What garbage collections removed: content records, blobs, ingests, leases, snapshots.",
    ("kind",),
)


@dataclass(frozen=True)
class GCStats:
    content_removed: int = 0
    blobs_removed: int = 0
    ingests_removed: int = 0
    leases_removed: int = 0
    snapshots_removed: int = 0
    duration: float = 0.0


def references(namespace: str, labels: Mapping[str, str]) -> Iterable[Node]:
    """The objects a content blob's labels keep alive."""
    for key, value in labels.items():
        if key == LABEL_REF_CONTENT or key.startswith(LABEL_REF_CONTENT + "."):
            yield ("content", namespace, value)
        elif key.startswith(LABEL_REF_SNAPSHOT):
            yield ("snapshots/" + key[len(LABEL_REF_SNAPSHOT) :].split("/", 1)[0], namespace, value)


def mark(roots: Iterable[Node], refs: Callable[[Node], Iterable[Node]]) -> set[Node]:
    """Every node reachable from ``roots``."""
    seen: set[Node] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(n for n in refs(node) if n not in seen)
    return seen


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_expiry(value: str) -> datetime | None:
    """An RFC 3339 time, or None when it does not parse (then the lease never expires)."""
    try:
        when = datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def collect(db: DB) -> GCStats:
    """Mark and sweep: the records first, in one transaction, then the backends, all under the database lock.

    The records' deletions commit before anything leaves a backend, so a
    crash in between leaves backend objects no record names (the next
    collection removes them), never a record naming what is gone.  Holding
    the lock throughout keeps commits out until the sweep is done.
    """
    start = time.monotonic()
    now = datetime.now().astimezone()
    with db.lock:
        stale_ingests = _ingests_without_data(db)
        with db.write() as conn:
            conn.executemany("DELETE FROM ingests WHERE namespace = ? AND ref = ?", stale_ingests)
            conn.executemany(
                "DELETE FROM lease_resources WHERE namespace = ? AND type = 'ingests' AND id = ?", stale_ingests
            )
            dead_content, _, expired, snap_rows, dead_snaps = _sweep_records(conn, now)
            kept_blobs = {d for (d,) in conn.execute("SELECT DISTINCT digest FROM content")}
            kept_ingests = {r for (r,) in conn.execute("SELECT backend_ref FROM ingests")}
        # Readers' caches are told at once: what was removed must not be answered from them while disk is reclaimed.
        for ns in {ns for ns, _ in dead_content}:
            db.bump("content", ns)
        gone = set(dead_snaps)
        for node in snap_rows:
            if snap_rows[node][0] in gone:
                db.bump("snapshots", node[1])

        # The backends are swept under the same lock: nothing can commit meanwhile.
        blobs_removed = 0
        for info in list(db.backend.walk()):
            if info.digest not in kept_blobs:
                try:
                    db.backend.delete(info.digest)
                    blobs_removed += 1
                except NotFound:
                    pass
        ingests_removed = 0
        for st in db.backend.list_statuses():
            if st.ref not in kept_ingests:
                try:
                    db.backend.abort(st.ref)
                    ingests_removed += 1
                except ContainerdError as e:
                    log.warning("gc: could not remove ingest %s: %s", st.ref, e)
        with db.read() as conn:
            snapshots_removed, to_clean = _sweep_snapshots(db, conn)
    # Reclaiming disk can take long (a removed image's whole tree); the lock is not held meanwhile.
    for name in to_clean:
        try:
            db.snapshotters[name].cleanup()
        except ContainerdError as e:
            log.warning("gc: snapshotter %s could not clean up: %s", name, e)
    stats = GCStats(
        content_removed=len(dead_content),
        blobs_removed=blobs_removed,
        ingests_removed=ingests_removed + len(stale_ingests),
        leases_removed=len(expired),
        snapshots_removed=snapshots_removed,
        duration=time.monotonic() - start,
    )
    _RUNS.inc()
    _DURATION.observe(stats.duration)
    for kind in ("content", "blobs", "ingests", "leases", "snapshots"):
        _REMOVED.labels(kind).inc(getattr(stats, f"{kind}_removed"))
    if any(
        (stats.content_removed, stats.blobs_removed, stats.ingests_removed, stats.leases_removed, snapshots_removed)
    ):
        log.info("gc: %s", stats)
    return stats


def _ingests_without_data(db: DB) -> list[tuple[str, str]]:
    """Ingest records whose backend ingest is gone: committed or removed by a process killed before its record went.

    Called under the database lock, so no ingest is being opened meanwhile
    (a writer creates its record and its backend ingest in one transaction).
    """
    present = {st.ref for st in db.backend.list_statuses()}
    with db.read() as conn:
        rows = conn.execute("SELECT namespace, ref, backend_ref FROM ingests").fetchall()
    return [(ns, ref) for ns, ref, backend_ref in rows if backend_ref not in present]


def _sweep_records(
    conn: sqlite3.Connection, now: datetime
) -> tuple[
    list[tuple[str, str]],
    list[tuple[str, str, str]],
    list[tuple[str, str]],
    dict[Node, tuple[int, str, dict[str, str]]],
    list[int],
]:
    """Mark from the roots and delete every record not reached; returns what was deleted."""
    labels_of: dict[tuple[str, str], dict[str, str]] = {}
    roots: list[Node] = []
    flat: set[Node] = set()
    for ns, digest, labels in conn.execute("SELECT namespace, digest, labels FROM content"):
        lab = load_labels(labels)
        labels_of[(ns, digest)] = lab
        if LABEL_ROOT in lab:
            roots.append(("content", ns, digest))
    roots += [("content", ns, d) for ns, d in conn.execute("SELECT namespace, digest FROM images")]
    for ns, snapshotter, key, labels in conn.execute(
        "SELECT namespace, snapshotter, snapshot_key, labels FROM containers"
    ):
        if snapshotter and key:
            roots.append(("snapshots/" + snapshotter, ns, key))
        roots.extend(references(ns, load_labels(labels)))

    expired: list[tuple[str, str]] = []
    for ns, lease, labels in conn.execute("SELECT namespace, id, labels FROM leases"):
        lab = load_labels(labels)
        when = parse_expiry(lab[LABEL_EXPIRE]) if LABEL_EXPIRE in lab else None
        if when is not None and when <= now:
            expired.append((ns, lease))
            continue
        held = [
            (t, ns, i)
            for t, i in conn.execute(
                "SELECT type, id FROM lease_resources WHERE namespace = ? AND lease = ?", (ns, lease)
            )
        ]
        (flat.update if LABEL_FLAT in lab else roots.extend)(held)
    # An ingest opened without a lease is kept for UNLEASED_INGEST_TTL from its opening, as containerd's.
    fresh_since = int(now.timestamp() * 1e9) - int(UNLEASED_INGEST_TTL * 1e9)
    roots += [
        ("ingests", ns, ref)
        for ns, ref in conn.execute(
            "SELECT namespace, ref FROM ingests WHERE leased = 0 AND created_ns > ?", (fresh_since,)
        )
    ]

    snap_rows: dict[Node, tuple[int, str, dict[str, str]]] = {}
    for sid, ns, snapshotter, key, parent, labels in conn.execute(
        "SELECT id, namespace, snapshotter, key, parent, labels FROM snapshots"
    ):
        node = ("snapshots/" + snapshotter, ns, key)
        lab = load_labels(labels)
        snap_rows[node] = (sid, parent, lab)
        if LABEL_ROOT in lab:
            roots.append(node)

    def refs(node: Node) -> Iterable[Node]:
        if node[0] == "content":
            return references(node[1], labels_of.get((node[1], node[2]), {}))
        row = snap_rows.get(node)
        if row is None:
            return ()
        out = list(references(node[1], row[2]))
        if row[1]:
            out.append((node[0], node[1], row[1]))
        return out

    live = mark(roots, refs) | flat

    for ns, lease in expired:
        conn.execute("DELETE FROM leases WHERE namespace = ? AND id = ?", (ns, lease))
        conn.execute("DELETE FROM lease_resources WHERE namespace = ? AND lease = ?", (ns, lease))
    dead_content = [(ns, d) for ns, d in labels_of if ("content", ns, d) not in live]
    conn.executemany("DELETE FROM content WHERE namespace = ? AND digest = ?", dead_content)
    dead_ingests = [
        (ns, ref, backend_ref)
        for ns, ref, backend_ref in conn.execute("SELECT namespace, ref, backend_ref FROM ingests")
        if ("ingests", ns, ref) not in live
    ]
    conn.executemany("DELETE FROM ingests WHERE namespace = ? AND ref = ?", [(n, r) for n, r, _ in dead_ingests])
    dead_snaps = [row[0] for node, row in snap_rows.items() if node not in live]
    conn.executemany("DELETE FROM snapshots WHERE id = ?", [(i,) for i in dead_snaps])
    return dead_content, dead_ingests, expired, snap_rows, dead_snaps


def _depth(infos: Mapping[str, Info], key: str) -> int:
    d = 0
    while key in infos and infos[key].parent:
        key = infos[key].parent
        d += 1
    return d


def _sweep_snapshots(db: DB, conn: sqlite3.Connection) -> tuple[int, list[str]]:
    """Remove backend snapshots that no record names, deepest first; returns how many, and which backends to clean."""
    from .snapshots import backend_key

    removed = 0
    to_clean: list[str] = []
    for name, backend in db.snapshotters.items():
        wanted = {
            backend_key(ns, sid, key)
            for sid, ns, key in conn.execute("SELECT id, namespace, key FROM snapshots WHERE snapshotter = ?", (name,))
        }
        infos = {i.name: i for i in backend.walk()}
        doomed = [k for k in infos if k not in wanted]
        if not doomed:
            continue

        for key in sorted(doomed, key=functools.partial(_depth, infos), reverse=True):
            try:
                backend.remove(key)
                removed += 1
            except ContainerdError as e:
                log.warning("gc: could not remove snapshot %s from %s: %s", key, name, e)
        to_clean.append(name)
    return removed, to_clean


class Scheduler:
    """Runs :func:`collect` in a thread: soon after deletions, and every ``interval`` seconds."""

    def __init__(self, db: DB, config: GCConfig) -> None:
        self._db = db
        self.config = config
        self._cond = threading.Condition()
        self._dirty = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.last: GCStats | None = None

    def configure(self, config: GCConfig) -> None:
        """New timings; they apply from the next wait on."""
        with self._cond:
            self.config = config
            self._cond.notify_all()

    def start(self) -> None:
        """Recover from a crash (see :mod:`._recover`), then collect in the background."""
        if self._thread is None:
            from ._recover import recover

            recover(self._db)
            self._thread = threading.Thread(target=self._loop, name="gc-scheduler", daemon=True)
            self._thread.start()

    def schedule(self) -> None:
        with self._cond:
            self._dirty = True
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

    def _wait(self, timeout: float, until_dirty: bool) -> bool:
        """Wait; False when stopping."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._stopping and not (until_dirty and self._dirty):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return not self._stopping

    def _loop(self) -> None:
        if not self._wait(self.config.startup_delay, until_dirty=False):
            return
        while True:
            with self._cond:
                self._dirty = False
            started = time.monotonic()
            try:
                self.last = collect(self._db)
                self.runs += 1
            except ContainerdError as e:  # a full disk, say: said in one line, and tried again on the next change
                _FAILURES.inc()
                log.warning("gc: collection failed: %s", e)
            except Exception:
                _FAILURES.inc()
                log.exception("gc: collection failed")
            took = time.monotonic() - started
            if not self._wait(self.config.interval, until_dirty=True):
                return
            # As containerd's pause threshold: collections hold the lock, so they may take at most
            # that share of the time; a burst of deletions waits for one collection, not one each.
            spacing = took / self.config.pause_threshold if self.config.pause_threshold > 0 else 0.0
            gap = started + spacing - time.monotonic()
            delay = max(self.config.schedule_delay, gap)
            if delay > 0 and not self._wait(delay, until_dirty=False):
                return
