"""A tar reader that never does I/O: feed it bytes, take entries and their data back.

It reads the formats layers come in: ustar (name prefix), POSIX pax
extended headers (``x``; global ``g`` ones are read and ignored), GNU long
names and long link names (``L``/``K``) and GNU's atime field, V7 headers.
Sparse files and other exotic types are refused.

Usage::

    p = TarParser()
    p.feed(chunk)
    while (ev := p.next_event()) is not NEED_DATA:
        ...  # a TarEntry, then memoryviews of its data, ..., then END
    ...
    p.end_of_input()  # raises if the archive stopped inside an entry

Data events are slices of the fed chunk (no copy); they are valid until the
next ``feed``.  After NEED_DATA the parser holds no reference to the chunk.
Entries whose type carries no data (links, directories, devices, FIFOs)
yield no data, whatever their size field says.

Every failure is :class:`~pycontainerd.errors.InvalidArgument` with the
entry's name when it is known, or ResourceExhausted when the archive
oversteps a :class:`~pycontainerd.limits.Limits` bound (extended headers or
extended attributes of one entry, the number of entries).
"""

from __future__ import annotations

import base64
import enum
import os
import urllib.parse
import zlib
from dataclasses import dataclass, field
from typing import Final

from ..errors import InvalidArgument, quote
from ..limits import Limits, current, exceeded

__all__ = [
    "END",
    "MAX_EXTENSION",
    "MAX_NAME",
    "NEED_DATA",
    "EntryType",
    "TarEntry",
    "TarParser",
    "parse_pax_records",
]

BLOCK: Final = 512
MAX_EXTENSION: Final = Limits.max_header_size  # the default bound on one entry's extended headers
MAX_NAME: Final = 4096  # longest path or link target, in bytes (PATH_MAX)

_ZERO_BLOCK: Final = bytes(BLOCK)


class EntryType(enum.Enum):
    REG = "regular file"
    LINK = "hard link"
    SYMLINK = "symbolic link"
    CHAR = "character device"
    BLOCK = "block device"
    DIR = "directory"
    FIFO = "fifo"


@dataclass(slots=True)
class TarEntry:
    name: str
    type: EntryType
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime_ns: int = 0
    atime_ns: int | None = None
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


class _Marker:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA: Final = _Marker("NEED_DATA")
END: Final = _Marker("END")

_TYPES: Final[dict[int, EntryType]] = {
    ord("0"): EntryType.REG,
    0: EntryType.REG,
    ord("7"): EntryType.REG,  # contiguous file: a regular file everywhere that matters
    ord("1"): EntryType.LINK,
    ord("2"): EntryType.SYMLINK,
    ord("3"): EntryType.CHAR,
    ord("4"): EntryType.BLOCK,
    ord("5"): EntryType.DIR,
    ord("6"): EntryType.FIFO,
}
_PAX, _PAX_GLOBAL, _GNU_NAME, _GNU_LINK = ord("x"), ord("g"), ord("L"), ord("K")
_REFUSED: Final[dict[int, str]] = {
    ord("S"): "GNU sparse files are not supported",
    ord("V"): "GNU volume headers are not supported",
    ord("M"): "GNU multi-volume continuations are not supported",
    ord("D"): "GNU dumpdir entries are not supported",
}


class _State(enum.Enum):
    HEADER = enum.auto()
    EXTENSION = enum.auto()
    DATA = enum.auto()
    PADDING = enum.auto()
    ZERO = enum.auto()  # one zero block seen; the next must be zero too
    DONE = enum.auto()


def _byte_sum(block: bytes) -> int:
    """The sum of a header block's 512 bytes, by Adler-32 in C rather than a Python loop.

    Adler-32's low half is 1 + the bytes' sum modulo 65521; a half block
    sums to at most 256 * 255 = 65280, below the modulus, so each half's
    sum comes out exact.
    """
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


def _field_str(raw: bytes) -> bytes:
    end = raw.find(0)
    return raw if end < 0 else raw[:end]


