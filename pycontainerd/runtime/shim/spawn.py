"""Starting a shim: a fresh interpreter, or a fork of the fork server.  asyncio.

::

    forks = ForkServer()                      # one per daemon; started on first use
    await start_shim(shim_args(bundle, "default", "web", path), forkserver=forks)
    ...
    await forks.close()

Either way the shim has bound its socket, written ``<bundle>/address`` and
detached into a session of its own by the time :func:`start_shim` returns,
so the caller may connect at once.  From scratch it is ``python -I -S -c
<boot> <root> --bundle …``: no site-packages, nothing but the standard
library and this package.  Forked (see ``_forkserver``), it skips the
interpreter's start and every import, and shares the fork server's pages;
the command line it shows is the same.  When the fork server cannot be
started, dies, or refuses a command line, that shim starts from scratch —
a fork server only ever makes starting faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import sys
from pathlib import Path
from typing import Any

from ...errors import Unavailable
from . import protocol

__all__ = ["PAD_ARGUMENT", "ForkServer", "shim_args", "shim_command", "start_shim"]

log = logging.getLogger(__name__)

# The shim starts with no site-packages processing: only the stdlib and this package are on its path.
_BOOT = "import sys; sys.path.insert(0, sys.argv.pop(1)); from pycontainerd.runtime.shim._main import main; main()"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
PAD_ARGUMENT = "--pad=" + "-" * 2042
"""The fork server's last argument: the argv area its shims' command lines are written into."""
MAX_FAILURES = 3
"""Fork server failures in a row after which shims are only started from scratch."""
IDLE_TIMEOUT = 300.0
"""Seconds without a shim to fork after which the fork server is stopped (the next shim starts it again)."""


def shim_command(python: str = sys.executable) -> list[str]:
    """The interpreter and boot code of a shim, before its own arguments."""
    return [python, "-I", "-S", "-c", _BOOT, _PACKAGE_ROOT]


def shim_args(bundle: Path, namespace: str, id: str, socket_path: str) -> list[str]:
    return ["--bundle", str(bundle), "--namespace", namespace, "--id", id, "--socket", socket_path]


def _failed(what: str, detail: str) -> Unavailable:
    return Unavailable(f"shim for {what} failed to start: {detail}")


async def exec_shim(argv: list[str], what: str, timeout: float) -> None:
    """Run a shim from scratch and wait for its first process to report (it exits once the shim listens)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as e:
        raise _failed(what, f"{argv[0]}: {e.strerror}") from None
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise Unavailable(f"shim for {what}: no answer within {timeout}s") from None
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip().splitlines()
        raise _failed(what, message[-1] if message else f"exit status {proc.returncode}")


class ForkServerDown(Exception):
    """The fork server is not there to fork (not started, died, or refused): start the shim from scratch."""


class ForkServer:
    """The daemon's handle on one fork server process: started on first use, asked for one shim at a time.

    The server is the daemon's child, in its process group: it exits when
    the daemon closes its end of the socket — or dies — and its shims do not.
    A server left idle for ``idle_timeout`` seconds is stopped, so a daemon
    that runs no containers any more holds no interpreter for them.
    """

    def __init__(
        self, python: str = sys.executable, *, timeout: float = 10.0, idle_timeout: float = IDLE_TIMEOUT
    ) -> None:
        self.python = python
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.pid = 0
        """The server's pid while it runs."""
        self.failures = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = protocol.Decoder()
        self._ids = itertools.count(2)  # 1 is the server's greeting
        self._lock = asyncio.Lock()
        self._idle: asyncio.TimerHandle | None = None
        self._stopping: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        return self.failures < MAX_FAILURES

    async def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *shim_command(self.python),
                "--forkserver",
                PAD_ARGUMENT,
                stdin=theirs.fileno(),
                stdout=asyncio.subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        self._decoder = protocol.Decoder()
        greeting = await self._read(1)
        self.pid = int(greeting["pid"])

    async def _read(self, rid: int) -> dict[str, Any]:
        """The result of request ``rid``; ForkServerDown when the server is gone; Unavailable on its error."""
        assert self._reader is not None
        while True:
            data = await self._reader.read(65536)
            if not data:
                raise ForkServerDown("the fork server exited")
            for message in self._decoder.feed(data):
                got, result, error = protocol.parse_reply(message)
                if got != rid:
                    continue
                if error is not None:
                    raise _Refused(*error)
                assert result is not None
                return result

    async def fork(self, argv: list[str], args: list[str], what: str) -> int:
        """Fork a shim showing ``argv`` and running with ``args``; the pid of its (exited) first process.

        Unavailable when the shim failed to start; ForkServerDown when the
        server could not be asked (the caller starts the shim from scratch).
        """
        async with self._lock:
            if not self.usable:
                raise ForkServerDown("the fork server failed too often")
            try:
                if self._writer is None:
                    await asyncio.wait_for(self._start(), self.timeout)
                assert self._writer is not None
                rid = next(self._ids)
                self._writer.write(protocol.encode(protocol.request(rid, "spawn", {"cmdline": argv, "args": args})))
                await self._writer.drain()
                result = await asyncio.wait_for(self._read(rid), self.timeout)
            except _Refused as e:
                if e.code == "unavailable":
                    raise _failed(what, e.message) from None
                raise ForkServerDown(e.message) from None
            except (OSError, TimeoutError, ForkServerDown, protocol.ProtocolError, KeyError, ValueError) as e:
                self.failures += 1
                log.warning("fork server: %s; starting shims from scratch until it is restarted", e or type(e).__name__)
                await self._stop()
                raise ForkServerDown(str(e)) from None
            finally:
                if self._writer is not None:
                    self._idle_after(self.idle_timeout)
            self.failures = 0
            return int(result["pid"])

    def _idle_after(self, seconds: float) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(seconds, self._stop_idle)

    def _stop_idle(self) -> None:
        self._idle = None
        self._stopping = asyncio.get_running_loop().create_task(self.close())

    async def _stop(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None
        proc, self._proc = self._proc, None
        self.pid = 0
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), 2.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    async def close(self) -> None:
        """Stop the server (its shims carry on)."""
        async with self._lock:
            await self._stop()


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def start_shim(
    args: list[str],
    what: str,
    *,
    python: str = sys.executable,
    timeout: float = 10.0,
    forkserver: ForkServer | None = None,
) -> None:
    """Start a shim with ``args`` (see :func:`shim_args`), forked when ``forkserver`` can, else from scratch."""
    argv = [*shim_command(python), *args]
    if forkserver is not None and forkserver.usable:
        try:
            await forkserver.fork(argv, args, what)
            return
        except ForkServerDown:
            pass
    await exec_shim(argv, what, timeout)
