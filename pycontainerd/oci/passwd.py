"""Parsing of an image's /etc/passwd and /etc/group; no I/O.

The files come from images, so they are untrusted: a line that is not a
well-formed entry is skipped, never guessed at.  In particular a uid or gid
that is not a plain decimal number skips the line (runc's parser reads it as
0, which would turn a garbled entry into root).  Blank lines and lines
starting with ``#`` are skipped as glibc does; fields past the ones a format
defines are ignored, and a passwd entry may stop after its gid.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_ID", "GroupEntry", "PasswdEntry", "parse_group", "parse_id", "parse_passwd"]

MAX_ID: Final = 0xFFFFFFFE
"""The largest uid or gid (``(uid_t)-1`` means "no id" to the kernel)."""

_MAX_ID_DIGITS: Final = len(str(MAX_ID))


@dataclass(frozen=True)
class PasswdEntry:
    """One line of /etc/passwd: ``name:password:uid:gid:gecos:home:shell``."""

    name: str
    password: str
    uid: int
    gid: int
    gecos: str = ""
    home: str = ""
    shell: str = ""


@dataclass(frozen=True)
class GroupEntry:
    """One line of /etc/group: ``name:password:gid:member,member``."""

    name: str
    password: str
    gid: int
    members: tuple[str, ...] = ()


def parse_id(text: str) -> int | None:
    """A uid or gid written as plain ASCII decimal digits, within 0..MAX_ID; None otherwise."""
    if not text or len(text) > _MAX_ID_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def _records(data: bytes | str) -> Iterator[list[str]]:
    text = data.decode("utf-8", errors="surrogateescape") if isinstance(data, bytes) else data
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        yield line.split(":")


def parse_passwd(data: bytes | str) -> list[PasswdEntry]:
    """The well-formed entries of a passwd file, in file order."""
    out: list[PasswdEntry] = []
    for fields in _records(data):
        if len(fields) < 4 or not fields[0]:
            continue
        uid, gid = parse_id(fields[2]), parse_id(fields[3])
        if uid is None or gid is None:
            continue
        rest = [*fields[4:7], "", "", ""]
        out.append(PasswdEntry(fields[0], fields[1], uid, gid, rest[0], rest[1], rest[2]))
    return out


def parse_group(data: bytes | str) -> list[GroupEntry]:
    """The well-formed entries of a group file, in file order; empty member names are dropped."""
    out: list[GroupEntry] = []
    for fields in _records(data):
        if len(fields) < 3 or not fields[0]:
            continue
        gid = parse_id(fields[2])
        if gid is None:
            continue
        members = tuple(m for m in fields[3].split(",") if m) if len(fields) > 3 else ()
        out.append(GroupEntry(fields[0], fields[1], gid, members))
    return out
