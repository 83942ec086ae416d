"""A process's stdio: the client's FIFOs handed to runc as they are, or copied through a pty.

containerd's FIFO model: the client made the FIFOs, holds the read side of
stdout/stderr and the write side of stdin, and may come and go.  Without a
terminal the shim copies nothing — runc passes the fds to the process — and
only keeps one fd per FIFO so that the client's absence changes nothing:

* stdout/stderr: the process gets a write-only fd; the shim keeps a read
  fd it never reads, so the process never sees EPIPE when the client goes
  away — it blocks once the pipe buffer (64 KiB) is full, as under
  containerd, until a reader drains it.  The shim never blocks on it.
* stdin: the process gets a (blocking) read fd; the shim keeps a write fd
  so the process does not see EOF when the client's writer closes (it may
  be restarting).  ``close_io`` drops the shim's writer: EOF reaches the
  process once the client's writer is closed too — containerd's CloseIO.

One exception: stderr goes to the process through a pipe that the shim
copies into the FIFO once runc has succeeded, because runc writes its own
complaints (a missing program, a bad spec) to the stderr it is given.  On
failure those stay in the pipe and are dropped, so the client's stream
holds only the process's output and the error comes back once, as the
call's — as with containerd, whose shim copies every stream.

Every open is non-blocking (a FIFO opened read-only with O_NONBLOCK needs
no writer; write-only after our own reader exists does not block), so a
missing peer never stalls the shim.

With a terminal, runc sends the pty master over a console socket; the
shim copies master → stdout FIFO and stdin FIFO → master in its loop with
non-blocking fds and back-pressure (a full FIFO pauses reading the pty,
which in turn blocks the process, never the shim).
"""

from __future__ import annotations

import _socket
import fcntl
import os
import select
import stat
import struct
import sys
import termios

from ._loop import IN, OUT, Loop

TYPE_CHECKING = False  # typing costs the shim milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Console", "ConsoleSocket", "Pump", "Stdio", "open_stdio"]

_CHUNK = 65536


def _path(uri: str) -> str:
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if "://" in uri.split("/", 1)[0] + "/":
        raise ValueError(f"stdio URI {uri!r}: only FIFO and file paths are supported")
    return uri


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


class Stdio:
    """The fds of one process's stdio while it lives.

    ``for_runtime`` go to runc as fds 0-2 and are closed once runc returned;
    ``keep`` stay open until the process exits (the FIFO keepers above);
    ``stdin_writer`` is the stdin keeper ``close_io`` closes.  With a
    terminal, ``stdin_reader``/``output`` are the FIFO ends the pumps use.
    """

    def __init__(self) -> None:
        self.for_runtime: list[int] = []
        self.keep: list[int] = []
        self.stdin_writer = -1
        self.stdin_reader = -1
        self.output = -1
        self.relay_src = -1
        self.relay_dst = -1
        self.relay: Pump | None = None

    def start_relay(self, loop: Loop) -> None:
        """Start copying the stderr pipe into its FIFO: runc succeeded, what comes now is the process's."""
        if self.relay_src >= 0 and self.relay is None:
            os.set_blocking(self.relay_src, False)
            self.relay = Pump(loop, self.relay_src, self.relay_dst, self.close_relay)

    def close_relay(self) -> None:
        if self.relay is not None and not self.relay.done:
            self.relay.stop()
        for fd in (self.relay_src, self.relay_dst):
            if fd >= 0:
                os.close(fd)
        self.relay_src = self.relay_dst = -1

    def runtime_fds(self) -> tuple[int, int, int]:
        a, b, c = self.for_runtime
        return a, b, c

    def runtime_done(self) -> None:
        """Close our copies of what runc passed to the process (the process holds its own)."""
        for fd in set(self.for_runtime):
            os.close(fd)
        self.for_runtime = []

    def close_stdin(self) -> None:
        if self.stdin_writer >= 0:
            os.close(self.stdin_writer)
            self.stdin_writer = -1

    def close_output(self) -> None:
        if self.output >= 0:
            os.close(self.output)
            self.output = -1

    def close_input(self) -> None:
        if self.stdin_reader >= 0:
            os.close(self.stdin_reader)
            self.stdin_reader = -1

    def close(self, keep_relay: bool = False) -> None:
        """Close everything; ``keep_relay`` lets a running stderr copy finish on its own (it closes its fds)."""
        self.runtime_done()
        if not (keep_relay and self.relay is not None and not self.relay.done):
            self.close_relay()
        self.close_stdin()
        self.close_input()
        self.close_output()
        for fd in self.keep:
            os.close(fd)
        self.keep = []


