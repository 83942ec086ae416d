"""What the daemon does at start, before it serves, to finish or undo what a crash cut short.

A SIGKILL can stop the daemon between any two steps.  Every step is
ordered so that what it leaves is one of these, each handled here:

* a snapshot commit recorded but not yet made in its backend (the record
  goes first, see :meth:`SnapshotStore.commit`): finished now;
* ingests half-made in the content store's temporary directories: removed
  (the root's lock says no other process writes here);
* directories of snapshot removals cut short, and of snapshots never
  recorded: each snapshotter's cleanup deletes them;
* blobs, ingests and backend snapshots no record names (a commit cut short
  before its record, a collection cut short after its records), and ingest
  records whose data went: one collection removes them.

What a killed pull or unpack leaves under its lease stays until the lease
ends, as in containerd, so a repeated pull resumes from it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import ContainerdError
from ..snapshots import Kind, inherited_labels
from ._util import load_labels
from .snapshots import backend_key

if TYPE_CHECKING:
    from ._db import DB

__all__ = ["recover"]

log = logging.getLogger(__name__)


def recover(db: DB) -> None:
    """Bring the store back to a consistent state after a crash; call before serving."""
    from .gc import collect

    with db.lock:
        finish_commits(db)
    remove_stale = getattr(db.backend, "remove_stale_tmp", None)
    if callable(remove_stale):
        remove_stale(0)
    for name, sn in db.snapshotters.items():
        try:
            sn.cleanup()
        except ContainerdError as e:
            log.warning("recovery: snapshotter %s could not clean up: %s", name, e)
    collect(db)


def finish_commits(db: DB) -> int:
    """Commit in the backends what the records say is committed; returns how many.  Called under the lock."""
    done = 0
    with db.read() as conn:
        rows = conn.execute(
            "SELECT id, namespace, snapshotter, key, labels FROM snapshots WHERE kind = ?", (int(Kind.COMMITTED),)
        ).fetchall()
    by_sn: dict[str, list[tuple[int, str, str, str]]] = {}
    for id_, ns, sn, key, labels in rows:
        by_sn.setdefault(sn, []).append((id_, ns, key, labels))
    for sn, records in by_sn.items():
        backend = db.snapshotters.get(sn)
        if backend is None:
            continue
        infos = {i.name: i for i in backend.walk()}
        for id_, ns, key, labels in records:
            bkey = backend_key(ns, id_, key)
            if bkey in infos:
                continue
            prefix = backend_key(ns, id_, "")
            active = [i.name for i in infos.values() if i.name.startswith(prefix) and i.kind == Kind.ACTIVE]
            if len(active) != 1:
                continue
            try:
                backend.commit(bkey, active[0], inherited_labels(load_labels(labels)))
            except ContainerdError as e:
                log.warning("recovery: could not finish the commit of %s in %s: %s", bkey, sn, e)
                continue
            log.info("recovery: finished the commit of %s in %s", bkey, sn)
            done += 1
    return done
