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
a few are served at once.  Requests are parsed by :func:`parse_request`,
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
from dataclasses import dataclass
from typing import Any, Protocol

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
    "HTTPError",
    "HTTPRequest",
    "Response",
    "call",
    "debug_socket_path",
    "encode_request",
    "encode_response",
    "parse_request",
    "parse_response",
    "respond",
    "text_response",
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

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


# -- the protocol, without I/O ----------------------------------------------


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    method: str
    path: str  # without the query
    body: bytes


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    allow: str = ""


class HTTPError(Exception):
    """A request refused before it reaches an endpoint; ``status`` says how."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> Response:
        return text_response(self.status, self.message)


def text_response(status: int, message: str, allow: str = "") -> Response:
    """A one-line plain-text answer."""
    return Response(status, f"{message}\n".encode(), allow=allow)


def parse_request(data: bytes) -> HTTPRequest | None:
    """The request at the start of ``data``; None while it is incomplete, HTTPError if it is refused.

    Refused without waiting for more: a head over :data:`MAX_HEAD`, a body
    declared over :data:`MAX_BODY`, a chunked body, anything malformed.
    """
    end = data.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0:
        if len(data) >= MAX_HEAD + 4:
            raise HTTPError(431, f"request head over {MAX_HEAD} bytes")
        return None
    try:
        head = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise HTTPError(400, "request head is not ASCII") from None
    request_line, *header_lines = head.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise HTTPError(400, f"malformed request line {request_line[:80]!r}")
    method, target, version = parts
    if not (method.isalpha() and method.isupper()) or not target.startswith("/"):
        raise HTTPError(400, f"malformed request line {request_line[:80]!r}")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HTTPError(400, f"unsupported protocol {version[:16]!r}")
    length: int | None = None
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HTTPError(400, f"malformed header line {line[:80]!r}")
        name, value = name.lower(), value.strip()
        if name == "transfer-encoding":
            raise HTTPError(501, "chunked bodies are not accepted; send Content-Length")
        if name == "content-length":
            if not value.isdigit() or len(value) > 12 or (length is not None and int(value) != length):
                raise HTTPError(400, f"bad Content-Length {value[:20]!r}")
            length = int(value)
    length = length or 0
    if length > MAX_BODY:
        raise HTTPError(413, f"request body over {MAX_BODY} bytes")
    start = end + 4
    if len(data) < start + length:
        return None
    return HTTPRequest(method, target.partition("?")[0], data[start : start + length])


def encode_response(response: Response, head_only: bool = False) -> bytes:
    reason = _REASONS.get(response.status, "Unknown")
    allow = f"Allow: {response.allow}\r\n" if response.allow else ""
    head = (
        f"HTTP/1.1 {response.status} {reason}\r\nContent-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n{allow}Connection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + response.body


def encode_request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: pycontainerd\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


def parse_response(data: bytes) -> tuple[int, bytes]:
    """Status and body of a complete response (the connection closed after it); ValueError if malformed."""
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            length = int(value.strip())
            if len(body) < length:
                raise ValueError(f"response cut short: {len(body)} of {length} body bytes")
            body = body[:length]
    return int(parts[1]), body


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
                while (request := parse_request(data)) is None:
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
