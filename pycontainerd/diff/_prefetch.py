"""Read, decompress and hash a stream on a second thread while the caller writes files.

Decompression (ISA-L, zstd) and SHA-256 release the GIL, so on a machine
with two cores reading the layer costs the extraction almost nothing: the
reader fills a small pool of buffers ahead of the consumer, hashing each
before handing it over.  Buffers are recycled, so the consumer must let go of
every view of a chunk before asking for the next one (the tar parser does:
it holds nothing after NEED_DATA).
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

    def __init__(self, stream: BinaryIO, first: bytes = b"", *, chunk_size: int = 1 << 20, depth: int = 4) -> None:
        self.hash = hashlib.sha256()
        self.size = 0
        self._stream = stream
        self._first = first
        self._free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
        self._full: queue.SimpleQueue[object] = queue.SimpleQueue()
        for _ in range(depth):
            self._free.put(bytearray(chunk_size))
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="layer-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if self._first:
                self.hash.update(self._first)
                self.size += len(self._first)
                self._full.put((memoryview(self._first), None))
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
                view = memoryview(buf)[:n]
                self.hash.update(view)
                self.size += n
                self._full.put((view, buf))
            self._full.put(_EOF)
        except BaseException as e:  # handed to the consumer, raised there
            self._full.put(e)

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

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
