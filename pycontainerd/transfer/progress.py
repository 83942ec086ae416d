"""Progress of a transfer: one event per change of a blob's state.

The events and names are containerd's Transfer service's (``waiting``,
``downloading``, ``uploading``, ``complete``, ``already exists``; names made
by :func:`ref_key`), so a progress stream reads the same whichever daemon
sends it.  Events are emitted from worker threads: a sink must be thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..images import Descriptor
from ..images import mediatypes as mt

__all__ = ["Progress", "ProgressFunc", "Throttle", "discard", "ref_key"]


@dataclass(frozen=True)
class Progress:
    event: str
    name: str = ""
    parents: Sequence[str] = ()
    progress: int = 0
    total: int = 0
    desc: Descriptor | None = None


ProgressFunc = Callable[[Progress], None]


def discard(_: Progress) -> None:
    """A sink for callers that do not watch progress."""


def ref_key(desc: Descriptor) -> str:
    """The ingest ref of a blob, by kind: ``layer-sha256:...``, as containerd names them."""
    m = desc.media_type
    if mt.is_index(m):
        kind = "index"
    elif mt.is_manifest(m) or mt.is_schema1(m):
        kind = "manifest"
    elif mt.is_layer(m):
        kind = "layer"
    elif mt.is_config(m):
        kind = "config"
    else:
        kind = "unknown"
    return f"{kind}-{desc.digest}"


class Throttle:
    """At most one report per ``interval`` for a running copy, so a fast copy does not flood the stream."""

    def __init__(self, interval: float = 0.1) -> None:
        self._interval = interval
        self._next = 0.0
        self._lock = threading.Lock()

    def due(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return False
            self._next = now + self._interval
            return True
