"""The content store over gRPC: containerd's Content service as a :class:`~pycontainerd.content.Store`.

Because the proxy presents the same four roles as the local store, the
helpers (``write_blob``, ``copy_into``, pulls) run unchanged against a remote
daemon, real containerd or ours.

The writer speaks the Write stream the way containerd's own remote writer
does: a STAT opens (or resumes) the ingest and reports its offset, each WRITE
carries the offset it expects the data to land at (offset 0 on a non-empty
ingest means "start over"), and a COMMIT carries the final size, digest and
labels.  Data goes in messages of at most 1 MiB, far under the 16 MiB limit.

Unlike containerd's remote writer, which waits for the answer to each
message before it sends the next, WRITEs are pipelined: up to
:data:`WRITE_WINDOW` of them are on the wire at once, each carrying the
offset it will land at if those before it land in full.  The server reads
a stream's messages in order and answers each in turn (containerd's server
as ours), so the messages and answers are the same; only the client's wait
for each round trip is gone, so a writer that makes its data as it sends it
(a migration rebuilding a layer from tar-split while applying it) goes on
while the daemon stores the previous MiB.  A
short or refused WRITE is therefore reported by a later call: the next
``write``, ``status``, ``truncate`` or ``commit``.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence

from google.protobuf.field_mask_pb2 import FieldMask

from ..api.convert import info_from_pb, info_to_pb, status_from_pb, time_from_pb
from ..api.services.content.v1 import content_pb2 as pb
from ..api.services.content.v1 import content_pb2_grpc
from ..client._rpc import Connection, translated
from ..errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, Unknown
from ._digest import validate_digest
from ._types import Info, Status

__all__ = ["CHUNK", "ContentStore", "RemoteReaderAt", "RemoteWriter"]

CHUNK = 1 << 20
READ_WINDOW = 64 << 20
WRITE_WINDOW = 8  # WRITE messages sent and not yet answered


class ContentStore:
    """Every role of the content store, answered by a remote daemon in one namespace."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stub = conn.stub(content_pb2_grpc.ContentStub)

    # Provider

    def reader_at(self, digest: str) -> RemoteReaderAt:
        """Asks for the size first, as a ReaderAt must know it; raises NotFound."""
        return RemoteReaderAt(self._conn, self._stub, digest, self.info(digest).size)

    # Manager

    def info(self, digest: str) -> Info:
        resp = self._conn.unary(self._stub.Info, pb.InfoRequest(digest=digest))
        return info_from_pb(resp.info)

    def update(self, info: Info, fieldpaths: Sequence[str] = ()) -> Info:
        req = pb.UpdateRequest(info=info_to_pb(info), update_mask=FieldMask(paths=list(fieldpaths)))
        return info_from_pb(self._conn.unary(self._stub.Update, req).info)

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        for resp in self._conn.stream(self._stub.List, pb.ListContentRequest(filters=list(filters))):
            for m in resp.info:
                yield info_from_pb(m)

    def delete(self, digest: str) -> None:
        self._conn.unary(self._stub.Delete, pb.DeleteContentRequest(digest=digest))

    # IngestManager

    def status(self, ref: str) -> Status:
        return status_from_pb(self._conn.unary(self._stub.Status, pb.StatusRequest(ref=ref)).status)

    def list_statuses(self, filters: Sequence[str] = ()) -> list[Status]:
        resp = self._conn.unary(self._stub.ListStatuses, pb.ListStatusesRequest(filters=list(filters)))
        return [status_from_pb(s) for s in resp.statuses]

    def abort(self, ref: str) -> None:
        self._conn.unary(self._stub.Abort, pb.AbortRequest(ref=ref))

    # Ingester

    def writer(self, ref: str, total: int = 0, expected: str = "") -> RemoteWriter:
        """Open the ingest; Unavailable while another writer holds it, AlreadyExists if ``expected`` is stored."""
        if not ref:
            raise InvalidArgument("ref must not be empty")
        if expected:
            validate_digest(expected)
        return RemoteWriter(self._conn, self._stub, ref, total, expected)


