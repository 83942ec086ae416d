"""The "local" mode: pycontainerd's own plugin graph, run inside pydockerd's process.

``--containerd embedded`` — the default when no containerd address is given
— starts the very server the ``pycontainerd`` daemon runs (its builtin
plugins, their start-up and shut-down hooks, the task runtime and its shims)
in pydockerd's process, instead of reaching a containerd that runs apart.
It is the default for the reason dockerd's is: without ``--containerd``
dockerd starts a containerd of its own, so that one command gives a working
engine; a containerd that runs apart is something a user opts into by
naming its socket.  Files are laid out as dockerd lays out the containerd
it manages: the persistent root under the data root
(``<data-root>/containerd/daemon``), transient state and the gRPC socket
under the exec root (``<exec-root>/containerd/daemon``,
``<exec-root>/containerd/containerd.sock``), so that
``ctr -a <exec-root>/containerd/containerd.sock -n moby images ls`` shows
what pydockerd made.  The socket is the server's own (mode 0660, root's), in
a directory only root may list.

**pydockerd's client still talks gRPC to these services, over that socket.**
The stores are Protocols that the gRPC proxies also implement, but the
services read the namespace and lease of every call from gRPC metadata, and
the client's task, event, lease, transfer and diff calls are gRPC stubs; an
in-process client would be a second client for every service to keep in
step with the first, to save a unix-socket round trip that is small beside
what each call does (a pull, an unpack, a shim call).  Measured here: a
small call's round trip, the service's own work included, is about 0.4 ms,
and ``docker run --rm`` takes about 0.1 s in local mode as in remote mode
over a pycontainerd process.  It is not worth it; the socket also keeps
``ctr`` working on the same daemon.

The server runs on a thread with an event loop of its own: pydockerd's loop
serves HTTP and may wait on the client (the client is synchronous), which
must never wait on its own loop.  Stopping is the pycontainerd daemon's
SIGTERM path — health NOT_SERVING, calls finished, plugins closed in
reverse order, socket removed, root unlocked — and shims outlive it as they
outlive that daemon; the next start reconnects to them (or cleans up after
those that died meanwhile).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from pathlib import Path

from pycontainerd.errors import FailedPrecondition, InvalidArgument, Unavailable
from pycontainerd.server.config import Config, ConfigError, GRPCConfig
from pycontainerd.server.server import AddressInUse, RootLocked, Server

__all__ = ["EMBEDDED", "EmbeddedContainerd", "embedded_layout"]

log = logging.getLogger("pydockerd")

EMBEDDED = "embedded"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
SOCKET_NAME = "containerd.sock"
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes, the last a NUL


def embedded_layout(data_root: str | Path, exec_root: str | Path) -> tuple[Path, Path, Path]:
    """(root, state, socket) of the embedded containerd; raises InvalidArgument for relative roots."""
    for flag, value in (("--data-root", data_root), ("--exec-root", exec_root)):
        if not str(value).startswith("/"):
            raise InvalidArgument(f"{flag} {value}: want an absolute path")
    base = Path(exec_root) / "containerd"
    socket = base / SOCKET_NAME
    if len(os.fsencode(socket)) > MAX_SOCKET_PATH:
        raise InvalidArgument(f"--exec-root {exec_root}: the containerd socket {socket} would be too long a path")
    return Path(data_root) / "containerd" / "daemon", base / "daemon", socket


class EmbeddedContainerd:
    """pycontainerd's server on a thread of pydockerd: :meth:`start`, then :meth:`stop`."""

    def __init__(self, data_root: str | Path, exec_root: str | Path, *, debug: bool = False) -> None:
        self.root, self.state, socket = embedded_layout(data_root, exec_root)
        self.address = str(socket)
        config = Config(root=self.root, state=self.state, grpc=GRPCConfig(address=self.address))
        config.debug.level = "debug" if debug else "warn"
        try:
            self._server = Server(config)
        except ConfigError as e:  # the defaults are valid; only a broken install gets here
            raise FailedPrecondition(f"embedded containerd: {e}") from None
        self._debug = debug
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Lock the root, load the plugins and serve; returns once the socket answers.

        Raises FailedPrecondition when another daemon holds the root or the
        socket's address, Unavailable when the server cannot start.
        """
        if self._thread is not None:
            raise FailedPrecondition("embedded containerd already started")
        logging.getLogger("pycontainerd").setLevel(logging.DEBUG if self._debug else logging.WARNING)
        try:
            self._server.lock()
        except RootLocked as e:
            raise FailedPrecondition(f"embedded containerd: {e}") from None
        except OSError as e:
            raise Unavailable(f"embedded containerd: cannot use root {self.root}: {e.strerror}") from None
        os.makedirs(Path(self.address).parent, mode=0o711, exist_ok=True)
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(started,), name="containerd", daemon=True)
        self._thread.start()
        try:
            started.result(timeout)
        except concurrent.futures.TimeoutError:
            self.stop()
            raise Unavailable(f"embedded containerd did not start within {timeout:g}s") from None
        except AddressInUse as e:
            self._join()
            raise FailedPrecondition(f"embedded containerd: {e}") from None
        except Exception as e:
            self._join()
            raise Unavailable(f"embedded containerd: {e}") from None
        log.info("embedded containerd serving on %s (root %s)", self.address, self.root)

    def _run(self, started: concurrent.futures.Future[None]) -> None:
        try:
            asyncio.run(self._serve(started))
        except BaseException as e:  # the thread's end: reported to start(), or logged after it
            if not started.done():
                started.set_exception(e)
            else:
                log.exception("embedded containerd stopped with an error")
        finally:
            self._server.unlock()

    async def _serve(self, started: concurrent.futures.Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._server.start()
            started.set_result(None)
            await self._stop.wait()
        finally:
            await self._server.stop()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop serving and close the plugins (shims carry on); waits up to ``timeout`` seconds."""
        loop, event = self._loop, self._stop
        if loop is not None and event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop closed meanwhile: the thread is ending anyway
                pass
        self._join(timeout)

    def _join(self, timeout: float = STOP_TIMEOUT) -> None:
        thread = self._thread
        if thread is None:
            return
        thread.join(timeout)
        if thread.is_alive():
            log.warning("embedded containerd did not stop within %gs", timeout)
        else:
            self._thread = None
            log.info("embedded containerd stopped")
