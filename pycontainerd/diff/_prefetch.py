"""Read and decompress a stream on one thread, hash it on another, while the caller writes files.

Decompression (ISA-L, zstd) and SHA-256 release the GIL, so they run beside
the extraction's Python.  They run on threads of their own because each is
about as costly as the other on a big layer (ISA-L inflates about 850 MB/s,
SHA-256 hashes about 1.9 GB/s here): chained on one thread they would set
the pace alone, split they let the extraction set it.  A source may be a
stream, read into pooled buffers, or an iterator of the codec's own chunks,
handed on as they are (one copy fewer; the pool then only bounds how far
the reader runs ahead).  The reader fills a
small pool of buffers ahead of the consumer; the hasher passes each on once
hashed.  Buffers are recycled, so the consumer must let go of every view of
a chunk before asking for the next one (the tar parser does: it holds
nothing after NEED_DATA).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterator
from typing import BinaryIO, Final, cast

__all__ = ["Prefetcher"]

_EOF: Final = object()


class Prefetcher:
    """Chunks of ``stream`` (after ``first``, bytes already read from it), hashed as they go by.

    ``hash`` and ``size`` cover every byte handed out once iteration ends.
    Errors of the stream are raised from the iteration.  Use as a context
    manager: leaving it stops the thread.
    """

    def __init__(
        self,
        stream: BinaryIO | Iterator[bytes],
        first: bytes = b"",
        *,
        chunk_size: int = 1 << 20,
        depth: int = 6,
    ) -> None:
        self.hash = hashlib.sha256()
        self.size = 0
        self._stream = stream
        self._first = first
        self._free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
        self._read: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[object] = queue.SimpleQueue()
        for _ in range(depth):
            self._free.put(bytearray(chunk_size))
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="layer-reader", daemon=True)
        self._hasher = threading.Thread(target=self._hash, name="layer-hasher", daemon=True)
        self._thread.start()
        self._hasher.start()

    def _hash(self) -> None:
        """Hash each chunk the reader passes, in order, then hand it to the consumer; errors and the end pass too."""
        while True:
            item = self._read.get()
            if isinstance(item, tuple):
                view = cast(memoryview, item[0])
                self.hash.update(view)
                self.size += len(view)
            self._full.put(item)
            if not isinstance(item, tuple):
                return

    def _run(self) -> None:
        try:
            if self._first:
                self._read.put((memoryview(self._first), None))
            if not hasattr(self._stream, "read"):
                self._pass_chunks(self._stream)
                return
            readinto = getattr(self._stream, "readinto", None)
            while not self._stop:
                buf = self._free.get()
                if buf is None or self._stop:
                    break
                if readinto is not None:
                    n = readinto(buf)
                else:
                    data = self._stream.read(len(buf))
                    n = len(data)
                    buf[:n] = data
                if not n:
                    break
                self._read.put((memoryview(buf)[:n], buf))
            self._read.put(_EOF)
        except BaseException as e:  # handed to the consumer, raised there
            self._read.put(e)

    def _pass_chunks(self, chunks: Iterator[bytes]) -> None:
        """Hand on a source's own chunks; a pool buffer is taken per chunk only to bound how far it runs ahead."""
        for data in chunks:
            token = self._free.get()
            if token is None or self._stop:
                break
            self._read.put((memoryview(data), token))
        self._read.put(_EOF)

    def __iter__(self) -> Iterator[memoryview]:
        while True:
            item = self._full.get()
            if item is _EOF:
                return
            if isinstance(item, BaseException):
                raise item
            view, buf = cast(tuple[memoryview, bytearray | None], item)
            yield view
            if buf is not None:
                self._free.put(buf)

    def close(self) -> None:
        self._stop = True
        self._free.put(None)
        self._thread.join()
        self._read.put(_EOF)  # the hasher may be waiting for a reader that stopped early
        self._hasher.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
