"""A single-threaded epoll loop: fds to callbacks, and signals through a wakeup pipe.

No asyncio: the shim waits on a handful of fds (its socket, connections,
the signal pipe, OOM fds, terminal copies) and everything it does between
waits is short, so a plain epoll loop is all it needs and costs nothing at
start-up.
"""

from __future__ import annotations

import os
import select

TYPE_CHECKING = False  # typing costs the shim milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    import signal as _signal  # what the checker knows of _signal, the C half without the enums
    from collections.abc import Callable

    Handler = Callable[[int], None]
else:
    import _signal

__all__ = ["IN", "OUT", "Loop"]

IN = select.EPOLLIN
OUT = select.EPOLLOUT


class Loop:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._handlers: dict[int, Handler] = {}
        self._signal_handlers: dict[int, Callable[[], None]] = {}
        self.running = True
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_r, self._wake_w = r, w
        _signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        self.add(r, IN, self._on_signal_bytes)

    def add(self, fd: int, mask: int, handler: Handler) -> None:
        self._handlers[fd] = handler
        self._epoll.register(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        self._epoll.modify(fd, mask)

    def remove(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def watched(self, fd: int) -> bool:
        return fd in self._handlers

    def on_signal(self, signo: int, handler: Callable[[], None]) -> None:
        """Run ``handler`` from the loop (not the signal handler) whenever ``signo`` arrives."""
        self._signal_handlers[signo] = handler
        _signal.signal(signo, _noop)
        _signal.siginterrupt(signo, False)

    def _on_signal_bytes(self, _events: int) -> None:
        try:
            data = os.read(self._wake_r, 4096)
        except BlockingIOError:
            return
        for signo in set(data):
            handler = self._signal_handlers.get(signo)
            if handler is not None:
                handler()

    def run(self) -> None:
        while self.running:
            for fd, events in self._epoll.poll():
                handler = self._handlers.get(fd)
                if handler is not None:
                    handler(events)
                if not self.running:
                    break


def _noop(signo: int, frame: object) -> None:
    """The handler that makes the kernel deliver the signal; the byte in the wakeup pipe does the work."""
