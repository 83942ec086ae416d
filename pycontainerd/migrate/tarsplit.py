"""tar-split's metadata format, and the reassembly of a layer's exact tar stream from it.

Docker keeps no layer tarball.  When a layer is unpacked it stores, beside
the extracted files, a tar-split record (``tar-split.json.gz``): gzip of one
JSON object per line, in stream order, of two kinds:

* ``{"type": 2, "payload": <base64>}`` — a *segment*: raw bytes of the
  stream that are not file contents (headers, extended headers, padding, the
  end-of-archive blocks), at most 1 MiB each;
* ``{"type": 1, "name": ..., "size": N, "payload": <base64>}`` — a *file*:
  the contents of the entry ``name`` (``name_raw``, base64, when the name is
  not UTF-8), ``size`` bytes, whose CRC-64/ISO is the 8-byte payload.
  Every tar entry has one, with ``size`` absent or 0 when it carries no data
  (directories, links, whiteouts).

The original stream is the segments verbatim with each file's contents
between them; only files with a size are read, so the whiteouts, which the
tar-split names ``.wh.*`` while overlay2 keeps them as 0:0 character
devices and opaque xattrs, never need to exist on disk under those names.

:class:`TarSplitDecoder` and :func:`parse_entry` are pure (bytes in,
entries out).  :class:`TarAssembler` does the reassembly through a
:class:`FileSource`, streaming in bounded chunks, checking each file's size
and CRC, and hashing the stream so the caller can hold it against the diff id.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final, Protocol

from ..errors import InvalidArgument, quote
from ._crc64 import Crc64
from ._safefs import clean_name, os_error

__all__ = [
    "FILE",
    "MAX_LINE",
    "SEGMENT",
    "Assembled",
    "FileEntry",
    "FileSource",
    "Segment",
    "TarAssembler",
    "TarSplitDecoder",
    "TarSplitEntry",
    "parse_entry",
    "read_entries",
]

FILE: Final = 1
SEGMENT: Final = 2
# A segment holds at most 1 MiB (4/3 of that in base64); anything longer is not tar-split.
MAX_LINE: Final = 4 << 20
CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Segment:
    """Raw bytes of the stream: headers and padding."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A tar entry's contents: ``size`` bytes of the file ``name`` (raw bytes), with that CRC."""

    name: bytes
    size: int
    crc64: bytes | None

    @property
    def display(self) -> str:
        return self.name.decode(errors="backslashreplace")


TarSplitEntry = Segment | FileEntry


