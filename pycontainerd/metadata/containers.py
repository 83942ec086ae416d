"""Container records of one namespace, in the ``containers`` table.

A container keeps its snapshot alive (the collector treats it as a root) for
as long as the record exists; deleting the record lets the collector take the
snapshot if nothing else holds it, as in containerd.
"""

from __future__ import annotations

import base64
import builtins
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from google.protobuf import any_pb2

from .. import filters
from ..api.events import container_pb2 as ev
from ..containers import UPDATABLE_FIELDS, Container, RuntimeInfo, TypedValue, adaptor, validate_container
from ..errors import AlreadyExists, InvalidArgument, NotFound, quote
from ._util import apply_label_paths, dump_labels, load_labels, now_ns, to_datetime

if TYPE_CHECKING:
    from ._db import DB

_COLUMNS = (
    "id, labels, image, runtime, runtime_options_type, runtime_options, spec_type, spec, "
    "snapshotter, snapshot_key, extensions, created_ns, updated_ns"
)

_Row = tuple[str, str, str, str, str | None, bytes | None, str, bytes, str, str, str, int, int]


def _dump_extensions(ext: Mapping[str, TypedValue]) -> str:
    return json.dumps({k: [v.type_url, base64.b64encode(v.value).decode()] for k, v in ext.items()}, sort_keys=True)


def _load_extensions(text: str) -> dict[str, TypedValue]:
    if text == "{}":
        return {}
    return {k: TypedValue(t, base64.b64decode(v)) for k, (t, v) in json.loads(text).items()}


def _from_row(row: _Row) -> Container:
    (id_, labels, image, runtime, opt_type, opt, spec_type, spec, sn, key, ext, created, updated) = row
    options = TypedValue(opt_type, bytes(opt or b"")) if opt_type is not None else None
    return Container(
        id=id_,
        labels=load_labels(labels),
        image=image,
        runtime=RuntimeInfo(runtime, options),
        spec=TypedValue(spec_type, bytes(spec)),
        snapshotter=sn,
        snapshot_key=key,
        extensions=_load_extensions(ext),
        created_at=to_datetime(created),
        updated_at=to_datetime(updated),
    )


class ContainerStore:
    """The metadata store's :class:`~pycontainerd.containers.Store`."""

    def __init__(self, db: DB, namespace: str) -> None:
        self._db = db
        self.namespace = namespace

    def get(self, id: str) -> Container:
        with self._db.read() as conn:
            row = self._row(conn, id)
        if row is None:
            raise NotFound(f"container {quote(id)} in namespace {quote(self.namespace)}: not found")
        return _from_row(row)

    def _row(self, conn: sqlite3.Connection, id: str) -> _Row | None:
        row: _Row | None = conn.execute(
            f"SELECT {_COLUMNS} FROM containers WHERE namespace = ? AND id = ?", (self.namespace, id)
        ).fetchone()
        return row

    def list(self, filters_: Sequence[str] = ()) -> builtins.list[Container]:
        flt = filters.parse(filters_)
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM containers WHERE namespace = ? ORDER BY id", (self.namespace,)
            ).fetchall()
        out = [_from_row(r) for r in rows]
        return [c for c in out if flt.match(adaptor(c))] if filters_ else out

    def create(self, container: Container) -> Container:
        from ._db import ensure_namespace

        try:
            validate_container(container)
        except InvalidArgument as e:
            raise InvalidArgument(f"create container failed validation: {e}") from None
        now = now_ns()
        with self._db.write() as conn:
            ensure_namespace(conn, self.namespace)
            if self._row(conn, container.id) is not None:
                raise AlreadyExists(f"container {quote(container.id)}: already exists")
            self._put(conn, container, now, now)
        self._db.bump("containers", self.namespace)
        self._db.publish(
            self.namespace,
            "/containers/create",
            ev.ContainerCreate(
                id=container.id,
                image=container.image,
                runtime=ev.ContainerCreate.Runtime(
                    name=container.runtime.name,
                    options=_any(container.runtime.options),
                ),
            ),
        )
        return self.get(container.id)

    def update(self, container: Container, fieldpaths: Sequence[str] = ()) -> Container:
        if not container.id:
            raise InvalidArgument("must specify a container id")
        with self._db.write() as conn:
            row = self._row(conn, container.id)
            if row is None:
                raise NotFound(f"container {quote(container.id)}: not found")
            current = _from_row(row)
            paths = list(fieldpaths)
            if not paths:
                paths = list(UPDATABLE_FIELDS)
                if current.snapshotter != container.snapshotter:
                    raise InvalidArgument("container.Snapshotter field is immutable")
                if current.runtime.name != container.runtime.name:
                    raise InvalidArgument("container.Runtime.Name field is immutable")
            updated = _apply(current, container, paths)
            try:
                validate_container(updated)
            except InvalidArgument as e:
                raise InvalidArgument(f"update failed validation: {e}") from None
            assert current.created_at is not None
            self._put(conn, updated, int(current.created_at.timestamp() * 1e9), now_ns(), replace=True)
        self._db.bump("containers", self.namespace)
        self._db.publish(
            self.namespace,
            "/containers/update",
            ev.ContainerUpdate(
                id=updated.id, image=updated.image, labels=updated.labels, snapshot_key=updated.snapshot_key
            ),
        )
        if updated.snapshot_key != current.snapshot_key:
            self._db.scheduler.schedule()
        return self.get(container.id)

    def delete(self, id: str) -> None:
        with self._db.write() as conn:
            cur = conn.execute("DELETE FROM containers WHERE namespace = ? AND id = ?", (self.namespace, id))
            if cur.rowcount == 0:
                raise NotFound(f"container {quote(id)}: not found")
        self._db.bump("containers", self.namespace)
        self._db.publish(self.namespace, "/containers/delete", ev.ContainerDelete(id=id))
        self._db.scheduler.schedule()

    def _put(self, conn: sqlite3.Connection, c: Container, created: int, updated: int, replace: bool = False) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        opts = c.runtime.options
        assert c.spec is not None
        conn.execute(
            f"{verb} INTO containers (namespace, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.namespace,
                c.id,
                dump_labels(c.labels),
                c.image,
                c.runtime.name,
                opts.type_url if opts is not None else None,
                opts.value if opts is not None else None,
                c.spec.type_url,
                c.spec.value,
                c.snapshotter,
                c.snapshot_key,
                _dump_extensions(c.extensions),
                created,
                updated,
            ),
        )


def _any(value: TypedValue | None) -> any_pb2.Any | None:
    return None if value is None else any_pb2.Any(type_url=value.type_url, value=value.value)


def _apply(current: Container, new: Container, paths: builtins.list[str]) -> Container:
    labels = dict(current.labels)
    extensions = dict(current.extensions)
    out = current
    for path in paths:
        if path == "labels" or path.startswith("labels."):
            merged = apply_label_paths(labels, new.labels, [path])
            assert merged is not None
            labels = merged
        elif path == "extensions":
            extensions = dict(new.extensions)
        elif path.startswith("extensions."):
            key = path[len("extensions.") :]
            if key in new.extensions:
                extensions[key] = new.extensions[key]
            else:
                extensions.pop(key, None)
        elif path == "spec":
            out = replace(out, spec=new.spec)
        elif path == "image":
            out = replace(out, image=new.image)
        elif path == "snapshotkey":
            out = replace(out, snapshot_key=new.snapshot_key)
        else:
            raise InvalidArgument(f"cannot update {quote(path)} field on {quote(current.id)}")
    return replace(out, labels=labels, extensions=extensions)