def _number(raw: bytes, what: str, name: str) -> int:
    """A numeric header field: octal text, or GNU's base-256 when the top bit is set."""
    if raw and raw[0] & 0x80:
        value = int.from_bytes(raw[1:], "big") | ((raw[0] & 0x7F) << (8 * (len(raw) - 1)))
        if raw[0] & 0x40:  # 0xff…: negative
            value -= 1 << (8 * len(raw) - 1)
        return value
    text = _field_str(raw).strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise InvalidArgument(f"tar entry {quote(name)}: invalid {what} field {text!r}") from None


def _pax_time(value: bytes, key: str, name: str) -> int:
    """A pax time ("-12.5", "1700000000.123456789") in nanoseconds."""
    text = value.decode("ascii", "replace")
    sign = 1
    if text.startswith("-"):
        sign, text = -1, text[1:]
    whole, _, frac = text.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise InvalidArgument(f"tar entry {quote(name)}: invalid pax {key} {text!r}")
    return sign * (int(whole) * 1_000_000_000 + int((frac + "000000000")[:9]))


def _pax_int(value: bytes, key: str, name: str) -> int:
    if not value.isdigit():
        raise InvalidArgument(f"tar entry {quote(name)}: invalid pax {key} {value!r}")
    return int(value)


def parse_pax_records(body: bytes, name: str = "") -> dict[str, bytes]:
    """The records of a pax extended header (``"<len> <key>=<value>\\n"``…), values as raw bytes."""
    records: dict[str, bytes] = {}
    pos, end = 0, len(body)
    while pos < end:
        if body[pos] == 0:  # NUL padding after the last record
            break
        space = body.find(b" ", pos, pos + 20)
        length_text = body[pos:space] if space > pos else b""
        if not length_text.isdigit():
            raise InvalidArgument(f"tar entry {quote(name)}: malformed pax record at offset {pos}")
        length = int(length_text)
        record_end = pos + length
        if length <= len(length_text) + 1 or record_end > end or body[record_end - 1] != 0x0A:
            raise InvalidArgument(f"tar entry {quote(name)}: malformed pax record at offset {pos}")
        key, eq, value = body[space + 1 : record_end - 1].partition(b"=")
        if not eq or not key:
            raise InvalidArgument(f"tar entry {quote(name)}: malformed pax record at offset {pos}")
        records[key.decode("utf-8", "surrogateescape")] = value
        pos = record_end
    return records


def _checked_name(raw: bytes, what: str, name: str) -> str:
    if len(raw) > MAX_NAME:
        raise InvalidArgument(
            f"tar entry {quote(os.fsdecode(raw[:64]))}…: {what} is {len(raw)} bytes, longer than {MAX_NAME}"
        )
    if b"\x00" in raw:
        raise InvalidArgument(f"tar entry {quote(name)}: {what} contains a NUL byte")
    return os.fsdecode(raw)


