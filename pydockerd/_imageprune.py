"""``POST /images/prune``: image records no container uses, removed, and what that freed.

As Docker's containerd store prunes: without ``dangling=true`` every unused
record goes (``docker image prune -a``), with it only dangling ones; the
``until``, ``label`` and ``label!`` filters narrow that.  An image a
container uses keeps its content (as a dangling record if it loses its last
name).  Each removed record is reported by its name (``Untagged``), then
every blob the synchronous collection took (``Deleted``), their sizes
summed as ``SpaceReclaimed``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycontainerd.client import Client
from pycontainerd.errors import NotFound
from pycontainerd.images import Descriptor, Image, walk

from ._events import EventLog
from ._filters import Filters, bool_filter, label_match

__all__ = ["PRUNE_FILTERS", "Candidate", "prune"]

PRUNE_FILTERS = ("dangling", "label", "label!", "until")


@dataclass(frozen=True)
class Candidate:
    """One record as the prune sees it: its image ID (config digest, "" if unknown) and config labels."""

    record: Image
    image_id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    dangling: bool = False
    familiar: str = ""  # the name as Docker shows it, for events


def _chosen(c: Candidate, filters: Filters, dangling_only: bool, until_ns: int | None) -> bool:
    if dangling_only and not c.dangling:
        return False
    if until_ns is not None:
        created = c.record.created_at
        if created is None or created.timestamp() * 1e9 >= until_ns:
            return False
    if not all(label_match(s, c.labels) for s in filters.get("label", [])):
        return False
    return not any(label_match(s, c.labels) for s in filters.get("label!", []))


def _present_blobs(client: Client, target: Descriptor) -> list[Descriptor]:
    out = []
    try:
        for d in walk.walk(client.content, target):
            with contextlib.suppress(NotFound):
                client.content.info(d.digest)
                out.append(d)
    except NotFound:
        pass  # a document on the way is gone: what was found so far counts
    return out


def prune(
    client: Client,
    candidates: Sequence[Candidate],
    *,
    filters: Filters,
    until_ns: int | None,
    used: Callable[[str], bool],
    events: EventLog,
) -> dict[str, Any]:
    """Remove the chosen records; Docker's ``ImagesDeleted`` and ``SpaceReclaimed``."""
    dangling_only = bool(bool_filter(filters, "dangling"))
    refs: dict[str, int] = {}
    for c in candidates:
        refs[c.record.target.digest] = refs.get(c.record.target.digest, 0) + 1
    doomed = [c for c in candidates if _chosen(c, filters, dangling_only, until_ns) and not used(c.image_id)]
    deleted: list[dict[str, str]] = []
    reclaimed = 0
    removed: list[tuple[Candidate, list[Descriptor]]] = []
    for c in doomed:
        blobs = _present_blobs(client, c.record.target)
        try:
            client.images.delete(c.record.name, sync=True)
        except NotFound:
            continue
        removed.append((c, blobs))
    # What the collection took: the removed images' blobs that no remaining image reaches.  (Asking the
    # store blob by blob right after the collection can still see them: its readers lag a moment.)
    live: set[str] = set()
    if removed:
        for record in client.images.list():
            live.update(d.digest for d in _present_blobs(client, record.target))
    gone: set[str] = set()
    for c, blobs in removed:
        digest = c.record.target.digest
        refs[digest] -= 1
        deleted.append({"Untagged": c.record.name})
        for d in blobs:
            if d.digest not in live and d.digest not in gone:
                gone.add(d.digest)
                deleted.append({"Deleted": d.digest})
                reclaimed += d.size
        if refs[digest] == 0 and c.image_id:
            events.publish("image", "delete", c.image_id, {"name": c.image_id})
        elif not c.dangling:
            events.publish("image", "untag", c.image_id, {"name": c.familiar or c.record.name})
    events.publish("image", "prune", "", {"reclaimed": str(reclaimed)})
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}