class RemoteReaderAt:
    """Reads ranges of one blob, one Read call per range."""

    def __init__(self, conn: Connection, stub: content_pb2_grpc.ContentStub, digest: str, size: int) -> None:
        self._conn = conn
        self._stub = stub
        self._digest = digest
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, n: int) -> bytes:
        n = min(n, self._size - offset)
        if n <= 0:
            return b""
        req = pb.ReadContentRequest(digest=self._digest, offset=offset, size=n)
        parts: list[bytes] = []
        got = 0
        for resp in self._conn.stream(self._stub.Read, req):
            parts.append(resp.data)
            got += len(resp.data)
            if got >= n:
                break
        return b"".join(parts)[:n]

    def chunks(self, offset: int = 0, window: int = READ_WINDOW) -> Iterator[bytes]:
        """The blob from ``offset`` to its end, as the server sends it.

        One Read call per ``window`` bytes (64 MiB), so the per-call deadline bounds a
        window rather than a whole (possibly huge) blob.
        """
        while offset < self._size:
            n = min(window, self._size - offset)
            req = pb.ReadContentRequest(digest=self._digest, offset=offset, size=n)
            got = 0
            for resp in self._conn.stream(self._stub.Read, req):
                if resp.data:
                    yield resp.data
                    got += len(resp.data)
            if got == 0:
                raise Unknown(f"read of {self._digest} at {offset} returned no data")
            offset += got

    def close(self) -> None:
        """Nothing is held between reads."""


class _Requests:
    """Feeds a request stream from the caller's thread; grpc pulls from another."""

    _END = object()

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[object] = queue.SimpleQueue()

    def __iter__(self) -> Iterator[pb.WriteContentRequest]:
        while True:
            item = self._q.get()
            if item is self._END:
                return
            assert isinstance(item, pb.WriteContentRequest)
            yield item

    def put(self, req: pb.WriteContentRequest) -> None:
        self._q.put(req)

    def end(self) -> None:
        self._q.put(self._END)


