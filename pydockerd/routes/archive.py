"""``docker cp``: ``HEAD``/``GET``/``PUT /containers/{id}/archive`` over the container's root (see containers/_archive).

A running container is reached through its init process's root, a stopped
one through its snapshot mounted on a private temporary directory; the
mount lasts as long as the request (a GET's whole tar) and is undone on
every path, the client going away included.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from functools import partial

from pycontainerd.errors import InvalidArgument, NotFound

from .._backend import Backend
from .._http import Request, Response
from .._router import Router
from ..containers import ContainerService
from ..containers._archive import STAT_HEADER, ContainerRoot, Found, rebase_name, stat_header
from ..containers._store import Record

__all__ = ["register"]

_BATCH = 1 << 20  # body bytes handed to the extracting thread at once


def register(r: Router, b: Backend) -> None:
    r.add("HEAD", "/containers/{id}/archive", partial(archive_head, b))
    r.add("GET", "/containers/{id}/archive", partial(archive_get, b))
    r.add("PUT", "/containers/{id}/archive", partial(archive_put, b), stream=True)


def _service(b: Backend) -> ContainerService:
    if b.containers is None:
        raise NotFound("containers are not served by this daemon")
    return b.containers


def _target(b: Backend, req: Request) -> tuple[ContainerService, Record, str]:
    svc = _service(b)
    record = svc.get(req.params["id"])
    path = req.arg("path")
    if not path:
        raise InvalidArgument("Path cannot be empty")
    if "\x00" in path:
        raise InvalidArgument(f"invalid path {path!r}")
    return svc, record, path


async def _open(b: Backend, svc: ContainerService, record: Record) -> ContainerRoot:
    pid = record.state.pid if record.state.running else 0
    return await b.call(ContainerRoot.open, svc.client, record.snapshotter, record.id, pid)


def _not_found(path: str, ref: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {ref}")


async def _stat(b: Backend, root: ContainerRoot, path: str, ref: str) -> tuple[str, Found]:
    try:
        ps, found = await b.call(root.stat, path)
    except NotFound:
        raise _not_found(path, ref) from None
    return stat_header(ps), found


async def archive_head(b: Backend, req: Request) -> Response:
    svc, record, path = _target(b, req)
    root = await _open(b, svc, record)
    try:
        header, found = await _stat(b, root, path, req.params["id"])
        found.close()
    finally:
        await b.call(root.close)
    return Response(200, b"", [(STAT_HEADER, header), ("Content-Type", "application/json")])


class _TarBody:
    """The tar as the response body: each piece made in a worker thread, everything closed once at the end.

    A lock keeps the closing from running beside a piece still being made
    (the client may leave in the middle of one).
    """

    def __init__(self, b: Backend, pieces: Iterator[bytes], found: Found, root: ContainerRoot) -> None:
        self._b = b
        self._pieces = pieces
        self._found = found
        self._root = root
        self._lock = threading.Lock()
        self._closed = False

    def __aiter__(self) -> _TarBody:
        return self

    def _next(self) -> bytes | None:
        with self._lock:
            if self._closed:
                return None
            return next(self._pieces, None)

    async def __anext__(self) -> bytes:
        chunk = await self._b.call(self._next)
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                close = getattr(self._pieces, "close", None)
                if close is not None:
                    close()
                self._found.close()
            finally:
                self._root.close()

    async def aclose(self) -> None:
        await asyncio.shield(self._b.call(self._close))


async def archive_get(b: Backend, req: Request) -> Response:
    svc, record, path = _target(b, req)
    root = await _open(b, svc, record)
    try:
        header, found = await _stat(b, root, path, req.params["id"])
    except BaseException:
        await b.call(root.close)
        raise
    body = _TarBody(b, root.tar(found, rebase_name(path)), found, root)
    svc.publish(record, "archive-path")
    return Response(200, body, [(STAT_HEADER, header), ("Content-Type", "application/x-tar")])


async def archive_put(b: Backend, req: Request) -> Response:
    svc, record, path = _target(b, req)
    no_overwrite = req.flag("noOverwriteDirNonDir")
    copy_ids = req.flag("copyUIDGID")
    root = await _open(b, svc, record)
    try:
        owner = await b.call(root.user_ids, str(record.config.get("User") or "")) if copy_ids else None
        try:
            unpacker = await b.call(partial(root.unpacker, path, no_overwrite_dir_non_dir=no_overwrite, owner=owner))
        except NotFound:
            raise _not_found(path, req.params["id"]) from None
        try:
            pending = bytearray()
            async for chunk in req.stream():
                pending += chunk
                if len(pending) >= _BATCH:
                    await b.call(unpacker.feed, bytes(pending))
                    pending.clear()
            if pending:
                await b.call(unpacker.feed, bytes(pending))
            await b.call(unpacker.finish)
        finally:
            await asyncio.shield(b.call(unpacker.close))
    finally:
        await asyncio.shield(b.call(root.close))
    svc.publish(record, "extract-to-dir")
    return Response(200, b"")