def _b64(value: object, what: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument(f"{what} is not valid base64") from exc


def parse_entry(line: bytes) -> TarSplitEntry:
    """One JSON line of tar-split as an entry; :class:`InvalidArgument` saying what is wrong with it."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidArgument("not a JSON object")
    kind = obj.get("type")
    if kind == SEGMENT:
        return Segment(_b64(obj.get("payload"), "a segment's payload"))
    if kind != FILE or isinstance(kind, bool):
        raise InvalidArgument(f"unknown entry type {json.dumps(kind)}")
    raw = obj.get("name_raw")
    if raw is not None:
        name = _b64(raw, "name_raw")
    else:
        text = obj.get("name", "")
        if not isinstance(text, str):
            raise InvalidArgument("a file entry's name is not a string")
        name = text.encode()
    if not name:
        raise InvalidArgument("a file entry without a name")
    size = obj.get("size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"file {quote(name.decode(errors='replace'))}: size {json.dumps(size)} is not a count")
    crc = _b64(obj.get("payload"), "a file entry's checksum") or None
    if size > 0 and (crc is None or len(crc) != 8):
        raise InvalidArgument(f"file {quote(name.decode(errors='replace'))}: no 8-byte CRC-64 for its {size} bytes")
    return FileEntry(name, size, crc)


class TarSplitDecoder:
    """Feed the decompressed bytes of a tar-split record; take entries as complete lines arrive.

    Lines are bounded by :data:`MAX_LINE`; two file entries for the same
    (cleaned) name are refused, as tar-split's own reader refuses them.  Call
    :meth:`close` at the end: a last line without its newline is still read,
    and a record without a single entry is refused.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._line = 0
        self._entries = 0
        self._seen: set[tuple[str, ...]] = set()
        self._closed = False

    def feed(self, data: bytes) -> list[TarSplitEntry]:
        if self._closed:
            raise InvalidArgument("tar-split: data after the end")
        self._buffer += data
        out: list[TarSplitEntry] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            self._take(bytes(self._buffer[start:end]), out)
            start = end + 1
        del self._buffer[:start]
        if len(self._buffer) > MAX_LINE:
            raise InvalidArgument(f"tar-split line {self._line + 1}: longer than {MAX_LINE} bytes")
        return out

    def close(self) -> list[TarSplitEntry]:
        out: list[TarSplitEntry] = []
        if not self._closed:
            self._closed = True
            if self._buffer.strip():
                self._take(bytes(self._buffer), out)
            self._buffer.clear()
            if self._entries == 0:
                raise InvalidArgument("tar-split: no entries")
        return out

    def _take(self, line: bytes, out: list[TarSplitEntry]) -> None:
        self._line += 1
        if not line.strip():
            return
        try:
            entry = parse_entry(line)
            if isinstance(entry, FileEntry):
                key = clean_name(entry.name)
                if key in self._seen:
                    raise InvalidArgument(f"file {quote(entry.display)} appears twice")
                self._seen.add(key)
        except InvalidArgument as exc:
            raise InvalidArgument(f"tar-split line {self._line}: {exc}") from exc
        self._entries += 1
        out.append(entry)


def read_entries(stream: BinaryIO, chunk_size: int = CHUNK) -> Iterator[TarSplitEntry]:
    """The entries of a gzip-compressed tar-split record read from ``stream``, lazily.

    A truncated or corrupt gzip stream is :class:`InvalidArgument`.
    """
    decoder = TarSplitDecoder()
    try:
        with gzip.GzipFile(fileobj=stream, mode="rb") as gz:
            while chunk := gz.read(chunk_size):
                yield from decoder.feed(chunk)
    except EOFError as exc:
        raise InvalidArgument(f"tar-split: the gzip stream is truncated ({exc})") from exc
    except (OSError, zlib.error) as exc:
        raise InvalidArgument(f"tar-split: not a valid gzip stream ({exc})") from exc
    yield from decoder.close()


class FileSource(Protocol):
    """Where a file entry's contents come from (for Docker: the layer's overlay2 ``diff`` directory)."""

    def open(self, name: bytes) -> BinaryIO:
        """The regular file the tar entry ``name`` was extracted to, opened for reading.

        Raises a :class:`~pycontainerd.errors.ContainerdError` naming the
        file when it is missing, not a regular file, or out of bounds.
        """
        ...


@dataclass(frozen=True, slots=True)
class Assembled:
    """What a reassembly produced: the stream's sha256 digest (``sha256:…``), its length and entry count."""

    digest: str
    size: int
    files: int


class TarAssembler:
    """The layer's tar stream, rebuilt from tar-split ``entries`` and the files ``source`` opens.

    Iterate :meth:`chunks` (or call :meth:`write_to`); each chunk is at most
    ``chunk_size`` bytes except for segments, which tar-split bounds itself.
    Files are read by the names the record gives; a file whose size or
    CRC-64 differs is :class:`InvalidArgument` naming it (``check_crc`` off
    leaves only the size check, and the digest, to the caller).  After the
    iteration :attr:`result` holds the digest and length; with ``hashed``
    off its digest is "", for a consumer that hashes the chunks itself.
    """

    def __init__(
        self,
        entries: Iterable[TarSplitEntry],
        source: FileSource,
        *,
        check_crc: bool = True,
        chunk_size: int = CHUNK,
        hashed: bool = True,
    ) -> None:
        self._entries = entries
        self._source = source
        self._check_crc = check_crc
        self._hashed = hashed
        self._chunk_size = chunk_size
        self._result: Assembled | None = None

    @property
    def result(self) -> Assembled:
        if self._result is None:
            raise InvalidArgument("the tar stream has not been read to its end")
        return self._result

    def chunks(self) -> Iterator[bytes]:
        sha = hashlib.sha256() if self._hashed else None
        size = files = 0
        for entry in self._entries:
            if isinstance(entry, Segment):
                if entry.payload:
                    if sha is not None:
                        sha.update(entry.payload)
                    size += len(entry.payload)
                    yield entry.payload
                continue
            files += 1
            if entry.size == 0:
                continue
            for chunk in self._contents(entry):
                if sha is not None:
                    sha.update(chunk)
                size += len(chunk)
                yield chunk
        self._result = Assembled("sha256:" + sha.hexdigest() if sha is not None else "", size, files)

    def _contents(self, entry: FileEntry) -> Iterator[bytes]:
        try:
            yield from self._read(entry)
        except OSError as exc:  # the disk failed under a file (EIO): named, not a traceback
            raise os_error(f"file {entry.display}", exc) from exc

    def _read(self, entry: FileEntry) -> Iterator[bytes]:
        crc = Crc64() if self._check_crc else None
        left = entry.size
        with self._source.open(entry.name) as f:
            while left > 0:
                chunk = f.read(min(left, self._chunk_size))
                if not chunk:
                    break
                left -= len(chunk)
                if crc is not None:
                    crc.update(chunk)
                yield chunk
            if left > 0:
                raise InvalidArgument(
                    f"file {quote(entry.display)}: {entry.size - left} bytes on disk, the tar-split says {entry.size}"
                )
            if f.read(1):
                raise InvalidArgument(
                    f"file {quote(entry.display)}: longer on disk than the {entry.size} bytes recorded"
                )
        if crc is not None and crc.digest() != entry.crc64:
            raise InvalidArgument(f"file {quote(entry.display)}: contents differ from the tar-split's CRC-64")

    def write_to(self, write: Callable[[bytes], object]) -> Assembled:
        for chunk in self.chunks():
            write(chunk)
        return self.result
