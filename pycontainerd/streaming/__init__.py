"""Named bidirectional streams that one call opens and another uses.

A client opens a stream on the Streaming service and names it; a later call
(a Transfer) refers to it by that name to send progress or ask for
credentials.  The manager is the meeting point: streams are registered per
namespace, and leave when the call that opened them ends.
"""

from __future__ import annotations

import threading
from typing import Protocol

from google.protobuf import any_pb2

from ..errors import AlreadyExists, InvalidArgument, NotFound

__all__ = ["Manager", "Stream"]


class Stream(Protocol):
    """One open stream of ``Any`` messages, used from the daemon's event loop."""

    async def send(self, message: any_pb2.Any) -> None: ...

    async def recv(self) -> any_pb2.Any:
        """The next message; Unavailable when the peer has gone."""
        ...

    def close(self) -> None: ...


class Manager:
    """The open streams of every namespace, by id."""

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], Stream] = {}
        self._lock = threading.Lock()

    def register(self, namespace: str, id: str, stream: Stream) -> None:
        if not id:
            raise InvalidArgument("a stream needs an id")
        with self._lock:
            if (namespace, id) in self._streams:
                raise AlreadyExists(f"stream {id!r} already exists")
            self._streams[(namespace, id)] = stream

    def get(self, namespace: str, id: str) -> Stream:
        with self._lock:
            try:
                return self._streams[(namespace, id)]
            except KeyError:
                raise NotFound(f"stream {id!r} not found") from None

    def unregister(self, namespace: str, id: str, stream: Stream) -> None:
        with self._lock:
            if self._streams.get((namespace, id)) is stream:
                del self._streams[(namespace, id)]
