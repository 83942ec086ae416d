"""``GET /images/get``: which images a save names, and the archive's bytes (see :mod:`.archive.save`).

Names are read as Docker reads them: an image ID saves the image without a
name; a repository without a tag saves every tag of it; ``name:tag`` saves
that tag.  With a platform, each image is saved as its one manifest for it.
Everything is checked (404 for an unknown name) before the first byte goes,
and a migrated image's layer blobs are made then (:mod:`pycontainerd.migrate.ondemand`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

from pycontainerd import platforms
from pycontainerd.client import Client
from pycontainerd.content import open_blob
from pycontainerd.errors import InvalidArgument, NotFound
from pycontainerd.images import Image
from pycontainerd.migrate.ondemand import materialize

from ._errors import NoSuchImage
from ._events import EventLog
from ._manifests import platform_manifests, push_target
from ._refs import familiar, is_dangling, looks_like_id, parse_docker
from .archive.save import Export, Plan, chunks, plan

__all__ = ["SaveJob", "prepare_save", "save_chunks"]

_SOURCE = "containerd.io/distribution.source."

Resolve = Callable[[str], tuple[Image, bool]]  # a name -> (its record, whether it was named by ID)


class SaveJob:
    """A save checked and planned: the archive's members, and the targets to announce as events."""

    def __init__(self, plan: Plan, targets: Sequence[str]) -> None:
        self.plan = plan
        self.targets = list(targets)


def _name_only(name: str) -> bool:
    return "@" not in name and ":" not in name.rsplit("/", 1)[-1] and looks_like_id(name) is None


def _has(client: Client) -> Callable[[str], bool]:
    def has(digest: str) -> bool:
        try:
            client.content.info(digest)
        except NotFound:
            return False
        return True

    return has


def prepare_save(
    client: Client, resolve: Resolve, names: Sequence[str], platform: platforms.Platform | None
) -> SaveJob:
    """Plan the archive of ``names``: NoSuchImage (404) for one that names nothing."""
    names = [n for n in names if n]
    if not names:
        raise InvalidArgument("no image names given to save")
    has = _has(client)
    records: list[tuple[Image, str]] = []  # (record, name to save it under)
    for name in names:
        if _name_only(name):
            ref = parse_docker(name)
            found = [
                r
                for r in client.images.list()
                if not is_dangling(r.name, r.target.digest) and _repository(r.name) == ref.name
            ]
            if found:
                records += [(r, r.name) for r in sorted(found, key=lambda r: r.name)]
                continue
        record, by_id = resolve(name)
        named = not by_id and "@" not in name
        records.append((record, record.name if named else ""))
    exports = []
    made: dict[str, Image] = {}  # record name -> the record materialized: a name given twice is made once
    for listed, name in records:
        if listed.name not in made:  # a migrated image's layer blobs are made first
            made[listed.name] = materialize(client, listed)
        image = made[listed.name]
        target = image.target
        if platform is not None:
            entries, missing = platform_manifests(client.content, has, target)
            target = push_target(target, entries, missing, platform, familiar(parse_docker(image.name)))
        labels: dict[str, str] = {}
        with contextlib.suppress(NotFound):
            labels = {k: v for k, v in client.content.info(target.digest).labels.items() if k.startswith(_SOURCE)}
        exports.append(Export(target, name, labels))
    matcher = platforms.only_strict(platform) if platform else None
    try:
        planned = plan(client.content, has, exports, matcher)
    except NotFound as e:
        raise NoSuchImage(str(e)) from None
    return SaveJob(planned, [e.target.digest for e in exports])


def _repository(name: str) -> str:
    try:
        return parse_docker(name).name
    except InvalidArgument:
        return ""


def save_chunks(client: Client, job: SaveJob, events: EventLog) -> Iterator[bytes]:
    """The archive's bytes; the save events once it is all written."""
    yield from chunks(job.plan, lambda digest: open_blob(client.content, digest))
    for digest in job.targets:  # one per image saved, as Docker announces them
        events.publish("image", "save", digest, {"name": digest})
