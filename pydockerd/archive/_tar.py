"""Tar framing for image archives, written as a stream of chunks: headers, padding, the end marker.

Pure: the caller supplies member data; nothing here touches a file.  Headers
are ustar (PAX only when a name needs it), owner root, time zero, so the
same images give the same bytes.
"""

from __future__ import annotations

import tarfile

__all__ = ["BLOCK", "END", "dir_header", "file_header", "padding"]

BLOCK = 512
END = b"\0" * (2 * BLOCK)


def _header(name: str, size: int, mode: int, kind: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.type = kind
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.PAX_FORMAT)


def file_header(name: str, size: int, mode: int = 0o644) -> bytes:
    return _header(name, size, mode, tarfile.REGTYPE)


def dir_header(name: str, mode: int = 0o755) -> bytes:
    return _header(name.rstrip("/") + "/", 0, mode, tarfile.DIRTYPE)


def padding(size: int) -> bytes:
    """The zeros that bring a member of ``size`` bytes to a whole block."""
    return b"\0" * (-size % BLOCK)
