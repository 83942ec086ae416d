"""A process's standard streams as containerd's clients pass them: FIFOs the client creates and copies.

The client makes a private directory holding ``stdin``, ``stdout`` and
(without a terminal) ``stderr`` FIFOs, hands their paths to the daemon, and
copies between them and its own streams on threads.  Opening a FIFO blocks
until the other side opens it, so each side is opened on its copying
thread; :meth:`Attached.close` unblocks any that are still waiting (when the
task was never created) by opening the other side itself.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..tasks import IO

__all__ = ["FIFO_ROOT", "Attached", "FifoSet", "fifo_set_of", "new_fifo_set", "readers_held", "remove_fifos_of"]

FIFO_ROOT = Path("/run/pycontainerd/fifo")
_CHUNK = 32 * 1024


@dataclass(frozen=True)
class FifoSet:
    dir: Path
    io: IO

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def fifo_set_of(io: IO) -> FifoSet | None:
    """The FIFO set a running process was given, to attach to it again; None when it has no FIFOs.

    Its directory is ours to remove (once the process is deleted) only when
    it lies under :data:`FIFO_ROOT`: containerd's clients keep theirs elsewhere.
    """
    paths = [p for p in (io.stdin, io.stdout, io.stderr) if p]
    if not paths or not all(stat.S_ISFIFO(_mode(p)) for p in paths):
        return None
    return FifoSet(Path(paths[0]).parent, io)


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


def remove_fifos_of(io: IO) -> None:
    """Remove the FIFOs of a deleted process if a pyctr made them (see :func:`fifo_set_of`)."""
    for p in (io.stdin, io.stdout, io.stderr):
        if p and Path(p).parent.parent == FIFO_ROOT:
            shutil.rmtree(Path(p).parent, ignore_errors=True)
            return


def new_fifo_set(id: str, *, stdin: bool = True, terminal: bool = False, root: Path = FIFO_ROOT) -> FifoSet:
    """FIFOs for one process in a new directory only root can enter."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=f"{id[:32]}-", dir=root))
    paths = {}
    for name in ("stdin",) * stdin + ("stdout",) + ("stderr",) * (not terminal):
        p = d / f"{id[:32]}-{name}"
        os.mkfifo(p, 0o600)
        paths[name] = str(p)
    return FifoSet(d, IO(paths.get("stdin", ""), paths["stdout"], paths.get("stderr", ""), terminal))


def _has_fd(f: BinaryIO) -> bool:
    try:
        f.fileno()
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return False
    return True


@contextlib.contextmanager
def readers_held(io: IO) -> Iterator[None]:
    """Hold the output FIFOs open for reading while a detached process is created.

    containerd's shim opens them write-only, which waits for a reader; once
    open it keeps a reader of its own, so ours can go when the block ends.
    """
    fds = []
    try:
        for p in (io.stdout, io.stderr):
            if p:
                fds.append(os.open(p, os.O_RDONLY | os.O_NONBLOCK))
        yield
    finally:
        for fd in fds:
            os.close(fd)


class Attached:
    """Copies ``stdin`` into the process's stdin FIFO and its output FIFOs into ``stdout`` / ``stderr``.

    ``on_stdin_eof`` runs once our stdin ends (the caller closes the
    process's stdin through CloseIO there).  :meth:`wait` returns once the
    output FIFOs reached end of file: every writer (the runtime and the
    process) closed them.
    """

    def __init__(
        self,
        fifos: FifoSet,
        stdin: BinaryIO | None,
        stdout: BinaryIO,
        stderr: BinaryIO,
        on_stdin_eof: Callable[[], None] | None = None,
    ) -> None:
        self.fifos = fifos
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._outputs: list[threading.Thread] = []
        io = fifos.io
        for path, dest in ((io.stdout, stdout), (io.stderr, stderr)):
            if path:
                t = threading.Thread(target=self._copy_out, args=(path, dest), daemon=True, name="fifo-out")
                self._outputs.append(t)
        if io.stdin and stdin is not None:
            t = threading.Thread(target=self._copy_in, args=(io.stdin, stdin, on_stdin_eof), daemon=True)
            self._threads.append(t)
        self._threads += self._outputs
        for t in self._threads:
            t.start()

    def _copy_out(self, path: str, dest: BinaryIO) -> None:
        fd = os.open(path, os.O_RDONLY)  # blocks until the runtime opens the write side
        try:
            while True:
                data = os.read(fd, _CHUNK)
                if not data:
                    return
                if not self._closing.is_set():
                    dest.write(data)
                    dest.flush()
        except OSError:
            return
        finally:
            os.close(fd)

    def _copy_in(self, path: str, src: BinaryIO, on_eof: Callable[[], None] | None) -> None:
        fd = os.open(path, os.O_WRONLY)  # blocks until the runtime opens the read side
        # A real file is read through its descriptor: a buffered reader's lock, held by this thread
        # while it waits for input, would abort the interpreter's exit (the process ended, stdin did not).
        read = functools.partial(os.read, src.fileno()) if _has_fd(src) else getattr(src, "read1", src.read)
        try:
            while not self._closing.is_set():
                data = read(_CHUNK)
                if not data:
                    break
                os.write(fd, data)
        except OSError:
            pass
        finally:
            os.close(fd)
        if on_eof is not None and not self._closing.is_set():
            with contextlib.suppress(Exception):
                on_eof()

    def wait(self, timeout: float | None = None) -> bool:
        """True once every output FIFO is at end of file."""
        for t in self._outputs:
            t.join(timeout)
        return not any(t.is_alive() for t in self._outputs)

    def close(self, remove: bool = True) -> None:
        """Stop copying and remove the FIFOs (unless ``remove`` is False: a detach, not an end).

        Unblocks opens still waiting for the other side.
        """
        self._closing.set()
        io = self.fifos.io
        for path, flags in ((io.stdout, os.O_WRONLY), (io.stderr, os.O_WRONLY), (io.stdin, os.O_RDONLY)):
            if not path:
                continue
            with contextlib.suppress(OSError):
                if stat.S_ISFIFO(os.stat(path).st_mode):
                    os.close(os.open(path, flags | os.O_NONBLOCK))
        for t in self._outputs:
            t.join(1.0)
        if remove:
            self.fifos.remove()
