"""Positional reads of a local file: committed blobs, and ingests read while they are written."""

from __future__ import annotations

import errno
import os
from types import TracebackType

from ..errors import (
    AlreadyExists,
    ContainerdError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unknown,
)

__all__ = ["LocalReaderAt", "from_oserror"]


def from_oserror(exc: OSError, what: str) -> ContainerdError:
    """The filesystem's errno as our error class; callers add ``from exc``."""
    msg = f"{what}: {exc.strerror or exc}"
    if exc.errno == errno.ENOENT:
        return NotFound(msg)
    if exc.errno == errno.EEXIST:
        return AlreadyExists(msg)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted(msg)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return FailedPrecondition(msg)
    return Unknown(msg)


class LocalReaderAt:
    """Positional reads of one blob file; the fd stays valid even if the blob is deleted."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._size = os.fstat(fd).st_size

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0:
            raise InvalidArgument(f"read_at: negative offset {offset} or length {n}")
        if self._fd < 0:
            raise FailedPrecondition("read_at on a closed reader")
        try:
            data = os.pread(self._fd, n, offset)
            if len(data) == n or not data:
                return data
            # pread may return short on large reads; loop until n or the end.
            parts = [data]
            got = len(data)
            while got < n and (more := os.pread(self._fd, n - got, offset + got)):
                parts.append(more)
                got += len(more)
            return b"".join(parts)
        except OSError as exc:
            raise from_oserror(exc, "read blob") from exc

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> LocalReaderAt:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            self.close()
