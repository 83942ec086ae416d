"""Tar headers for the layers we write: POSIX pax format, deterministic to the byte.

Pure functions from a header record to bytes.  A pax extended header is
added only when the ustar fields cannot hold a value (long or non-ASCII
names, large ids and sizes, sub-second or out-of-range times) or when there
are extended attributes (``SCHILY.xattr.<name>``, values as raw bytes).
Records are sorted, owner names left empty and the pax header's own fields
fixed, so the same tree always gives the same bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

__all__ = ["END_OF_ARCHIVE", "TarHeader", "encode_header", "padding", "pax_record"]

BLOCK: Final = 512
END_OF_ARCHIVE: Final = bytes(2 * BLOCK)

REGULAR, HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO = b"0", b"1", b"2", b"3", b"4", b"5", b"6"


@dataclass(frozen=True, slots=True)
class TarHeader:
    name: str  # relative, "/" separated; directories end with "/"
    type: bytes  # one of REGULAR … FIFO above
    mode: int = 0  # permission bits with setuid/setgid/sticky
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime_ns: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


def pax_record(key: str, value: bytes) -> bytes:
    """One ``"<len> <key>=<value>\\n"`` record; the length counts its own digits."""
    body = key.encode("utf-8", "surrogateescape") + b"=" + value + b"\n"
    n = len(body) + 2
    while True:
        record = str(n).encode() + b" " + body
        if len(record) == n:
            return record
        n = len(record)


def padding(size: int) -> bytes:
    """The zeros that round a member's data of ``size`` bytes up to whole blocks."""
    return bytes(-size % BLOCK)


def _octal(value: int, width: int) -> bytes | None:
    """``value`` as a NUL-terminated octal field, or None when it does not fit."""
    if value < 0 or value >= 8 ** (width - 1):
        return None
    return b"%0*o\x00" % (width - 1, value)


def _pax_time(ns: int) -> bytes:
    sign = b"-" if ns < 0 else b""
    sec, frac = divmod(abs(ns), 1_000_000_000)
    if not frac:
        return sign + str(sec).encode()
    return sign + (f"{sec}.{frac:09d}".rstrip("0")).encode()


def _block(name: bytes, typeflag: bytes, fields: dict[str, bytes], linkname: bytes = b"") -> bytes:
    """A ustar header block: ``fields`` hold mode, uid, gid, size, mtime, devmajor, devminor, already encoded."""
    head = bytearray(BLOCK)
    head[0 : len(name)] = name
    head[100:108] = fields["mode"]
    head[108:116] = fields["uid"]
    head[116:124] = fields["gid"]
    head[124:136] = fields["size"]
    head[136:148] = fields["mtime"]
    head[148:156] = b" " * 8
    head[156:157] = typeflag
    head[157 : 157 + len(linkname)] = linkname
    head[257:265] = b"ustar\x0000"
    head[329:337] = fields["devmajor"]
    head[337:345] = fields["devminor"]
    head[148:156] = b"%06o\x00 " % sum(head)
    return bytes(head)


def _fits(raw: bytes) -> bool:
    return len(raw) <= 100 and raw.isascii()


def encode_header(h: TarHeader) -> bytes:
    """The header block(s) for ``h``: a pax extended header first when needed."""
    pax: dict[str, bytes] = {}
    name = os.fsencode(h.name)
    link = os.fsencode(h.linkname)
    if not _fits(name):
        pax["path"] = name
        name = name[:100]
    if not _fits(link):
        pax["linkpath"] = link
        link = link[:100]
    fields: dict[str, bytes] = {}
    for key, value, width in (
        ("uid", h.uid, 8),
        ("gid", h.gid, 8),
        ("size", h.size, 12),
    ):
        encoded = _octal(value, width)
        if encoded is None:
            pax[key] = str(value).encode()
            encoded = _octal(0, width)
        assert encoded is not None
        fields[key] = encoded
    sec, frac = divmod(h.mtime_ns, 1_000_000_000)
    mtime = _octal(sec, 12)
    if mtime is None or frac:
        pax["mtime"] = _pax_time(h.mtime_ns)
    fields["mtime"] = mtime if mtime is not None else _octal(0, 12)  # type: ignore[assignment]
    for key, value in (("devmajor", h.devmajor), ("devminor", h.devminor)):
        encoded = _octal(value, 8)
        if encoded is None:
            raise ValueError(f"{key} {value} does not fit a tar header")
        fields[key] = encoded
    mode = _octal(h.mode & 0o7777, 8)
    assert mode is not None
    fields["mode"] = mode
    for key in sorted(h.xattrs):
        pax["SCHILY.xattr." + key] = h.xattrs[key]
    header = _block(name, h.type, fields, link)
    if not pax:
        return header
    records = b"".join(pax_record(k, pax[k]) for k in sorted(pax))
    zero = _octal(0, 8)
    assert zero is not None
    pax_fields = {
        "mode": b"0000644\x00",
        "uid": zero,
        "gid": zero,
        "size": _octal(len(records), 12) or b"",
        "mtime": _octal(0, 12) or b"",
        "devmajor": zero,
        "devminor": zero,
    }
    base = name.rstrip(b"/").rsplit(b"/", 1)[-1][:80] or b"entry"
    pax_name = b"PaxHeaders/" + base
    return _block(pax_name, b"x", pax_fields) + records + padding(len(records)) + header
