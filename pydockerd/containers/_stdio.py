"""A process's stdio as pydockerd holds it: FIFOs it makes, read and written on the event loop.

containerd's model (see pycontainerd.client's _cio): the client makes the
FIFOs and hands their paths to the task; here the client is pydockerd, for
every container and exec.  Output FIFOs are opened for reading before the
task exists (non-blocking opens never wait for the other side) and watched
with the loop's reader callbacks: a FIFO reports end of file only once a
writer came and all writers left, so "not yet started" never looks like
"finished".  stdin is held open read-write by pydockerd, so what an
attacher types before the process reads it is kept, and the process sees
end of file only when pydockerd closes it (StdinOnce, or an exec's client
half-closing).

:class:`Broadcast` fans a container's output out to attachers: each gets an
asyncio queue of (stream, bytes), ended by None.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pycontainerd.tasks import IO

from ._frames import STDERR, STDOUT

__all__ = ["EXIT_DRAIN", "Broadcast", "Fifos", "Item", "OutputReader", "StdinWriter", "run_in_thread"]

CHUNK = 32 * 1024
EXIT_DRAIN = 2.0  # seconds a process's output may take to reach end of file after it exited
Item = tuple[int, bytes] | None
T = TypeVar("T")


def run_in_thread(fn: Callable[[], T]) -> asyncio.Future[T]:
    """``fn()`` on a thread of its own (an endless wait must not hold a worker of the shared pool)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if fut.done():
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def body() -> None:
        try:
            result = fn()
        except BaseException as e:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(deliver, False, e)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, True, result)

    threading.Thread(target=body, daemon=True, name="task-wait").start()
    return fut


class Fifos:
    """One process's FIFOs in a fresh directory, open on pydockerd's side."""

    def __init__(self, parent: Path, *, stdin: bool, terminal: bool) -> None:
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir = parent / secrets.token_hex(4)
        self.dir.mkdir(mode=0o700)
        self.terminal = terminal
        self._fds: dict[str, int] = {}
        try:
            for name in ("stdin",) * stdin + ("stdout",) + ("stderr",) * (not terminal):
                os.mkfifo(self.dir / name, 0o600)
            self.reopen()
        except BaseException:
            self.close()
            raise

    @classmethod
    def existing(cls, path: Path, terminal: bool) -> Fifos:
        """The FIFOs of a task started before pydockerd restarted, opened again."""
        self = cls.__new__(cls)
        self.dir, self.terminal, self._fds = path, terminal, {}
        self.reopen()
        return self

    def reopen(self) -> None:
        flags = {"stdin": os.O_RDWR, "stdout": os.O_RDONLY, "stderr": os.O_RDONLY}
        for name, flag in flags.items():
            if (self.dir / name).exists():
                self._fds[name] = os.open(self.dir / name, flag | os.O_NONBLOCK | os.O_CLOEXEC)

    @property
    def io(self) -> IO:
        def path(name: str) -> str:
            return str(self.dir / name) if name in self._fds or (self.dir / name).exists() else ""

        return IO(path("stdin"), path("stdout"), path("stderr"), self.terminal)

    def take(self, name: str) -> int:
        """Hand over the fd of ``name`` (-1 when there is none); its new owner closes it."""
        return self._fds.pop(name, -1)

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = {}
        shutil.rmtree(self.dir, ignore_errors=True)


class OutputReader:
    """Reads stdout and stderr FIFOs on the loop; ``on_data(stream, bytes)`` for each piece, ``done`` at EOF of all."""

    def __init__(self, fifos: Fifos | None, on_data: Callable[[int, bytes], None]) -> None:
        """``fifos`` None: a task whose FIFOs are gone (adopted after a restart), nothing to read."""
        self._loop = asyncio.get_running_loop()
        self._on_data = on_data
        self.done: asyncio.Future[None] = self._loop.create_future()
        self._fds: dict[int, int] = {}
        for name, stream in (("stdout", STDOUT), ("stderr", STDERR)):
            fd = fifos.take(name) if fifos is not None else -1
            if fd >= 0:
                self._fds[fd] = stream
                self._loop.add_reader(fd, self._readable, fd)
        if not self._fds:
            self.done.set_result(None)

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._on_data(self._fds[fd], data)
            return
        self._finish(fd)

    def _finish(self, fd: int) -> None:
        self._loop.remove_reader(fd)
        os.close(fd)
        del self._fds[fd]
        if not self._fds and not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        """Stop reading now (what is left unread is lost)."""
        for fd in list(self._fds):
            self._finish(fd)


class StdinWriter:
    """Writes to a process's stdin FIFO without blocking the loop; :meth:`close` gives it end of file."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()

    @property
    def open(self) -> bool:
        return self._fd >= 0

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._fd >= 0:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                await self._writable()
                continue
            except OSError:
                return
            view = view[n:]

    async def _writable(self) -> None:
        ready: asyncio.Future[None] = self._loop.create_future()
        fd = self._fd

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        self._loop.add_writer(fd, wake)
        try:
            await ready
        finally:
            self._loop.remove_writer(fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Broadcast:
    """A container's live output for everyone attached; None ends each subscriber's queue."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Item]] = set()
        self.closed = False

    def subscribe(self) -> asyncio.Queue[Item]:
        q: asyncio.Queue[Item] = asyncio.Queue()
        if self.closed:
            q.put_nowait(None)
        else:
            self._queues.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Item]) -> None:
        self._queues.discard(q)

    def publish(self, stream: int, data: bytes) -> None:
        for q in self._queues:
            q.put_nowait((stream, data))

    def close(self) -> None:
        self.closed = True
        for q in self._queues:
            q.put_nowait(None)
        self._queues = set()
