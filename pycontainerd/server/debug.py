"""The debug socket (``[debug] address``): stacks, log level and vitals over HTTP/1.1 on a unix socket.

containerd serves Go's pprof there; a Python daemon's equivalent is a dump
of every thread's and task's stack (``GET /debug/stacks``), the log level
read and changed while running (``GET``, ``PUT`` or ``POST
/debug/loglevel``) and a few vitals as JSON (``GET /debug/vars``).

The server runs on a thread and event loop of its own, so it still answers
when the daemon's loop is stuck — which is when a stack dump is wanted.
Only local users the socket's mode (0660) and owner admit can connect, but
none of them may make it allocate without bound or hold it: a request's
head and body are capped, a client has a few seconds to send it, and only
a few are served at once.  Requests are parsed by :mod:`pycontainerd._http1`,
which does no I/O; :func:`call` is the matching client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pathlib
import socket
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

from .._http1 import (
    HTTPError,
    HTTPRequest,
    Response,
    encode_request,
    encode_response,
    parse_request,
    parse_response,
    text_response,
)
from ..log import levels, stacks
from ._unixsock import claim, own, release
from .config import ConfigError

__all__ = [
    "MAX_BODY",
    "MAX_HEAD",
    "PATHS",
    "DaemonEndpoints",
    "DebugServer",
    "Endpoints",
    "call",
    "debug_socket_path",
    "respond",
]

log = logging.getLogger("pycontainerd.debug")

MAX_HEAD = 8192
MAX_BODY = 1024  # a log level fits many times over
MAX_RESPONSE = 256 << 20  # what the client accepts: a dump of many thousand tasks
READ_TIMEOUT = 5.0
WRITE_TIMEOUT = 30.0
MAX_CLIENTS = 8

PATHS = {
    "/debug/stacks": "GET: every thread's and asyncio task's stack",
    "/debug/loglevel": "GET: the log level; PUT or POST a level (trace, debug, info, warn, error) to change it",
    "/debug/vars": "GET: pid, version, uptime, threads, tasks, log level and paths, as JSON",
}

# -- endpoints ----------------------------------------------------------------


class Endpoints(Protocol):
    """What the debug socket shows and changes."""

    def stacks(self) -> str: ...

    def vars(self) -> dict[str, Any]: ...

    def level(self) -> str: ...

    def set_level(self, name: str) -> str:
        """Change the log level; returns it normalised, ValueError naming the levels if it is none."""
        ...


def respond(request: HTTPRequest, endpoints: Endpoints) -> Response:
    """The answer to one request (HEAD is answered as GET; the caller drops the body)."""
    method = "GET" if request.method == "HEAD" else request.method
    path = request.path.rstrip("/") or "/"
    if path in ("/", "/debug"):
        if method != "GET":
            return text_response(405, "only GET", allow="GET, HEAD")
        return text_response(200, "\n".join(f"{p}  {what}" for p, what in PATHS.items()))
    if path == "/debug/stacks":
        if method != "GET":
            return text_response(405, "only GET", allow="GET, HEAD")
        return Response(200, endpoints.stacks().encode(errors="backslashreplace"))
    if path == "/debug/vars":
        if method != "GET":
            return text_response(405, "only GET", allow="GET, HEAD")
        body = json.dumps(endpoints.vars(), indent=2, default=str) + "\n"
        return Response(200, body.encode(), "application/json")
    if path == "/debug/loglevel":
        if method == "GET":
            return text_response(200, endpoints.level())
        if method not in ("PUT", "POST"):
            return text_response(405, "GET to read the level, PUT or POST to set it", allow="GET, HEAD, PUT, POST")
        try:
            name = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return text_response(400, "the level is not UTF-8 text")
        try:
            return text_response(200, endpoints.set_level(name))
        except ValueError as e:
            return text_response(400, str(e))
    return text_response(404, f"no such path {request.path[:200]}; see / for what there is")


class DaemonEndpoints:
    """The running daemon as the debug socket shows it: its loop's tasks, the log level, its paths."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None, info: Mapping[str, Any]) -> None:
        self.loop = loop
        self._info = dict(info)
        self._started = time.time()
        self._started_mono = time.monotonic()

    def stacks(self) -> str:
        return stacks.dump(self.loop)

    def vars(self) -> dict[str, Any]:
        tasks = len(asyncio.all_tasks(self.loop)) if self.loop is not None else 0
        return {
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._started)),
            "uptime_seconds": round(time.monotonic() - self._started_mono, 3),
            "threads": threading.active_count(),
            "tasks": tasks,
            "log_level": levels.level(),
            **self._info,
        }

    def level(self) -> str:
        return levels.level()

    def set_level(self, name: str) -> str:
        old = levels.level()
        new = levels.set_level(name)
        if new != old:
            log.warning("log level changed from %s to %s through the debug socket", old, new)
        return new


