"""The metrics endpoint: HTTP/1.1 on a TCP address, ``GET /v1/metrics`` as containerd serves it.

Only scrapers talk to it, so it answers one request per connection and
closes.  The request head is parsed by :mod:`pycontainerd._http1`, which
does no I/O; its size and the time a client may take to send it are bounded, so a
slow or hostile client costs one small buffer for a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .._http1 import HTTPError, Response, encode_response, parse_request, text_response
from .exposition import CONTENT_TYPE, render
from .registry import Registry

__all__ = ["MAX_HEAD", "PATHS", "MetricsServer"]

log = logging.getLogger("pycontainerd.metrics")

MAX_HEAD = 8192
HEAD_TIMEOUT = 5.0
PATHS = ("/v1/metrics", "/metrics")


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
                writer.write(encode_response(text_response(431, f"request head over {MAX_HEAD} bytes")))
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
        try:
            request = parse_request(data, MAX_HEAD, None)
        except HTTPError as e:
            return encode_response(e.response())
        if request is None:  # readuntil stopped at the blank line, so only an oversized head gets here
            return encode_response(text_response(431, f"request head over {MAX_HEAD} bytes"))
        if request.path not in PATHS:
            message = f"no such path {request.path[:200]}; metrics are at {PATHS[0]}"
            return encode_response(text_response(404, message))
        if request.method not in ("GET", "HEAD"):
            return encode_response(text_response(405, "only GET", allow="GET, HEAD"))
        body = render(await self.registry.collect())
        return encode_response(Response(200, body, CONTENT_TYPE), head_only=request.method == "HEAD")
