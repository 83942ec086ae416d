"""The checks themselves: read the metadata, the content store and each snapshotter, report what disagrees.

Everything here only reads.  Each check is a function of what was read,
returning problems; :func:`check` reads once and runs them all.  In *live*
mode (a daemon is running on the root) the databases are opened read-only
and the checks that a daemon's in-flight work makes transiently true are
skipped: a blob or backing snapshot written moments before its record
commits, an ingest being created, a directory being removed.  What remains
cannot be caused by work in progress: a record naming what is not there, a
blob whose bytes do not match its name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from ..content._ingest import TMP_PREFIX, read_status
from ..errors import ContainerdError
from ..leases import LABEL_EXPIRE
from ..metadata.gc import LABEL_REF_CONTENT, LABEL_REF_SNAPSHOT, UNLEASED_INGEST_TTL, parse_expiry
from ..snapshots import Kind as SnapshotKind
from ._layout import Layout
from ._problems import Kind, Problem

__all__ = ["Backend", "Metadata", "check", "read_backend", "read_metadata"]

_ALGORITHMS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
_REMOVING = "rm-"
_CHUNK = 1 << 20
# A manifest's config and layers, and a migrated image's tar-split records (its only way to its layer blobs).
_REQUIRED = re.compile(r"\.(config|l\.\d+|tar-split\.\d+)$")


def _labels(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def connect(path: pathlib.Path, live: bool) -> sqlite3.Connection:
    """A connection that reads ``path``: read-only beside a running daemon, else read-write (WAL recovery needs it)."""
    if not path.exists():
        raise FileNotFoundError(path)
    if live:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


@dataclass
class Metadata:
    """The metadata store's records, read in one transaction."""

    content: dict[tuple[str, str], tuple[int, dict[str, str]]] = field(default_factory=dict)
    images: list[tuple[str, str, str]] = field(default_factory=list)
    leases: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    lease_resources: list[tuple[str, str, str, str]] = field(default_factory=list)
    ingests: dict[tuple[str, str], tuple[str, bool, int]] = field(default_factory=dict)  # backend ref, leased, created
    """(namespace, ref) -> (backend ref, leased)."""
    snapshots: dict[tuple[str, str, str], tuple[int, int, str, dict[str, str]]] = field(default_factory=dict)
    """(namespace, snapshotter, key) -> (id, kind, parent, labels)."""
    containers: list[tuple[str, str, str, str, dict[str, str]]] = field(default_factory=list)
    """(namespace, id, snapshotter, snapshot key, labels)."""


def read_metadata(conn: sqlite3.Connection) -> Metadata:
    m = Metadata()
    conn.execute("BEGIN")
    try:
        for ns, digest, size, labels in conn.execute("SELECT namespace, digest, size, labels FROM content"):
            m.content[(ns, digest)] = (size, _labels(labels))
        m.images = list(conn.execute("SELECT namespace, name, digest FROM images"))
        for ns, id_, labels in conn.execute("SELECT namespace, id, labels FROM leases"):
            m.leases[(ns, id_)] = _labels(labels)
        m.lease_resources = list(conn.execute("SELECT namespace, lease, type, id FROM lease_resources"))
        for ns, ref, backend_ref, leased, created in conn.execute(
            "SELECT namespace, ref, backend_ref, leased, created_ns FROM ingests"
        ):
            m.ingests[(ns, ref)] = (backend_ref, bool(leased), created)
        for id_, ns, sn, key, kind, parent, labels in conn.execute(
            "SELECT id, namespace, snapshotter, key, kind, parent, labels FROM snapshots"
        ):
            m.snapshots[(ns, sn, key)] = (id_, kind, parent, _labels(labels))
        for ns, id_, sn, key, labels in conn.execute(
            "SELECT namespace, id, snapshotter, snapshot_key, labels FROM containers"
        ):
            m.containers.append((ns, id_, sn, key, _labels(labels)))
    finally:
        conn.execute("ROLLBACK")
    return m


@dataclass
class Backend:
    """One snapshotter's own records: key -> (id, kind, parent id)."""

    name: str
    root: pathlib.Path
    snapshots: dict[str, tuple[int, int, int | None]] = field(default_factory=dict)

    def key_of(self, id_: int | None) -> str:
        for key, row in self.snapshots.items():
            if row[0] == id_:
                return key
        return ""


def read_backend(name: str, root: pathlib.Path, conn: sqlite3.Connection) -> Backend:
    b = Backend(name, root)
    for id_, key, kind, parent_id in conn.execute("SELECT id, key, kind, parent_id FROM snapshots"):
        b.snapshots[key] = (id_, kind, parent_id)
    return b


