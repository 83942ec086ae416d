"""A tar reader that is fed bytes and gives members back: for archives arriving on a socket, of any size.

Pure: :meth:`TarStream.feed` takes what arrived and returns events — a
:class:`Member` when one begins, ``bytes`` of its data, ``None`` when it
ends.  Nothing is held but the current header, so a member of any size
passes through in the chunks it came in.  The archive is hostile: header
checksums are checked, the extended headers that carry long names (PAX,
GNU) are capped, sizes must be numbers, and an archive that stops inside a
header or a member is an error at :meth:`TarStream.finish` — never a
shorter member taken as whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from pycontainerd.errors import InvalidArgument

__all__ = ["MAX_META", "Event", "Member", "TarStream"]

BLOCK = 512
MAX_META = 1 << 20  # a PAX record set or GNU long name: a name, not data
_TYPES = {b"0": "file", b"\0": "file", b"7": "file", b"1": "hardlink", b"2": "symlink", b"5": "dir"}


@dataclass(frozen=True)
class Member:
    name: str
    kind: str  # file, dir, symlink, hardlink, other
    size: int
    linkname: str = ""


Event = Member | bytes | None


def _bad(why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid tar archive: {why}")


def _number(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        if field[0] & 0x40:
            raise _bad(f"negative {what}")
        value = field[0] & 0x3F
        for b in field[1:]:
            value = value << 8 | b
        return value
    text = field.split(b"\0", 1)[0].strip(b" \0")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise _bad(f"{what} {text!r} is not an octal number") from None


def _string(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "replace")


def _checksum_ok(block: bytes) -> bool:
    stored = _number(block[148:156], "checksum")
    rest = block[:148] + block[156:]
    unsigned = sum(rest) + 8 * 32
    signed = unsigned - 256 * sum(1 for b in rest if b > 127)  # some old writers summed signed chars
    return stored in (unsigned, signed)


def _pax(data: bytes) -> dict[str, str]:
    """PAX records: ``"<len> key=value\\n"``, each length counting the whole record."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            raise _bad("malformed PAX header")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise _bad("malformed PAX record length") from None
        end = pos + length
        if length <= 0 or end > len(data) or data[end - 1 : end] != b"\n":
            raise _bad("malformed PAX record")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq:
            raise _bad("malformed PAX record")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        pos = end
    return out


class TarStream:
    """The state of one archive being read."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._left = 0  # data bytes of the current member still to come
        self._pad = 0  # padding after them
        self._meta: tuple[bytes, int] | None = None  # an extended header being collected: (type, size)
        self._pax: dict[str, str] = {}
        self._long_name = ""
        self._long_link = ""
        self._in_member = False
        self.done = False

    def feed(self, data: bytes) -> list[Event]:
        """Events for ``data``, the next bytes of the archive."""
        events: list[Event] = []
        if self.done:
            return events  # what follows the end marker is padding to the record size
        if self._left and not self._buf and self._meta is None:
            take = min(self._left, len(data))  # the common case: member data straight through
            if take:
                events.append(bytes(data[:take]))
                self._left -= take
                data = data[take:]
        self._buf += data
        while not self.done:
            if self._left:
                if not self._buf:
                    break
                take = min(self._left, len(self._buf))
                events.append(bytes(self._buf[:take]))
                del self._buf[:take]
                self._left -= take
                continue
            if self._in_member:
                self._in_member = False
                events.append(None)
            if self._pad:
                take = min(self._pad, len(self._buf))
                del self._buf[:take]
                self._pad -= take
                if self._pad:
                    break
                continue
            if self._meta is not None:
                kind, size = self._meta
                total = size + (-size % BLOCK)
                if len(self._buf) < total:
                    break
                self._extended(kind, bytes(self._buf[:size]))
                del self._buf[:total]
                self._meta = None
                continue
            if len(self._buf) < BLOCK:
                break
            block = bytes(self._buf[:BLOCK])
            del self._buf[:BLOCK]
            member = self._header(block)
            if member is not None:
                events.append(member)
                self._in_member = True
                self._left = member.size
                self._pad = -member.size % BLOCK
        return events

    def _extended(self, kind: bytes, data: bytes) -> None:
        if kind == b"x":
            self._pax = _pax(data)
        elif kind == b"L":
            self._long_name = _string(data)
        elif kind == b"K":
            self._long_link = _string(data)
        # "g" (global PAX headers) set nothing an image archive relies on

    def _header(self, block: bytes) -> Member | None:
        if block == b"\0" * BLOCK:
            self.done = True
            return None
        if not _checksum_ok(block):
            raise _bad("header checksum mismatch (not a tar archive, or a corrupt one)")
        kind = block[156:157]
        size = _number(block[124:136], "size")
        if kind in (b"x", b"g", b"L", b"K"):
            if size > MAX_META:
                raise _bad(f"an extended header of {size} bytes is over the limit of {MAX_META}")
            self._meta = (kind, size)
            return None
        name = _string(block[0:100])
        if block[257:262] == b"ustar" and block[345:500].strip(b"\0"):
            name = _string(block[345:500]) + "/" + name
        linkname = _string(block[157:257])
        pax, self._pax = self._pax, {}
        name = pax.get("path") or self._long_name or name
        linkname = pax.get("linkpath") or self._long_link or linkname
        self._long_name = self._long_link = ""
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise _bad("PAX size is not a number") from None
            if size < 0:
                raise _bad("negative PAX size")
        member_kind = _TYPES.get(kind, "other")
        if member_kind in ("hardlink", "symlink", "dir"):
            size = 0 if kind != b"1" else size
        return Member(name, member_kind, size, linkname)

    def finish(self) -> None:
        """The archive has ended: InvalidArgument if it stopped inside a header or member, or before its end marker."""
        if self.done:
            return
        if self._left or self._pad or self._meta is not None:
            raise _bad("unexpected end of archive inside a member (truncated)")
        if self._buf:
            raise _bad("unexpected end of archive inside a header (truncated)")
        raise _bad("unexpected end of archive: no end-of-archive marker (truncated)")
