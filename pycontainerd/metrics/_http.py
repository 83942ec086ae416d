"""The metrics endpoint: HTTP/1.1 on a TCP address, ``GET /v1/metrics`` as containerd serves it.

Only scrapers talk to it, so it answers one request per connection and
closes.  The request head is parsed by :func:`parse_head`, which does no
I/O; its size and the time a client may take to send it are bounded, so a
slow or hostile client costs one small buffer for a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from ..errors import InvalidArgument
from .exposition import CONTENT_TYPE, render
from .registry import Registry

__all__ = ["MAX_HEAD", "PATHS", "MetricsServer", "RequestHead", "parse_head"]

log = logging.getLogger("pycontainerd.metrics")

MAX_HEAD = 8192
HEAD_TIMEOUT = 5.0
PATHS = ("/v1/metrics", "/metrics")


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    path: str
    version: str


def parse_head(data: bytes) -> RequestHead:
    """The request line of a complete head (up to and including the blank line); InvalidArgument if malformed."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidArgument("request head is not ASCII") from None
    line, _, rest = text.partition("\r\n")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1].startswith("/"):
        raise InvalidArgument(f"malformed request line {line[:80]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise InvalidArgument(f"unsupported protocol {version[:16]!r}")
    for header in rest.split("\r\n"):
        if header and ":" not in header:
            raise InvalidArgument(f"malformed header line {header[:80]!r}")
    return RequestHead(method, target.partition("?")[0], version)


def _response(
    status: str, body: bytes, content_type: str = "text/plain; charset=utf-8", extra: str = "", head_only: bool = False
) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    )
    return head.encode() if head_only else head.encode() + body


class MetricsServer:
    """Serves ``registry`` on ``host:port`` until closed."""

    def __init__(self, registry: Registry, host: str, port: int) -> None:
        self.registry = registry
        self.host = host or None  # "" listens on every address, as Go's ":1338" does
        self.port = port
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound address (the port is the real one when 0 was asked for)."""
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True, limit=MAX_HEAD)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                data = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            except asyncio.LimitOverrunError:
                writer.write(_response("431 Request Header Fields Too Large", b"request head too large\n"))
                return
            except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                return
            writer.write(await self._answer(data))
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, data: bytes) -> bytes:
        if len(data) > MAX_HEAD:
            return _response("431 Request Header Fields Too Large", b"request head too large\n")
        try:
            head = parse_head(data)
        except InvalidArgument as e:
            return _response("400 Bad Request", f"{e.message}\n".encode())
        if head.path not in PATHS:
            return _response("404 Not Found", f"no such path {head.path[:200]}; metrics are at {PATHS[0]}\n".encode())
        if head.method not in ("GET", "HEAD"):
            return _response("405 Method Not Allowed", b"only GET\n", extra="Allow: GET, HEAD\r\n")
        body = render(await self.registry.collect())
        return _response("200 OK", body, CONTENT_TYPE, head_only=head.method == "HEAD")