def backend_key(namespace: str, id_: int, key: str) -> str:
    return f"{namespace}/{id_}/{key}"


# -- the checks ---------------------------------------------------------------


def check_images(m: Metadata) -> Iterator[Problem]:
    for ns, name, digest in m.images:
        if (ns, digest) not in m.content:
            yield Problem(
                Kind.IMAGE_TARGET_MISSING, f"image {name}", f"target {digest} is not in the content store", ns
            )


def _refs(labels: dict[str, str]) -> Iterator[tuple[str, str, str]]:
    """(label, kind, id) for each gc reference: kind is ``content`` or ``snapshots/<snapshotter>``."""
    for k, v in labels.items():
        if k == LABEL_REF_CONTENT or k.startswith(LABEL_REF_CONTENT + "."):
            yield k, "content", v
        elif k.startswith(LABEL_REF_SNAPSHOT):
            yield k, "snapshots/" + k[len(LABEL_REF_SNAPSHOT) :].split("/", 1)[0], v


def _resolves(m: Metadata, ns: str, kind: str, id_: str) -> bool:
    if kind == "content":
        return (ns, id_) in m.content
    if kind == "ingests":
        return (ns, id_) in m.ingests
    if kind.startswith("snapshots/"):
        return (ns, kind[len("snapshots/") :], id_) in m.snapshots
    return True  # a resource type the collector does not follow


def check_gc_labels(m: Metadata) -> Iterator[Problem]:
    """What an image's gc labels promise: a manifest's config and layers, and the snapshot its config was unpacked to.

    Only what images reach is held to its labels: a pull in progress (or
    killed) labels a manifest before its layers arrive, and the collector
    simply skips references to what is not there.  An image record, though,
    is written once its content is complete; an index's references to
    manifests of platforms not fetched are not promises either.
    """
    seen: set[tuple[str, str]] = set()
    for ns, name, target in m.images:
        stack = [target]
        while stack:
            digest = stack.pop()
            if (ns, digest) in seen or (ns, digest) not in m.content:
                continue
            seen.add((ns, digest))
            for label, kind, id_ in _refs(m.content[(ns, digest)][1]):
                present = _resolves(m, ns, kind, id_)
                if present and kind == "content":
                    stack.append(id_)
                elif not present and (kind != "content" or _REQUIRED.search(label)):
                    yield Problem(
                        Kind.GC_REF_MISSING,
                        f"content {digest}",
                        f"label {label} (of image {name}) names {kind} {id_}, which is not there",
                        ns,
                    )


def check_leases(m: Metadata, now: datetime) -> Iterator[Problem]:
    for ns, lease, type_, id_ in m.lease_resources:
        if (ns, lease) not in m.leases:
            yield Problem(Kind.LEASE_RESOURCE_MISSING, f"lease {lease}", f"holds {type_} {id_} but does not exist", ns)
        elif not _resolves(m, ns, type_, id_):
            yield Problem(Kind.LEASE_RESOURCE_MISSING, f"lease {lease}", f"holds {type_} {id_}, which is not there", ns)
    held = {(ns, id_) for ns, lease, t, id_ in m.lease_resources if t == "ingests" and _live_lease(m, ns, lease, now)}
    stale_before = int((now.timestamp() - UNLEASED_INGEST_TTL) * 1e9)
    for (ns, ref), (_, leased, created_ns) in m.ingests.items():
        if leased and (ns, ref) not in held:
            yield Problem(Kind.INGEST_EXPIRED, f"ingest {ref}", "opened under a lease that no longer holds it", ns)
        elif not leased and created_ns <= stale_before:
            yield Problem(Kind.INGEST_EXPIRED, f"ingest {ref}", "opened without a lease over a day ago", ns)


def _live_lease(m: Metadata, ns: str, lease: str, now: datetime) -> bool:
    labels = m.leases.get((ns, lease))
    if labels is None:
        return False
    when = parse_expiry(labels[LABEL_EXPIRE]) if LABEL_EXPIRE in labels else None
    return when is None or when > now


def check_containers(m: Metadata) -> Iterator[Problem]:
    for ns, id_, sn, key, _ in m.containers:
        if key and (ns, sn, key) not in m.snapshots:
            yield Problem(
                Kind.CONTAINER_SNAPSHOT_MISSING,
                f"container {id_}",
                f"snapshot {key} of {sn or '(none)'} is not there",
                ns,
            )


def _blob_path(layout: Layout, digest: str) -> pathlib.Path:
    algo, _, hexpart = digest.partition(":")
    return layout.blobs / algo / hexpart


