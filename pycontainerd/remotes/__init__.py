"""Remotes: where images come from and go to, behind three small roles.

A :class:`Resolver` turns a reference into a name and root descriptor and
hands out a :class:`Fetcher` and a :class:`Pusher` for it; the transfer code
(pull, push) knows nothing else about registries.  The implementation for
OCI distribution registries is :mod:`pycontainerd.remotes.docker`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import BinaryIO, Protocol

from ..images import Descriptor

__all__ = ["Fetcher", "Pusher", "ReadStream", "Resolver"]


class ReadStream(Protocol):
    """A blob's bytes as they arrive; close it (or use ``with``) when done."""

    def readinto(self, buf: bytearray | memoryview) -> int:
        """Fill ``buf`` as far as one read goes; 0 at the end."""
        ...

    def read(self, n: int = -1) -> bytes: ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """From another thread: make a read blocked in this stream return now, or fail; it is still closed after."""
        ...

    def __enter__(self) -> ReadStream: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Fetcher(Protocol):
    def fetch(self, desc: Descriptor, offset: int = 0) -> ReadStream:
        """The blob or document ``desc`` from ``offset`` on; NotFound if the remote has none."""
        ...


class Pusher(Protocol):
    def push(self, desc: Descriptor, open_blob: Callable[[], BinaryIO], mount_from: Sequence[str] = ()) -> str:
        """Put ``desc`` on the remote; returns ``"exists"``, ``"mounted"`` or ``"pushed"``.

        ``mount_from`` names repositories of the same registry that may hold
        the blob already, to be mounted instead of uploaded.
        """
        ...


class Resolver(Protocol):
    def resolve(self, ref: str) -> tuple[str, Descriptor]:
        """The canonical name of ``ref`` and the descriptor of what it points at."""
        ...

    def fetcher(self, ref: str) -> Fetcher: ...

    def pusher(self, ref: str) -> Pusher: ...