# -- the socket -----------------------------------------------------------------


def debug_socket_path(address: str) -> pathlib.Path:
    """The filesystem path of ``[debug] address`` (a path or ``unix://`` path); ConfigError otherwise."""
    path = address
    for prefix in ("unix://", "unix:"):
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    if not path or "://" in path or ("/" not in path and ":" in path):
        raise ConfigError(f"debug.address: {address!r} is not a unix socket path (the debug socket is local only)")
    return pathlib.Path(path).absolute()


class DebugServer:
    """Serves ``endpoints`` on the unix socket ``path`` from a thread of its own."""

    def __init__(
        self, path: pathlib.Path, endpoints: Endpoints, uid: int | None = None, gid: int | None = None
    ) -> None:
        self.path = path
        self.endpoints = endpoints
        self._uid = uid
        self._gid = gid
        self._ino: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._clients = 0

    def start(self) -> None:
        """Bind the socket (0660, owned as configured) and serve; raises AddressInUse or OSError."""
        sock = self._bind()
        self._thread = threading.Thread(target=self._run, args=(sock,), name="debug-server", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10.0)
        log.info("serving... address=%s", self.path)

    def stop(self) -> None:
        """Stop serving and remove the socket if it is still the one this server made."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        release(self.path, self._ino)
        self._ino = None

    def _bind(self) -> socket.socket:
        claim(self.path, "debug address")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            os.fchmod(sock.fileno(), 0o660)  # Linux gives the socket file this mode at bind: never wider
            sock.bind(str(self.path))
            self._ino = own(self.path, self._uid, self._gid)
            sock.listen(MAX_CLIENTS)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            self.stop()
            raise
        return sock

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(sock))
        except Exception:
            log.exception("debug server failed")
        finally:
            self._ready.set()

    async def _serve(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_unix_server(self._client, sock=sock, limit=MAX_HEAD)
        self._ready.set()
        async with server:
            await self._stopping.wait()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._clients >= MAX_CLIENTS:
                response: Response | None = text_response(503, "too many debug clients; try again")
                head_only = False
            else:
                self._clients += 1
                try:
                    response, head_only = await self._answer(reader)
                finally:
                    self._clients -= 1
            if response is not None:
                writer.write(encode_response(response, head_only))
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[Response | None, bool]:
        """The response to the one request a connection may send (None if it hung up first)."""
        data = b""
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                while (request := parse_request(data, MAX_HEAD, MAX_BODY)) is None:
                    chunk = await reader.read(MAX_HEAD)
                    if not chunk:
                        return None, False
                    data += chunk
        except TimeoutError:
            return text_response(408, f"request not received within {READ_TIMEOUT:g}s"), False
        except HTTPError as e:
            return e.response(), False
        try:
            return respond(request, self.endpoints), request.method == "HEAD"
        except Exception as e:
            log.exception("debug endpoint %s failed", request.path)
            return text_response(500, f"{type(e).__name__}: {e}"), False


def call(
    path: str | os.PathLike[str], method: str, target: str, body: bytes = b"", timeout: float = 30.0
) -> tuple[int, bytes]:
    """One request to the debug socket at ``path``: its status and body; OSError or ValueError on failure."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
        try:
            sock.sendall(encode_request(method, target, body))
        except (BrokenPipeError, ConnectionResetError):
            pass  # a busy server answers 503 and closes before reading: its answer may be there to read
        chunks: list[bytes] = []
        size = 0
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_RESPONSE:
                raise ValueError(f"response over {MAX_RESPONSE} bytes")
    return parse_response(b"".join(chunks))