def _hash(path: pathlib.Path, algo: str) -> tuple[str, int]:
    h = _ALGORITHMS[algo]()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return f"{algo}:{h.hexdigest()}", size


def check_content(layout: Layout, m: Metadata, *, live: bool, verify: bool) -> Iterator[Problem]:
    sizes: dict[str, int] = {}
    for (ns, digest), (size, _) in sorted(m.content.items()):
        sizes.setdefault(digest, size)
        path = _blob_path(layout, digest)
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            yield Problem(Kind.CONTENT_BLOB_MISSING, f"content {digest}", "recorded, but its blob is not there", ns)
            continue
        if actual != size:
            yield Problem(Kind.BLOB_SIZE, f"content {digest}", f"recorded as {size} bytes, the blob has {actual}", ns)
    for algo in _ALGORITHMS:
        try:
            entries = sorted(os.scandir(layout.blobs / algo), key=lambda e: e.name)
        except FileNotFoundError:
            continue
        for e in entries:
            digest = f"{algo}:{e.name}"
            if digest not in sizes:
                if not live:
                    yield Problem(Kind.BLOB_UNREFERENCED, f"blob {digest}", "no namespace records it", path=e.path)
                continue
            if not verify:
                continue
            try:
                hashed, _ = _hash(pathlib.Path(e.path), algo)
            except OSError as exc:
                yield Problem(Kind.UNREADABLE, f"blob {digest}", exc.strerror or str(exc), path=e.path)
                continue
            if hashed != digest:
                yield Problem(Kind.BLOB_CORRUPT, f"blob {digest}", f"its bytes hash to {hashed}", path=e.path)


def check_ingests(layout: Layout, m: Metadata, *, live: bool) -> Iterator[Problem]:
    wanted = {
        hashlib.sha256(backend_ref.encode()).hexdigest(): (ns, ref, backend_ref)
        for (ns, ref), (backend_ref, _, _) in m.ingests.items()
    }
    on_disk: set[str] = set()
    try:
        entries = sorted(os.scandir(layout.ingests), key=lambda e: e.name)
    except FileNotFoundError:
        entries = []
    for e in entries:
        if e.name.startswith(TMP_PREFIX):
            if not live:
                yield Problem(Kind.INGEST_BROKEN, f"ingest {e.name}", "left half-made by a killed writer", path=e.path)
            continue
        if e.name.startswith("."):
            continue
        try:
            st = read_status(pathlib.Path(e.path))
        except ContainerdError:
            if not live:
                yield Problem(Kind.INGEST_BROKEN, f"ingest {e.name}", "cannot be read back", path=e.path)
            continue
        if hashlib.sha256(st.ref.encode()).hexdigest() != e.name:
            yield Problem(Kind.INGEST_BROKEN, f"ingest {e.name}", f"holds ref {st.ref!r}, not its own", path=e.path)
            continue
        on_disk.add(e.name)
        if e.name not in wanted and not live:
            yield Problem(Kind.INGEST_UNREFERENCED, f"ingest {st.ref}", "no namespace records it", path=e.path)
    for name, (ns, ref, _) in sorted(wanted.items()):
        if name not in on_disk:
            yield Problem(Kind.INGEST_DATA_MISSING, f"ingest {ref}", "recorded, but its data is not there", ns)


def check_snapshots(layout: Layout, m: Metadata, backends: dict[str, Backend], *, live: bool) -> Iterator[Problem]:
    named: dict[str, set[str]] = {name: set() for name in backends}
    missing_sn: set[str] = set()
    for (ns, sn, key), (id_, kind, parent, _) in sorted(m.snapshots.items()):
        b = backends.get(sn)
        if b is None:
            if sn not in missing_sn:
                missing_sn.add(sn)
                yield Problem(Kind.SNAPSHOTTER_MISSING, f"snapshotter {sn}", "has records but no storage", ns)
            continue
        subject = f"snapshot {sn}/{key}"
        bkey = backend_key(ns, id_, key)
        named[sn].add(bkey)
        expected_parent = ""
        if parent:
            prow = m.snapshots.get((ns, sn, parent))
            if prow is None or prow[1] != SnapshotKind.COMMITTED:
                yield Problem(Kind.SNAPSHOT_PARENT_MISSING, subject, f"parent {parent} is not a committed snapshot", ns)
            else:
                expected_parent = backend_key(ns, prow[0], parent)
        brow = b.snapshots.get(bkey)
        if brow is None:
            prefix = backend_key(ns, id_, "")
            pending = [k for k, r in b.snapshots.items() if k.startswith(prefix) and r[1] == SnapshotKind.ACTIVE]
            if kind == SnapshotKind.COMMITTED and len(pending) == 1:
                named[sn].add(pending[0])
                yield Problem(Kind.SNAPSHOT_COMMIT_UNFINISHED, subject, f"{sn} still has it active as {pending[0]}", ns)
            else:
                yield Problem(Kind.SNAPSHOT_BACKEND_MISSING, subject, f"{sn} has no snapshot {bkey}", ns)
            continue
        if brow[1] != kind:
            yield Problem(
                Kind.SNAPSHOT_MISMATCH,
                subject,
                f"recorded {SnapshotKind(kind).label}, {sn} has it {SnapshotKind(brow[1]).label}",
                ns,
            )
        if parent and expected_parent and b.key_of(brow[2]) != expected_parent:
            yield Problem(Kind.SNAPSHOT_MISMATCH, subject, f"{sn} has another parent than {parent}", ns)
    for name, b in sorted(backends.items()):
        if not live:
            for key in sorted(set(b.snapshots) - named[name]):
                yield Problem(Kind.SNAPSHOT_UNREFERENCED, f"snapshot {name}/{key}", "no record names it")
        yield from _check_dirs(b, live=live)


