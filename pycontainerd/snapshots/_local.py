"""What the snapshotters that keep trees in local directories share.

Each snapshot has a directory ``<root>/snapshots/<id>``; a subclass says
what goes in it (:meth:`LocalSnapshotter._populate`), which tree holds the
snapshot's own changes (:meth:`LocalSnapshotter._upper`) and how it is
mounted (:meth:`LocalSnapshotter._mounts_of`).  Removal renames the
directory out of the id space inside the records' transaction, then deletes
it — or, with ``async_remove`` (the daemon's choice, as containerd's overlay
plugin makes it), leaves the deleting to :meth:`cleanup`, which the garbage
collector calls without holding any lock.  :meth:`cleanup` also deletes
anything a crash left behind.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import pathlib
import shutil
import stat
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..mount import Mount
from ._types import Info, Kind, Usage
from .storage import MetaStore, Snapshot

__all__ = ["LocalSnapshotter", "disk_usage"]

log = logging.getLogger(__name__)

_REMOVING = "rm-"


def disk_usage(root: pathlib.Path) -> Usage:
    """Blocks and distinct inodes under ``root`` (root itself included), without following links."""
    seen: set[tuple[int, int]] = set()
    size = 0
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return Usage()
    seen.add((st.st_dev, st.st_ino))
    size += st.st_blocks * 512
    stack = [os.fspath(root)]
    while stack:
        path = stack.pop()
        try:
            it = os.scandir(path)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                ident = (st.st_dev, st.st_ino)
                if ident in seen:
                    continue
                seen.add(ident)
                size += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode):
                    stack.append(e.path)
    return Usage(size=size, inodes=len(seen))


def _rmtree(path: pathlib.Path) -> None:
    def onerror(fn: object, p: str, excinfo: tuple[type[BaseException], BaseException, object]) -> None:
        exc = excinfo[1]
        # Read-only directories inside a tree (a layer may ship them) are made writable and retried.
        if isinstance(exc, PermissionError):
            with contextlib.suppress(OSError):
                os.chmod(os.path.dirname(p), 0o700)
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    os.unlink(p)
                return
        log.warning("snapshots: could not remove %s: %s", p, exc)

    shutil.rmtree(path, onerror=onerror)


class LocalSnapshotter(abc.ABC):
    """A snapshotter whose snapshots are directories under ``root``; see the module docstring."""

    def __init__(self, root: pathlib.Path, *, async_remove: bool = False) -> None:
        self.root = root
        self.async_remove = async_remove
        self._cleaning = threading.Lock()  # one cleanup deletes at a time
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.snapshots_dir = root / "snapshots"
        self.snapshots_dir.mkdir(mode=0o700, exist_ok=True)
        self._ms = MetaStore(root / "metadata.db")
        self._measuring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-usage")

    # What subclasses provide

    @abc.abstractmethod
    def _populate(self, snap: Snapshot, path: pathlib.Path) -> None:
        """Fill a new snapshot's directory (already created, empty)."""

    @abc.abstractmethod
    def _upper(self, id_: str) -> pathlib.Path:
        """The tree holding this snapshot's own files."""

    @abc.abstractmethod
    def _mounts_of(self, snap: Snapshot) -> list[Mount]:
        """How the snapshot is mounted."""

    # Helpers

    def _dir(self, id_: str) -> pathlib.Path:
        return self.snapshots_dir / id_

    def _create(self, kind: Kind, key: str, parent: str, labels: Mapping[str, str] | None) -> list[Mount]:
        with self._ms.write() as tx:
            snap = tx.create(kind, key, parent, labels)
            path = self._dir(snap.id)
            if path.exists():  # an id reused after a crash between rename and delete
                _rmtree(path)
            path.mkdir(mode=0o700)
            try:
                self._populate(snap, path)
            except BaseException:
                _rmtree(path)
                raise
        return self._mounts_of(snap)

    # The Snapshotter protocol

    def stat(self, key: str) -> Info:
        with self._ms.read() as tx:
            return tx.info(key)[1]

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        with self._ms.write() as tx:
            return tx.update(info, fieldpaths)

    def usage(self, key: str) -> Usage:
        with self._ms.read() as tx:
            id_, info, usage = tx.info(key)
        if info.kind != Kind.COMMITTED:
            return disk_usage(self._upper(id_))
        if usage is None:  # committed moments ago: measure it now rather than wait for the worker
            usage = self._measure(id_)
        return usage

    def mounts(self, key: str) -> list[Mount]:
        with self._ms.read() as tx:
            snap = tx.get(key)
        return self._mounts_of(snap)

    def prepare(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.ACTIVE, key, parent, labels)

    def view(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.VIEW, key, parent, labels)

    def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        """Commit now, measure later: walking a fresh layer's tree would hold up the next layer's unpack.

        A committed tree never changes, so its usage is measured on a worker
        thread after the commit returns; :meth:`usage` measures it at once
        if asked first (or after a restart lost the worker's queue).
        """
        with self._ms.write() as tx:
            snap = tx.get(key)
            tx.commit(key, name, None, labels)
        self._measuring.submit(self._measure, snap.id)

    def _measure(self, id_: str) -> Usage:
        usage = disk_usage(self._upper(id_))  # a snapshot removed meanwhile measures short; its record is gone
        with self._ms.write() as tx:
            tx.set_usage(id_, usage)
        return usage

    def remove(self, key: str) -> None:
        """The record goes first, then the directory moves out of the id space.

        A kill in between leaves a directory no record names, which
        :meth:`cleanup` deletes; the other order could leave a record whose
        directory was already moved away.  Ids are never reused, so the
        directory cannot be mistaken for a new snapshot's meanwhile.
        """
        with self._ms.write() as tx:
            id_, _ = tx.remove(key)
        path = self._dir(id_)
        doomed = self.snapshots_dir / (_REMOVING + id_)
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return  # a concurrent cleanup took it
        except OSError as e:
            log.warning("snapshots: %s removed, its directory left for cleanup: %s", key, e.strerror)
            return
        if not self.async_remove:
            _rmtree(doomed)

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        with self._ms.read() as tx:
            infos = tx.walk(filters)
        yield from infos

    def totals(self) -> dict[Kind, tuple[int, int, int]]:
        """Per kind: count, and recorded bytes and inodes (committed snapshots'; active ones change too often)."""
        with self._ms.read() as tx:
            return tx.totals()

    def cleanup(self) -> None:
        """Delete directories that no record names: removals a crash interrupted, snapshots never recorded."""
        with self._cleaning:
            self._cleanup()

    def _cleanup(self) -> None:
        with self._ms.write() as tx:  # the writer's lock: no snapshot is being created meanwhile
            ids = tx.ids()
            doomed = []
            for entry in os.scandir(self.snapshots_dir):
                if entry.name in ids:
                    continue
                if entry.name.startswith(_REMOVING):
                    doomed.append(pathlib.Path(entry.path))
                else:  # never recorded: move it out of the id space before deleting it unlocked
                    moved = self.snapshots_dir / (_REMOVING + entry.name)
                    os.rename(entry.path, moved)
                    doomed.append(moved)
        for path in doomed:
            _rmtree(path)

    def close(self) -> None:
        self._measuring.shutdown(wait=True, cancel_futures=True)
        self._ms.close()