class TarParser:
    """The state machine; see the module docstring."""

    def __init__(self, limits: Limits | None = None) -> None:
        lim = limits or current()
        self._max_header = lim.max_header_size
        self._max_xattr = lim.max_xattr_size
        self._max_entries = lim.max_entries
        self._ext_total = 0  # bytes of extended headers read for the coming entry
        self._entries = 0
        self._state = _State.HEADER
        self._chunk = memoryview(b"")
        self._pos = 0
        self._partial = bytearray()  # a header or extension body spanning chunks
        self._want = BLOCK  # bytes the HEADER/EXTENSION state waits for
        self._left = 0  # data or padding bytes still to pass
        self._padding = 0  # padding after the current data
        self._ext_type = 0
        self._ext_size = 0
        self._pax: dict[str, bytes] = {}
        self._long_name: bytes | None = None
        self._long_link: bytes | None = None
        self._entry_name = ""  # for messages

    # -- input -----------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Give the next bytes of the archive; call after next_event() returned NEED_DATA."""
        if self._pos < len(self._chunk):
            raise RuntimeError("TarParser.feed before the previous chunk was consumed")
        self._chunk = data if isinstance(data, memoryview) else memoryview(data)
        self._pos = 0

    def end_of_input(self) -> None:
        """The archive's bytes are over: refuse an archive that stops inside an entry."""
        if self._state in (_State.DONE, _State.ZERO):
            return
        if self._state is _State.HEADER and not self._partial and self._long_name is None and not self._pax:
            return  # ended on an entry boundary without end blocks, which tar readers accept
        where = f" inside {quote(self._entry_name)}" if self._entry_name else ""
        raise InvalidArgument(f"truncated tar: the stream ends{where}")

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    # -- output ----------------------------------------------------------

    def _take(self, n: int) -> bytes | None:
        """``n`` bytes of header or extension, gathering them across chunks; None until they are all here."""
        avail = len(self._chunk) - self._pos
        if not self._partial and avail >= n:
            out = self._chunk[self._pos : self._pos + n].tobytes()
            self._pos += n
            return out
        need = n - len(self._partial)
        got = min(need, avail)
        self._partial += self._chunk[self._pos : self._pos + got]
        self._pos += got
        if got < need:
            return None
        out = bytes(self._partial)
        self._partial.clear()
        return out

    def next_event(self) -> TarEntry | memoryview | _Marker:
        """The next entry, piece of data, END, or NEED_DATA when the fed bytes are used up."""
        while True:
            state = self._state
            if state is _State.DATA:
                avail = len(self._chunk) - self._pos
                if not avail:
                    return NEED_DATA
                n = min(avail, self._left)
                out = self._chunk[self._pos : self._pos + n]
                self._pos += n
                self._left -= n
                if not self._left:
                    self._left = self._padding
                    self._state = _State.PADDING
                return out
            if state is _State.PADDING:
                n = min(len(self._chunk) - self._pos, self._left)
                self._pos += n
                self._left -= n
                if self._left:
                    return NEED_DATA
                self._state = _State.HEADER
                continue
            if state is _State.DONE:
                self._pos = len(self._chunk)  # whatever follows the end blocks is not read
                return NEED_DATA
            block = self._take(self._want)
            if block is None:
                return NEED_DATA
            if state is _State.EXTENSION:
                self._extension(block)
                continue
            if state is _State.ZERO:
                if block != _ZERO_BLOCK:
                    raise InvalidArgument("invalid tar: a single zero block followed by more entries")
                self._state = _State.DONE
                return END
            entry = self._header(block)
            if entry is not None:
                return entry

    # -- headers ---------------------------------------------------------

    def _header(self, block: bytes) -> TarEntry | None:
        if block == _ZERO_BLOCK:
            if self._pax or self._long_name is not None or self._long_link is not None:
                raise InvalidArgument(f"invalid tar: extended header for {quote(self._entry_name)} has no entry")
            self._state = _State.ZERO
            return None
        raw_name = _field_str(block[0:100])
        if block[257:263] == b"ustar\x00" and block[345] != 0:
            raw_name = _field_str(block[345:500]) + b"/" + raw_name
        self._entry_name = os.fsdecode(raw_name[:MAX_NAME])
        name = self._entry_name
        stored = _number(block[148:156], "checksum", name)
        unsigned = _byte_sum(block) - sum(block[148:156]) + 8 * 0x20
        if stored != unsigned:
            signed = unsigned - 2 * sum(b for b in block if b & 0x80) + 2 * sum(b for b in block[148:156] if b & 0x80)
            if stored != signed:
                raise InvalidArgument(f"invalid tar header for {quote(name)}: checksum mismatch (not a tar stream?)")
        flag = block[156]
        size = _number(block[124:136], "size", name)
        if size < 0:
            raise InvalidArgument(f"tar entry {quote(name)}: negative size")
        if flag in (_PAX, _PAX_GLOBAL, _GNU_NAME, _GNU_LINK):
            # several headers may precede one entry: their sum is what is held in memory
            self._ext_total += size
            if self._ext_total > self._max_header:
                raise exceeded(
                    f"tar entry {quote(name)}: extended headers of {self._ext_total} bytes",
                    "max_header_size",
                    self._max_header,
                )
            self._ext_type = flag
            self._ext_size = size
            self._want = -(-size // BLOCK) * BLOCK
            self._state = _State.EXTENSION
            if self._want == 0:
                self._extension(b"")
            return None
        etype = _TYPES.get(flag)
        if etype is None:
            reason = _REFUSED.get(flag, f"unsupported type flag {bytes([flag])!r}")
            raise InvalidArgument(f"tar entry {quote(name)}: {reason}")
        return self._entry(block, raw_name, etype, size)

    def _extension(self, body: bytes) -> None:
        body = body[: self._ext_size]
        self._want = BLOCK
        self._state = _State.HEADER
        if self._ext_type == _PAX:
            self._pax.update(parse_pax_records(body, self._entry_name))
        elif self._ext_type == _GNU_NAME:
            self._long_name = _field_str(body)
        elif self._ext_type == _GNU_LINK:
            self._long_link = _field_str(body)
        else:
            parse_pax_records(body, self._entry_name)  # global headers: checked, not applied

    def _entry(self, block: bytes, raw_name: bytes, etype: EntryType, size: int) -> TarEntry:
        self._entries += 1
        if self._entries > self._max_entries:
            raise exceeded(f"tar: more than {self._max_entries} entries", "max_entries", self._max_entries)
        self._ext_total = 0
        pax, self._pax = self._pax, {}
        long_name, self._long_name = self._long_name, None
        long_link, self._long_link = self._long_link, None
        if pax.get("path"):
            raw_name = pax["path"]
        elif long_name is not None:
            raw_name = long_name
        self._entry_name = name = _checked_name(raw_name, "name", os.fsdecode(raw_name[:MAX_NAME]))
        raw_link = _field_str(block[157:257])
        if pax.get("linkpath"):
            raw_link = pax["linkpath"]
        elif long_link is not None:
            raw_link = long_link
        entry = TarEntry(
            name=name,
            type=etype,
            mode=_number(block[100:108], "mode", name) & 0o7777,
            uid=_number(block[108:116], "uid", name),
            gid=_number(block[116:124], "gid", name),
            size=size,
            mtime_ns=_number(block[136:148], "mtime", name) * 1_000_000_000,
            linkname=_checked_name(raw_link, "link target", name),
        )
        if etype is EntryType.REG and block[156] == 0 and name.endswith("/"):
            entry.type = etype = EntryType.DIR  # old tars mark directories by the trailing slash alone
        if etype in (EntryType.CHAR, EntryType.BLOCK):
            entry.devmajor = _number(block[329:337], "devmajor", name)
            entry.devminor = _number(block[337:345], "devminor", name)
        if block[257:265] == b"ustar  \x00" and block[345] != 0:
            entry.atime_ns = _number(block[345:357], "atime", name) * 1_000_000_000
        if pax:
            self._apply_pax(entry, pax)
            if entry.xattrs:
                total = sum(len(k) + len(v) for k, v in entry.xattrs.items())
                if total > self._max_xattr:
                    raise exceeded(
                        f"tar entry {quote(name)}: extended attributes of {total} bytes",
                        "max_xattr_size",
                        self._max_xattr,
                    )
        if entry.uid < 0 or entry.gid < 0:
            raise InvalidArgument(f"tar entry {quote(name)}: negative uid or gid")
        if etype is not EntryType.REG:
            entry.size = 0  # header-only types carry no data, whatever the size field says
        self._left = entry.size
        self._padding = -entry.size % BLOCK
        self._state = _State.DATA if entry.size else _State.PADDING
        if not entry.size:
            self._left = 0
        return entry

    def _apply_pax(self, entry: TarEntry, pax: dict[str, bytes]) -> None:
        name = entry.name
        for key, value in pax.items():
            if key.startswith("SCHILY.xattr."):
                entry.xattrs[key[13:]] = value
            elif key.startswith("LIBARCHIVE.xattr."):
                try:
                    entry.xattrs[urllib.parse.unquote(key[17:])] = base64.b64decode(value + b"==")
                except ValueError:
                    raise InvalidArgument(f"tar entry {quote(name)}: invalid pax record {key}") from None
            elif not value:
                continue  # an empty value only cancels a global record
            elif key == "size":
                entry.size = _pax_int(value, key, name)
            elif key == "uid":
                entry.uid = _pax_int(value, key, name)
            elif key == "gid":
                entry.gid = _pax_int(value, key, name)
            elif key == "mtime":
                entry.mtime_ns = _pax_time(value, key, name)
            elif key == "atime":
                entry.atime_ns = _pax_time(value, key, name)
            elif key.startswith("GNU.sparse."):
                raise InvalidArgument(f"tar entry {quote(name)}: sparse files are not supported")
