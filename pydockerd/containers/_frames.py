"""Docker's multiplexed stream: stdout and stderr (and an exec's error) sharing one connection.

Without a terminal, attach, logs and exec start send each piece of output
as a frame: an 8-byte header — the stream (0 stdin, 1 stdout, 2 stderr,
3 the daemon's own error), three zero bytes, the payload's length as a
big-endian uint32 — then the payload.  With a terminal the bytes go raw.
Pure: encoding and an incremental decoder, no I/O.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["STDERR", "STDIN", "STDOUT", "SYSTEMERR", "FrameDecoder", "encode_frame"]

STDIN: Final = 0
STDOUT: Final = 1
STDERR: Final = 2
SYSTEMERR: Final = 3

_HEADER = struct.Struct(">BxxxI")
MAX_PAYLOAD: Final = 0xFFFFFFFF


def encode_frame(stream: int, data: bytes) -> bytes:
    """One frame of ``data`` on ``stream``; data longer than a frame can hold is split into several."""
    if stream not in (STDIN, STDOUT, STDERR, SYSTEMERR):
        raise ValueError(f"stream {stream} is not 0-3")
    if len(data) <= MAX_PAYLOAD:
        return _HEADER.pack(stream, len(data)) + data
    return b"".join(encode_frame(stream, data[i : i + MAX_PAYLOAD]) for i in range(0, len(data), MAX_PAYLOAD))


class FrameDecoder:
    """Frames out of a byte stream fed in arbitrary pieces (what docker-py's and the CLI's readers do)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The frames completed by ``data``: (stream, payload); ValueError for a header no daemon sends."""
        self._buf += data
        out: list[tuple[int, bytes]] = []
        while len(self._buf) >= _HEADER.size:
            stream, size = _HEADER.unpack_from(self._buf)
            if stream > SYSTEMERR or any(self._buf[1:4]):
                raise ValueError(f"not a stream frame header: {bytes(self._buf[:8])!r}")
            if len(self._buf) < _HEADER.size + size:
                break
            out.append((stream, bytes(self._buf[_HEADER.size : _HEADER.size + size])))
            del self._buf[: _HEADER.size + size]
        return out

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buf)