class RemoteWriter:
    """One Write stream holding the lock on one ingest ref.

    A reply that takes longer than the connection's timeout cancels the
    stream.  ``_pending`` holds, for each WRITE not yet answered, the offset
    it was sent for and its length; every other message first waits for
    those answers, so it is answered with the state they left.
    """

    def __init__(
        self, conn: Connection, stub: content_pb2_grpc.ContentStub, ref: str, total: int, expected: str
    ) -> None:
        self._ref = ref
        self._expected = expected
        self._timeout = conn.timeout
        self._requests = _Requests()
        self._closed = False
        self._expired = False
        self._digest = ""
        self._pending: deque[tuple[int, int]] = deque()
        with translated():
            self._call = stub.Write(iter(self._requests), metadata=conn.metadata)
        try:
            resp = self._send(pb.WriteContentRequest(action=pb.STAT, ref=ref, total=total, expected=expected))
        except BaseException:
            self.close()
            raise
        self._offset = self._sent = resp.offset  # answered, and where the next WRITE lands

    def _put(self, req: pb.WriteContentRequest) -> None:
        if self._closed:
            raise FailedPrecondition(f"writer for {self._ref!r} is closed")
        self._requests.put(req)

    def _receive(self) -> pb.WriteContentResponse:
        """The next answer, within the timeout."""
        timer = threading.Timer(self._timeout, self._expire) if self._timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            with translated():
                resp: pb.WriteContentResponse = next(self._call)
        except StopIteration:
            self._finish()
            raise Unknown(f"write stream for {self._ref!r} ended without a reply") from None
        except BaseException:
            self._finish()
            if self._expired:
                raise DeadlineExceeded(f"no reply on write stream for {self._ref!r} within {self._timeout}s") from None
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if resp.digest:
            self._digest = resp.digest
        return resp

    def _settle(self) -> None:
        """Take the answer to the oldest WRITE in flight; a short write raises Unknown (and ends the stream)."""
        offset, length = self._pending.popleft()
        try:
            resp = self._receive()
        except BaseException:
            self._pending.clear()  # the stream is over: nothing more will be answered
            raise
        n = resp.offset - offset
        self._offset = resp.offset
        if n < length:
            self._pending.clear()
            self._finish()
            raise Unknown(f"short write to {self._ref!r}: {max(n, 0)} of {length} bytes")

    def _drain(self) -> None:
        while self._pending:
            self._settle()

    def _send(self, req: pb.WriteContentRequest) -> pb.WriteContentResponse:
        """Send ``req`` once every WRITE in flight is answered, and wait for its own answer."""
        self._drain()
        self._put(req)
        return self._receive()

    def _expire(self) -> None:
        self._expired = True
        self._call.cancel()

    def _finish(self) -> None:
        """End our side of the stream so grpc's request thread stops waiting."""
        if not self._closed:
            self._closed = True
            self._requests.end()

    def write(self, data: bytes) -> int:
        """Send ``data`` in 1 MiB messages without waiting for their answers; returns ``len(data)``.

        At most :data:`WRITE_WINDOW` messages are unanswered: beyond that,
        the oldest answer is awaited first.  A short write raises Unknown
        here or at the next call (see the module's docstring).
        """
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            if len(self._pending) >= WRITE_WINDOW:
                self._settle()
            piece = bytes(view[start : start + CHUNK])
            self._put(pb.WriteContentRequest(action=pb.WRITE, offset=self._sent, data=piece))
            self._pending.append((self._sent, len(piece)))
            self._sent += len(piece)
        return len(view)

    def digest(self) -> str:
        """The digest of what was written: the server says it in its answers, so every WRITE in flight is awaited."""
        self._drain()
        return self._digest

    def status(self) -> Status:
        resp = self._send(pb.WriteContentRequest(action=pb.STAT))
        return Status(
            ref=self._ref,
            offset=resp.offset,
            total=resp.total,
            expected=self._expected,
            started_at=time_from_pb(resp.started_at),
            updated_at=time_from_pb(resp.updated_at),
        )

    def truncate(self, size: int) -> None:
        """Restart the ingest now: an empty WRITE at offset 0 makes the server truncate."""
        if size != 0:
            raise InvalidArgument(f"truncate to {size}: only 0 is supported")
        resp = self._send(pb.WriteContentRequest(action=pb.WRITE, offset=0))
        self._offset = self._sent = resp.offset

    def commit(self, size: int = 0, expected: str = "", labels: Mapping[str, str] | None = None) -> str:
        """Commit and end the stream; FailedPrecondition on a size or digest mismatch."""
        try:
            if expected:
                validate_digest(expected)
            self._drain()
            req = pb.WriteContentRequest(
                action=pb.COMMIT, total=size, offset=self._offset, expected=expected, labels=dict(labels or {})
            )
            resp = self._send(req)
            if size and resp.offset != size:
                raise FailedPrecondition(f"unexpected commit size {resp.offset}, expected {size}")
            if expected and resp.digest != expected:
                raise FailedPrecondition(f"unexpected commit digest {resp.digest}, expected {expected}")
            self._offset = resp.offset
            return resp.digest
        finally:
            self.close()

    def close(self) -> None:
        """End the stream and wait for the server to release the ref, so it can be reopened at once."""
        if self._closed and self._call.done():
            return
        self._finish()
        timer = threading.Timer(self._timeout, self._call.cancel) if self._timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            for _ in self._call:
                pass
        except Exception:
            pass  # the stream's outcome was already reported, or does not matter once closed
        finally:
            if timer is not None:
                timer.cancel()

    def __enter__(self) -> RemoteWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
