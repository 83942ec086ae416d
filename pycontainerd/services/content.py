"""The Content gRPC service: containerd.services.content.v1.Content over the metadata store.

Each call works on the content store of its namespace (and lease).  The
Write stream follows containerd's server message by message, because its
clients (``ctr``, the Go client's remote writer) depend on those details:

* the first message must carry the ref, which stays locked by this stream
  until it ends;
* every response carries the current offset; STAT adds digest, total and
  the ingest's start/update times; fields once set stay set in later
  responses (containerd reuses one response message);
* WRITE and COMMIT with a non-zero offset must be at the current offset
  (OUT_OF_RANGE otherwise); offset 0 over existing data restarts the ingest;
* an ``expected`` digest that is already stored ends the stream with
  ALREADY_EXISTS and removes the ingest;
* COMMIT (which may carry the last data) ends the stream.

Write is the hot path of ``ctr content ingest`` and of every pull: one
thread-pool hop per message, no metadata lookup per message.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator

import grpc
from google.protobuf.empty_pb2 import Empty

from ..api.convert import info_to_pb, status_to_pb, time_from_pb, timestamp
from ..api.services.content.v1 import content_pb2 as pb
from ..api.services.content.v1 import content_pb2_grpc as pb_grpc
from ..content import Info, ReaderAt, Store, Writer, read_blob, validate_digest
from ..errors import AlreadyExists, InvalidArgument, NotFound, OutOfRange, Unknown
from ..metadata import DB, ContentStore
from .rpc import field_paths, guarded, namespace_and_lease, namespace_of, offload

__all__ = ["READ_CHUNK", "ContentService"]

READ_CHUNK = 1 << 20
SMALL_READ = 64 << 10
MAX_CACHED_INFOS = 100_000
LIST_BATCH = 1000  # a few hundred KiB per message: far below the 16 MiB limit, few stream writes


def _digest_arg(digest: str) -> str:
    try:
        return validate_digest(digest)
    except InvalidArgument:
        raise InvalidArgument(f"{digest!r} failed validation") from None


class _SmallBlobs:
    """Whole small blobs (manifests, configs) by digest, least recently used out first.

    Blobs never change, so an entry is never stale; whether the caller's
    namespace may see the blob is decided by the Info lookup before it.
    """

    def __init__(self, budget: int = 16 << 20) -> None:
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._budget = budget
        self._used = 0

    def get(self, digest: str) -> bytes | None:
        data = self._blobs.get(digest)
        if data is not None:
            self._blobs.move_to_end(digest)
        return data

    def put(self, digest: str, data: bytes) -> None:
        if digest in self._blobs or len(data) > self._budget // 64:
            return
        self._blobs[digest] = data
        self._used += len(data)
        while self._used > self._budget:
            _, old = self._blobs.popitem(last=False)
            self._used -= len(old)


class ContentService(pb_grpc.ContentServicer):
    """Adapter from the Content API to ``DB.content(namespace, lease)``.

    ``ctr images ls`` asks for the Info and the bytes of every manifest and
    config, thousands of calls each time: Info records are kept per
    namespace until its content generation changes, and small blobs are kept
    by digest, so repeated listings touch neither SQLite nor the disk.
    """

    def __init__(self, db: DB) -> None:
        self._db = db
        # Each namespace's unfiltered list as last sent, with the generation it was made at.
        self._lists: dict[str, tuple[int, list[pb.ListContentResponse]]] = {}
        self._infos: dict[str, tuple[int, dict[str, pb.InfoResponse]]] = {}
        self._small = _SmallBlobs()

    def _info(self, namespace: str, digest: str) -> pb.InfoResponse:
        """The Info answer for ``digest``, from the namespace's cache while its content generation holds.

        The answer itself is kept, so a hit costs neither a query nor a conversion.
        """
        generation = self._db.generation("content", namespace)
        cached = self._infos.get(namespace)
        if cached is None or cached[0] != generation or len(cached[1]) > MAX_CACHED_INFOS:
            cached = (generation, {})
            self._infos[namespace] = cached
        resp = cached[1].get(digest)
        if resp is None:
            info = self._db.content(namespace).info(digest)
            resp = cached[1][digest] = pb.InfoResponse(info=info_to_pb(info))
        return resp

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_ContentServicer_to_server(guarded(self), server)

    def _store(self, context: grpc.aio.ServicerContext) -> ContentStore:
        return self._db.content(*namespace_and_lease(context))

    async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> pb.InfoResponse:
        return self._info(namespace_of(context), _digest_arg(request.digest))  # a point lookup: no thread hop

    async def Update(self, request: pb.UpdateRequest, context: grpc.aio.ServicerContext) -> pb.UpdateResponse:
        digest = _digest_arg(request.info.digest)
        store = self._store(context)
        info = Info(
            digest=digest,
            size=request.info.size,
            created_at=time_from_pb(request.info.created_at),
            updated_at=time_from_pb(request.info.updated_at),
            labels=dict(request.info.labels),
        )
        updated = await offload(store.update, info, field_paths(request.update_mask))
        return pb.UpdateResponse(info=info_to_pb(updated))

    async def List(
        self, request: pb.ListContentRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ListContentResponse]:
        store = self._store(context)
        filters = list(request.filters)
        generation = self._db.generation("content", store.namespace)
        cached = self._lists.get(store.namespace)
        if filters or cached is None or cached[0] != generation:

            def convert() -> list[pb.ListContentResponse]:
                infos = [info_to_pb(x) for x in store.walk(filters)]
                return [
                    pb.ListContentResponse(info=infos[i : i + LIST_BATCH]) for i in range(0, len(infos), LIST_BATCH)
                ]

            cached = (generation, await offload(convert))
            if not filters:
                self._lists[store.namespace] = cached
        for batch in cached[1]:
            yield batch

    async def Delete(self, request: pb.DeleteContentRequest, context: grpc.aio.ServicerContext) -> Empty:
        digest = _digest_arg(request.digest)
        store = self._store(context)
        await offload(store.delete, digest)
        return Empty()

    async def Read(  # type: ignore[override]
        self, request: pb.ReadContentRequest, context: grpc.aio.ServicerContext
    ) -> None:
        """A coroutine writing to the stream rather than an async generator: one frame less per call."""
        digest = _digest_arg(request.digest)
        store = self._store(context)
        if 0 < request.size <= SMALL_READ:  # manifests and configs: cheaper than a thread hop
            size = self._info(store.namespace, digest).info.size  # NotFound if the namespace cannot see it
            whole = self._small.get(digest) if size <= SMALL_READ else None
            if whole is None and size <= SMALL_READ:
                whole = read_blob(store, digest)
                self._small.put(digest, whole)
            if whole is not None:
                offset = max(request.offset, 0)
                if offset > len(whole):
                    raise OutOfRange(f"read past object length {len(whole)} bytes")
                chunk = whole[offset : offset + request.size]
                if chunk:
                    await context.write(pb.ReadContentResponse(offset=0, data=chunk))
                return
            reader, start, end, data = _open_read(store, digest, request.offset, request.size)
        else:
            reader, start, end, data = await offload(_open_read, store, digest, request.offset, request.size)
        if reader is None:  # all of it came with the open
            if data:
                await context.write(pb.ReadContentResponse(offset=0, data=data))
            return
        ahead: asyncio.Future[bytes] | None = None
        try:
            pos = start + len(data)
            while data:
                # Read the next chunk while this one is on its way to the client.
                if pos < end:
                    ahead = asyncio.ensure_future(offload(reader.read_at, pos, min(READ_CHUNK, end - pos)))
                # Offsets count from the start of this read, as containerd's do.
                await context.write(pb.ReadContentResponse(offset=pos - len(data) - start, data=data))
                data, ahead = (await ahead if ahead is not None else b""), None
                pos += len(data)
        finally:
            if ahead is not None:
                await asyncio.wait([ahead])
                if not ahead.cancelled():
                    ahead.exception()  # a failed read-ahead is moot once the stream ends
            await offload(reader.close)

    async def Status(self, request: pb.StatusRequest, context: grpc.aio.ServicerContext) -> pb.StatusResponse:
        store = self._store(context)
        return pb.StatusResponse(status=status_to_pb(await offload(store.status, request.ref)))

    async def ListStatuses(
        self, request: pb.ListStatusesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListStatusesResponse:
        store = self._store(context)
        statuses = await offload(store.list_statuses, list(request.filters))
        return pb.ListStatusesResponse(statuses=[status_to_pb(s) for s in statuses])

    async def Abort(self, request: pb.AbortRequest, context: grpc.aio.ServicerContext) -> Empty:
        store = self._store(context)
        await offload(store.abort, request.ref)
        return Empty()

    async def Write(
        self, request_iterator: AsyncIterator[pb.WriteContentRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WriteContentResponse]:
        store = self._store(context)
        session: _WriteSession | None = None
        try:
            async for req in request_iterator:
                if session is None:
                    if not req.ref:
                        raise InvalidArgument("first message must have a reference")
                    session = _WriteSession(store, req.ref, req.total, req.expected)
                    await offload(session.open)
                # The response object is reused; it is serialised before the next step runs.
                yield await offload(session.step, req)
                if req.action == pb.COMMIT:
                    return
        finally:
            if session is not None:
                await offload(session.close)


def _open_read(store: Store, digest: str, offset: int, size: int) -> tuple[ReaderAt | None, int, int, bytes]:
    """Open a blob and read its first chunk in one pool hop; returns (reader, start, end, chunk).

    Clients such as ``ctr content get`` read in many small ranges, so a range
    that fits in one chunk is served and closed here (the reader is None).
    """
    reader = store.reader_at(digest)
    try:
        offset = max(offset, 0)
        if offset > reader.size:
            raise OutOfRange(f"read past object length {reader.size} bytes")
        if size <= 0 or offset + size > reader.size:
            size = reader.size - offset
        first = reader.read_at(offset, min(READ_CHUNK, size)) if size else b""
        if len(first) >= size or not first:
            reader.close()
            return None, offset, offset + size, first
    except BaseException:
        reader.close()
        raise
    return reader, offset, offset + size, first


class _WriteSession:
    """One Write stream's writer and the state containerd keeps between messages.

    Its methods block; the service runs each on the thread pool.  They take a
    lock, because a cancelled call may close the writer while a step it no
    longer waits for is still running.
    """

    def __init__(self, store: Store, ref: str, total: int, expected: str) -> None:
        self.store = store
        self.ref = ref
        self.total = total
        self.expected = expected
        self.offset = 0
        self.writer: Writer | None = None
        self.resp = pb.WriteContentResponse()
        self._lock = threading.RLock()

    def open(self) -> None:
        with self._lock:
            self.writer = self.store.writer(self.ref, total=self.total, expected=self.expected)
            self.offset = self.writer.status().offset

    def close(self) -> None:
        with self._lock:
            if self.writer is not None:
                w, self.writer = self.writer, None
                w.close()

    def step(self, req: pb.WriteContentRequest) -> pb.WriteContentResponse:
        with self._lock:
            return self._step(req)

    def _step(self, req: pb.WriteContentRequest) -> pb.WriteContentResponse:
        w = self.writer
        if w is None:
            raise Unknown(f"writer for {self.ref} is closed")
        msg = self.resp
        msg.action = req.action
        msg.offset = self.offset
        if req.expected:
            self.expected = req.expected
            if self._exists(req.expected):
                self.close()
                try:
                    self.store.abort(self.ref)
                except NotFound:
                    pass
                raise AlreadyExists(f"blob with expected digest {req.expected} exists")
        if req.total > 0:
            self.total = req.total
        if req.action == pb.STAT:
            st = w.status()
            self.offset = st.offset
            msg.offset = st.offset
            msg.digest = w.digest()
            msg.started_at.CopyFrom(timestamp(st.started_at))
            msg.updated_at.CopyFrom(timestamp(st.updated_at))
            msg.total = self.total
        elif req.action in (pb.WRITE, pb.COMMIT):
            self._write(w, req)
            if req.action == pb.COMMIT:
                labels = dict(req.labels) or None
                msg.digest = w.commit(size=self.total, expected=self.expected, labels=labels)
            else:
                msg.digest = w.digest()
        else:
            raise InvalidArgument(f"unknown write action {req.action}")
        return msg

    def _write(self, w: Writer, req: pb.WriteContentRequest) -> None:
        if req.offset > 0 and req.offset != self.offset:
            raise OutOfRange(f"write @{req.offset} must occur at current offset {self.offset}")
        if req.offset == 0 and self.offset > 0:
            w.truncate(0)
            self.offset = 0
        if req.data:
            n = w.write(req.data)
            if n != len(req.data):
                raise Unknown(f"wrote {n} of {len(req.data)} bytes")
            self.offset += n
        self.resp.offset = self.offset

    def _exists(self, digest: str) -> bool:
        try:
            self.store.info(digest)
        except NotFound:
            return False
        return True
