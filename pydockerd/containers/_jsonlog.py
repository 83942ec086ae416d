"""The json-file log driver's format: one JSON object per line of output, read back for ``docker logs``.

A line is ``{"log": "<text>\\n", "stream": "stdout", "time": "<RFC 3339 nanoseconds>"}``
as dockerd writes it, so the files read the same to anyone who knows
Docker's.  Output is cut at newlines (a longer run than :data:`MAX_LINE` is
cut there); what a process leaves without a newline is written when its
stream ends.  Parsing, splitting and selecting (tail, since, until) are
pure; :class:`LogFile` only appends and reads.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

__all__ = [
    "MAX_LINE",
    "Entry",
    "LineSplitter",
    "LogFile",
    "decode_entry",
    "encode_entry",
    "format_time",
    "parse_time",
    "select",
]

MAX_LINE: Final = 16 * 1024


@dataclass(frozen=True)
class Entry:
    stream: str  # "stdout" or "stderr"
    data: bytes
    time_ns: int


def format_time(ns: int, fixed: bool = False) -> str:
    """RFC 3339 with nanoseconds in UTC: trailing zeros cut as Go's RFC3339Nano, or 9 digits with ``fixed``."""
    seconds, frac = divmod(ns, 1_000_000_000)
    head = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}"
    if not fixed:
        digits = digits.rstrip("0")
    return f"{head}.{digits}Z" if digits else f"{head}Z"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time with up to 9 fraction digits; ValueError otherwise."""
    text = text.strip()
    head, dot, rest = text.partition(".")
    frac = 0
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        if not 1 <= digits <= 9:
            raise ValueError(f"bad time {text!r}")
        frac = int(rest[:digits].ljust(9, "0"))
        zone = rest[digits:]
    else:
        head, zone = text[:19], text[19:]
    parsed = datetime.fromisoformat(head + ("+00:00" if zone in ("Z", "z") else zone))
    if parsed.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone")
    return int(parsed.timestamp()) * 1_000_000_000 + frac


def encode_entry(entry: Entry) -> bytes:
    doc = {"log": entry.data.decode("utf-8", "replace"), "stream": entry.stream, "time": format_time(entry.time_ns)}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def decode_entry(line: bytes) -> Entry | None:
    """The entry of one line of a log file; None for a line that is not one (a torn last line)."""
    try:
        doc = json.loads(line)
        if not isinstance(doc, dict):
            return None
        log, stream, when = doc.get("log"), doc.get("stream"), doc.get("time")
        if not isinstance(log, str) or stream not in ("stdout", "stderr") or not isinstance(when, str):
            return None
        return Entry(str(stream), log.encode(), parse_time(when))
    except (ValueError, UnicodeDecodeError):
        return None


class LineSplitter:
    """Output chunks as log lines: each ends at a newline, or at :data:`MAX_LINE` bytes, or at the end."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            nl = self._buf.find(b"\n", 0, self._limit)
            if nl >= 0:
                cut = nl + 1
            elif len(self._buf) >= self._limit:
                cut = self._limit
            else:
                return out
            out.append(bytes(self._buf[:cut]))
            del self._buf[:cut]

    def flush(self) -> bytes:
        rest, self._buf = bytes(self._buf), bytearray()
        return rest


def select(
    entries: Iterable[Entry],
    *,
    stdout: bool = True,
    stderr: bool = True,
    since_ns: int = 0,
    until_ns: int = 0,
    tail: int = -1,
) -> list[Entry]:
    """The entries ``docker logs`` shows: the asked streams within [since, until], the last ``tail`` (-1: all)."""
    wanted = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}
    out = [
        e
        for e in entries
        if e.stream in wanted and (not since_ns or e.time_ns >= since_ns) and (not until_ns or e.time_ns <= until_ns)
    ]
    if tail >= 0:
        out = out[len(out) - tail :] if tail else []
    return out


class LogFile:
    """A container's ``<id>-json.log``: appended by the output copier, read by ``logs``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def append(self, stream: str, data: bytes, time_ns: int | None = None) -> Entry:
        entry = Entry(stream, data, time.time_ns() if time_ns is None else time_ns)
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        os.write(self._fd, encode_entry(entry))
        return entry

    def entries(self) -> Iterator[Entry]:
        try:
            with open(self.path, "rb") as f:
                for line in f:
                    entry = decode_entry(line)
                    if entry is not None:
                        yield entry
        except FileNotFoundError:
            return

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