def open_stdio(stdin: str, stdout: str, stderr: str, terminal: bool) -> Stdio:
    """Open a process's stdio without ever blocking (see the module docstring)."""
    s = Stdio()
    try:
        stdin, stdout, stderr = _path(stdin), _path(stdout), _path(stderr)
        if terminal:
            s.for_runtime = [os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)] * 3
            if stdin:
                s.stdin_reader = os.open(stdin, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                if _is_fifo(stdin):
                    s.stdin_writer = os.open(stdin, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            if stdout:
                if _is_fifo(stdout):
                    s.output = os.open(stdout, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
                else:
                    s.output = os.open(stdout, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            return s
        null = -1

        def devnull() -> int:
            nonlocal null
            if null < 0:
                null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            return null

        if stdin and _is_fifo(stdin):
            reader = os.open(stdin, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            s.for_runtime.append(reader)
            s.stdin_writer = os.open(stdin, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.set_blocking(reader, True)
        elif stdin:
            s.for_runtime.append(os.open(stdin, os.O_RDONLY | os.O_CLOEXEC))
        else:
            s.for_runtime.append(devnull())
        opened: dict[str, int] = {}
        for is_stderr, path in ((False, stdout), (True, stderr)):
            if not path:
                s.for_runtime.append(devnull())
            elif path in opened:
                s.for_runtime.append(opened[path])
            elif is_stderr and _is_fifo(path):
                s.keep.append(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
                s.relay_dst = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                s.relay_src, write_end = os.pipe2(os.O_CLOEXEC)
                s.for_runtime.append(write_end)
            elif _is_fifo(path):
                s.keep.append(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
                opened[path] = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                s.for_runtime.append(opened[path])
            else:
                opened[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
                s.for_runtime.append(opened[path])
        return s
    except BaseException:
        s.close()
        raise


class Pump:
    """Copies ``src`` to ``dst`` in the loop; both non-blocking.  Stops at EOF or an error of either."""

    def __init__(self, loop: Loop, src: int, dst: int, on_done: Callable[[], None]) -> None:
        self._loop = loop
        self.src = src
        self.dst = dst
        self._pending = b""
        self._on_done = on_done
        self.done = False
        loop.add(src, IN, self._readable)

    def _readable(self, _events: int) -> None:
        self.drain(once=True)

    def drain(self, once: bool = False) -> None:
        """Copy what is there now; with ``once`` a single read (the loop calls again)."""
        while not self.done and not self._pending:
            try:
                data = os.read(self.src, _CHUNK)
            except BlockingIOError:
                return
            except OSError:  # EIO: the pty's last slave fd closed
                self.finish()
                return
            if not data:
                self.finish()
                return
            self._write(data)
            if once:
                return

    def _write(self, data: bytes) -> None:
        try:
            n = os.write(self.dst, data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.finish()
            return
        if n < len(data):
            # Stop reading until dst drains: unregistered, since epoll reports a hang-up even on a zero mask.
            self._pending = data[n:]
            self._loop.remove(self.src)
            self._loop.add(self.dst, OUT, self._writable)

    def _writable(self, _events: int) -> None:
        data, self._pending = self._pending, b""
        self._loop.remove(self.dst)
        self._loop.add(self.src, IN, self._readable)
        self._write(data)

    def finish(self) -> None:
        if self.done:
            return
        self.stop()
        self._on_done()

    def stop(self) -> None:
        """Stop copying, without the done callback (its owner is closing the fds)."""
        self.done = True
        self._loop.remove(self.src)
        self._loop.remove(self.dst)


class ConsoleSocket:
    """The socket runc connects to with ``--console-socket`` to hand over the pty master."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            self.sock.bind(path)
            self.sock.listen(1)
        except BaseException:
            self.close()
            raise

    def receive(self, timeout: float = 10.0) -> int:
        """The master fd runc sent (it connects and sends before ``create``/``exec`` returns)."""
        p = select.poll()
        p.register(self.sock, select.POLLIN)
        if not p.poll(timeout * 1000):
            raise OSError(110, "the runtime sent no pty master")
        fd, _ = self.sock._accept()  # type: ignore[attr-defined]  # _socket's accept: an fd
        conn = _socket.socket(fileno=fd)
        try:
            conn.settimeout(timeout)
            _, ancillary, _, _ = conn.recvmsg(4096, _socket.CMSG_SPACE(4), _socket.MSG_CMSG_CLOEXEC)
        finally:
            conn.close()
        fds = [
            int.from_bytes(data[i : i + 4], sys.byteorder, signed=True)
            for level, kind, data in ancillary
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
            for i in range(0, len(data) - 3, 4)
        ]
        for extra in fds[1:]:
            os.close(extra)
        if not fds:
            raise OSError(71, "the runtime sent no pty master")
        return fds[0]

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class Console:
    """A process's pty master and the two copies through it; the FIFO ends stay ``stdio``'s to close."""

    def __init__(self, loop: Loop, master: int, stdio: Stdio, on_output_done: Callable[[], None]) -> None:
        self.master = master
        os.set_blocking(master, False)
        self._loop = loop
        self._fds = [master]
        self._stdio = stdio
        self._on_output_done = on_output_done
        self.output: Pump | None = None
        self.input: Pump | None = None
        if stdio.output >= 0:
            self.output = Pump(loop, self._dup(), stdio.output, self._output_done)
        if stdio.stdin_reader >= 0:
            self.input = Pump(loop, stdio.stdin_reader, self._dup(), stdio.close_input)

    def _dup(self) -> int:
        """One fd per direction: epoll watches an fd once, and the master is read and written."""
        fd = os.dup(self.master)
        self._fds.append(fd)
        return fd

    def _output_done(self) -> None:
        self._stdio.close_output()  # the client's reader sees EOF
        self._on_output_done()

    def resize(self, width: int, height: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def close(self) -> None:
        for pump in (self.output, self.input):
            if pump is not None and not pump.done:
                pump.done = True
                self._loop.remove(pump.src)
                self._loop.remove(pump.dst)
        for fd in self._fds:
            os.close(fd)
        self._fds = []
