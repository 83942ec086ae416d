"""Image records of one namespace."""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import filters
from ..api.events import image_pb2 as ev
from ..content import validate_digest
from ..errors import AlreadyExists, InvalidArgument, NotFound, quote
from ..images import Descriptor, Image
from ._util import apply_label_paths, dump_labels, load_labels, now_ns, to_datetime

if TYPE_CHECKING:
    from ._db import DB

_COLUMNS = "name, media_type, digest, size, annotations, labels, created_ns, updated_ns"


def validate_image(image: Image) -> None:
    if not image.name:
        raise InvalidArgument("image name must not be empty")
    t = image.target
    try:
        validate_digest(t.digest)
    except InvalidArgument as e:
        raise InvalidArgument(f"Target.Digest {quote(t.digest)} invalid: {e}") from None
    if t.size <= 0:
        raise InvalidArgument("Target.Size must be greater than zero")
    if not t.media_type:
        raise InvalidArgument("Target.MediaType must be set")
    dump_labels(image.labels)


def _row_to_image(row: tuple[str, str, str, int, str, str, int, int]) -> Image:
    name, media_type, digest, size, annotations, labels, created, updated = row
    return Image(
        name=name,
        target=Descriptor(media_type, digest, size, load_labels(annotations)),
        labels=load_labels(labels),
        created_at=to_datetime(created),
        updated_at=to_datetime(updated),
    )


def _adaptor(image: Image) -> filters.Adaptor:
    def field(path: Sequence[str]) -> str | None:
        if not path:
            return None
        head = path[0]
        if head == "name" and len(path) == 1:
            return image.name
        if head == "target" and len(path) == 2:
            return {"digest": image.target.digest, "mediatype": image.target.media_type}.get(path[1])
        if head == "labels":
            return filters.adapt_labels(path[1:], image.labels)
        if head == "annotations":
            return filters.adapt_labels(path[1:], image.target.annotations)
        return None

    return field


class ImageStore:
    def __init__(self, db: DB, namespace: str) -> None:
        self._db = db
        self.namespace = namespace

    def get(self, name: str) -> Image:
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM images WHERE namespace = ? AND name = ?", (self.namespace, name)
            ).fetchone()
        if row is None:
            raise NotFound(f"image {quote(name)}: not found")
        return _row_to_image(row)

    def list(self, filters_: Sequence[str] = ()) -> builtins.list[Image]:
        flt = filters.parse(filters_)
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM images WHERE namespace = ? ORDER BY name", (self.namespace,)
            ).fetchall()
        images = [_row_to_image(r) for r in rows]
        return [i for i in images if flt.match(_adaptor(i))] if filters_ else images

    def create(self, image: Image) -> Image:
        from ._db import ensure_namespace

        validate_image(image)
        now = now_ns()
        with self._db.write() as conn:
            ensure_namespace(conn, self.namespace)
            if conn.execute(
                "SELECT 1 FROM images WHERE namespace = ? AND name = ?", (self.namespace, image.name)
            ).fetchone():
                raise AlreadyExists(f"image {quote(image.name)}: already exists")
            self._put(conn, image, now, now)
        self._db.bump("images", self.namespace)
        self._db.publish(self.namespace, "/images/create", ev.ImageCreate(name=image.name, labels=image.labels))
        return self.get(image.name)

    def update(self, image: Image, fieldpaths: Sequence[str] = ()) -> Image:
        if not image.name:
            raise InvalidArgument("image name must not be empty")
        with self._db.write() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM images WHERE namespace = ? AND name = ?", (self.namespace, image.name)
            ).fetchone()
            if row is None:
                raise NotFound(f"image {quote(image.name)}: not found")
            current = _row_to_image(row)
            updated = _apply(current, image, list(fieldpaths)) if fieldpaths else image
            validate_image(updated)
            assert current.created_at is not None
            self._put(conn, updated, int(current.created_at.timestamp() * 1e9), now_ns(), replace=True)
        self._db.bump("images", self.namespace)
        self._db.publish(self.namespace, "/images/update", ev.ImageUpdate(name=updated.name, labels=updated.labels))
        if _target_changed(current, updated):
            self._db.scheduler.schedule()
        return self.get(image.name)

    def delete(self, name: str) -> None:
        with self._db.write() as conn:
            cur = conn.execute("DELETE FROM images WHERE namespace = ? AND name = ?", (self.namespace, name))
            if cur.rowcount == 0:
                raise NotFound(f"image {quote(name)}: not found")
        self._db.bump("images", self.namespace)
        self._db.publish(self.namespace, "/images/delete", ev.ImageDelete(name=name))
        self._db.scheduler.schedule()

    def _put(self, conn: sqlite3.Connection, image: Image, created: int, updated: int, replace: bool = False) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        t = image.target
        conn.execute(
            f"{verb} INTO images (namespace, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.namespace,
                image.name,
                t.media_type,
                t.digest,
                t.size,
                json.dumps(dict(t.annotations), sort_keys=True),
                dump_labels(image.labels),
                created,
                updated,
            ),
        )


def _target_changed(a: Image, b: Image) -> bool:
    return a.target.digest != b.target.digest


def _apply(current: Image, new: Image, fieldpaths: builtins.list[str]) -> Image:
    labels = dict(current.labels)
    target = current.target
    annotations = dict(current.target.annotations)
    for path in fieldpaths:
        if path == "labels" or path.startswith("labels."):
            merged = apply_label_paths(labels, new.labels, [path])
            assert merged is not None
            labels = merged
        elif path == "annotations" or path.startswith("annotations."):
            merged = apply_label_paths(annotations, new.target.annotations, [path], prefix="annotations")
            assert merged is not None
            annotations = merged
        elif path == "target":
            target = new.target
            annotations = dict(new.target.annotations)
        else:
            raise InvalidArgument(f"cannot update {quote(path)} field on image {quote(current.name)}")
    return Image(
        name=current.name,
        target=Descriptor(target.media_type, target.digest, target.size, annotations),
        labels=labels,
        created_at=current.created_at,
        updated_at=current.updated_at,
    )
