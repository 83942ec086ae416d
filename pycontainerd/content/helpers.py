"""Operations built on the narrowest content roles they need."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import BinaryIO

from ..errors import AlreadyExists, Unavailable
from ._types import Ingester, Manager, Provider, ReaderAt, Writer

CHUNK = 1 << 20


def open_writer(store: Ingester, ref: str, total: int = 0, expected: str = "", wait: float = 10.0) -> Writer:
    """Open an ingest, waiting while another writer holds the ref."""
    deadline = time.monotonic() + wait
    delay = 0.01
    while True:
        try:
            return store.writer(ref, total=total, expected=expected)
        except Unavailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def copy_into(
    w: Writer,
    chunks: Iterable[bytes],
    size: int = 0,
    expected: str = "",
    labels: Mapping[str, str] | None = None,
) -> str:
    """Write ``chunks`` after whatever ``w`` holds and commit; returns the digest.

    A blob that already exists counts as success, as containerd's helpers do.
    """
    try:
        for chunk in chunks:
            if chunk:
                w.write(chunk)
        return w.commit(size=size, expected=expected, labels=labels)
    except AlreadyExists:
        return expected or w.digest()
    finally:
        w.close()


def write_blob(
    store: Ingester, ref: str, data: bytes, expected: str = "", labels: Mapping[str, str] | None = None
) -> str:
    """Store ``data`` as one blob through an ingest named ``ref``."""
    try:
        w = open_writer(store, ref, total=len(data), expected=expected)
    except AlreadyExists:
        return expected
    if w.status().offset:
        w.truncate(0)
    return copy_into(w, (data[i : i + CHUNK] for i in range(0, len(data), CHUNK)), len(data), expected, labels)


def ensure_labels(
    store: Manager, digest: str, labels: Mapping[str, str], merge: Callable[[str, str, str], str] | None = None
) -> None:
    """Give an existing blob ``labels``, changing only those that differ (one Info, at most one Update).

    A blob another namespace shared into this one, or one an earlier pull
    wrote, lacks the labels this caller needs.  ``merge(old, new)`` combines a
    value already there with the wanted one (``key, old, new``), for list-valued labels.
    """
    info = store.info(digest)
    wanted = {k: merge(k, info.labels.get(k, ""), v) if merge else v for k, v in labels.items()}
    changed = {k: v for k, v in wanted.items() if info.labels.get(k) != v}
    if changed:
        store.update(replace(info, labels={**info.labels, **changed}), [f"labels.{k}" for k in changed])


def read_blob(store: Provider, digest: str) -> bytes:
    """The whole blob in memory; for manifests and configs, not layers."""
    r = store.reader_at(digest)
    try:
        parts = []
        off = 0
        while off < r.size:
            b = r.read_at(off, min(CHUNK, r.size - off))
            if not b:
                break
            parts.append(b)
            off += len(b)
        return b"".join(parts)
    finally:
        r.close()


class BlobFile(io.RawIOBase):
    """A committed blob as a read-only file, for code that wants one (tar writers, HTTP uploads).

    ``on_read`` hears the offset after every read, to report progress.
    """

    def __init__(self, reader: ReaderAt, on_read: Callable[[int], None] | None = None) -> None:
        self._r = reader
        self._off = 0
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(b).cast("B")
        n = min(len(view), self._r.size - self._off)
        if n <= 0:
            return 0
        data = self._r.read_at(self._off, n)
        view[: len(data)] = data
        self._off += len(data)
        if self._on_read is not None:
            self._on_read(self._off)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._r.close()
        super().close()


def open_blob(store: Provider, digest: str, on_read: Callable[[int], None] | None = None) -> BinaryIO:
    """A buffered file over a committed blob; raises NotFound."""
    return io.BufferedReader(BlobFile(store.reader_at(digest), on_read), CHUNK)
