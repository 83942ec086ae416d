"""A keyed mutex: one holder per key at a time, for work that must not run twice at once in this process.

The daemon's pulls use it as containerd's transfer service uses its
duplication suppressor: one fetch of a digest at a time (the others then
find the blob in the store), one unpack of a chain id at a time (the others
then find the snapshot).  Waiting can be cut short by a cancel event.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Hashable, Iterator

from .errors import Canceled

__all__ = ["KeyedMutex"]


class KeyedMutex:
    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._held: dict[Hashable, tuple[threading.Lock, int]] = {}  # key -> (lock, holders and waiters)

    @contextlib.contextmanager
    def hold(self, key: Hashable, cancel: threading.Event | None = None, poll: float = 0.1) -> Iterator[None]:
        """Hold ``key`` for the ``with`` block; :class:`~pycontainerd.errors.Canceled` if ``cancel`` is set while waiting."""
        with self._mu:
            lock, n = self._held.get(key, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._held[key] = (lock, n + 1)
        try:
            while not lock.acquire(timeout=poll):
                if cancel is not None and cancel.is_set():
                    raise Canceled(f"canceled while waiting for {key!r}")
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._mu:
                lock, n = self._held[key]
                if n == 1:
                    del self._held[key]
                else:
                    self._held[key] = (lock, n - 1)
