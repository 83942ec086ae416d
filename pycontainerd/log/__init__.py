"""The daemon's log context: which request a log line belongs to.

A gRPC call binds a :class:`Request` (a fresh id, its method and namespace)
for as long as it runs; asyncio tasks and ``asyncio.to_thread`` copy the
context, so every line logged while serving the call — in the event loop or
on the core thread pool — can name it.  Formatters read :data:`current`.
"""

from __future__ import annotations

import itertools
import os
from contextvars import ContextVar
from typing import Any

__all__ = ["NAMESPACE_HEADER", "Request", "current", "new_request_id"]

NAMESPACE_HEADER = "containerd-namespace"  # as pycontainerd.namespaces.GRPC_HEADER; this module imports nothing of ours
_PREFIX = os.urandom(4).hex()
_COUNTER = itertools.count(1)


class Request:
    """One gRPC call as log lines name it.

    Made for every call but read only when a line is logged, so the id is
    formatted and the namespace looked up in the call's metadata (``source``,
    anything with ``invocation_metadata()``) only on first use.
    """

    __slots__ = ("_id", "_namespace", "_seq", "_source", "method")

    def __init__(self, id: str | None, method: str, namespace: str | None = None, source: Any = None) -> None:
        self._id = id
        self._seq = next(_COUNTER) if id is None else 0
        self.method = method  # "/containerd.services.images.v1.Images/List"
        self._namespace = namespace
        self._source = source

    @property
    def id(self) -> str:
        if self._id is None:
            self._id = f"{_PREFIX}{self._seq:08x}"
        return self._id

    @property
    def namespace(self) -> str:
        """The call's namespace header, "" when it sent none."""
        if self._namespace is None:
            found = ""
            for key, value in self._source.invocation_metadata() or () if self._source is not None else ():
                if key == NAMESPACE_HEADER:
                    found = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
                    break
            self._namespace = found
        return self._namespace

    def __repr__(self) -> str:
        return f"Request(id={self.id!r}, method={self.method!r}, namespace={self.namespace!r})"


#: The call being served, None outside one.
current: ContextVar[Request | None] = ContextVar("pycontainerd_request", default=None)


def new_request_id() -> str:
    """A short id unique within this daemon's run and unlikely to repeat across runs."""
    return f"{_PREFIX}{next(_COUNTER):08x}"
