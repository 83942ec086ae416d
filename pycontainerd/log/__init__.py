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
from dataclasses import dataclass

__all__ = ["Request", "current", "new_request_id"]


@dataclass(frozen=True, slots=True)
class Request:
    """One gRPC call as log lines name it."""

    id: str
    method: str  # "/containerd.services.images.v1.Images/List"
    namespace: str  # "" when the call sent none


#: The call being served, None outside one.
current: ContextVar[Request | None] = ContextVar("pycontainerd_request", default=None)

_PREFIX = os.urandom(4).hex()
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A short id unique within this daemon's run and unlikely to repeat across runs."""
    return f"{_PREFIX}{next(_COUNTER):08x}"