def _check_dirs(b: Backend, *, live: bool) -> Iterator[Problem]:
    sdir = b.root / "snapshots"
    ids = {str(row[0]): key for key, row in b.snapshots.items()}
    try:
        present = {e.name for e in os.scandir(sdir)}
    except FileNotFoundError:
        present = set()
    for id_, key in sorted(ids.items()):
        path = sdir / id_
        if id_ not in present:
            yield Problem(Kind.SNAPSHOT_DIR_MISSING, f"snapshot {b.name}/{key}", f"its directory {path} is not there")
        elif b.name == "overlayfs" and not (path / "fs").is_dir():
            yield Problem(Kind.SNAPSHOT_DIR_MISSING, f"snapshot {b.name}/{key}", f"{path}/fs is not there")
    if live:
        return
    for name in sorted(present - set(ids)):
        why = "a removal cut short" if name.startswith(_REMOVING) else "no record names it"
        yield Problem(Kind.SNAPSHOT_DIR_ORPHANED, f"directory {sdir / name}", why, path=str(sdir / name))


def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> list[pathlib.Path]:
    with open(mountinfo, encoding="utf-8", errors="replace") as f:
        return [pathlib.Path(_unescape(line.split()[4])) for line in f if line.strip()]


def check_mounts(layout: Layout, m: Metadata, points: Iterable[pathlib.Path]) -> Iterator[Problem]:
    """Mounts strictly under root or state; a live container's rootfs in its bundle is in use."""
    in_use = {layout.tasks / ns / id_ / "rootfs" for ns, id_, *_ in m.containers}
    for p in points:
        for base in (layout.root, layout.state):
            if p != base and p.is_relative_to(base) and p not in in_use:
                yield Problem(Kind.MOUNT_LEFTOVER, f"mount {p}", "mounted under the daemon's directories", path=str(p))
                break


def check(layout: Layout, *, live: bool = False, verify_blobs: bool = True) -> list[Problem]:
    """Every problem found in ``layout`` (see the module docstring for ``live``)."""
    problems: list[Problem] = []
    try:
        with contextlib.closing(connect(layout.metadata, live)) as conn:
            m = read_metadata(conn)
    except FileNotFoundError:
        return [Problem(Kind.UNREADABLE, f"metadata {layout.metadata}", "not there: is this a pycontainerd root?")]
    except (OSError, sqlite3.Error) as exc:
        return [Problem(Kind.UNREADABLE, f"metadata {layout.metadata}", str(exc))]
    backends: dict[str, Backend] = {}
    for name, root in layout.snapshotters.items():
        try:
            with contextlib.closing(connect(root / "metadata.db", live)) as conn:
                backends[name] = read_backend(name, root, conn)
        except FileNotFoundError:
            continue  # a snapshotter that never stored anything
        except (OSError, sqlite3.Error) as exc:
            problems.append(Problem(Kind.UNREADABLE, f"snapshotter {name}", f"{root / 'metadata.db'}: {exc}"))
    now = datetime.now().astimezone()
    problems += check_images(m)
    problems += check_gc_labels(m)
    problems += check_leases(m, now)
    problems += check_containers(m)
    problems += check_content(layout, m, live=live, verify=verify_blobs)
    problems += check_ingests(layout, m, live=live)
    problems += check_snapshots(layout, m, backends, live=live)
    problems += check_mounts(layout, m, mount_points())
    return problems
