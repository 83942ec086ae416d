"""HTTP/1.1 for the Engine API: h11's state machine driven over asyncio streams.

h11 does the protocol (parsing, framing, keep-alive, chunked bodies); this
module only moves bytes between it and a connection, in the manner of
hypercorn and httpcore, and hands each request to an application: an async
callable from :class:`Request` to :class:`Response`.

A request's body is read as the application asks for it — whole
(:meth:`Request.read`) or chunk by chunk (:meth:`Request.stream`, for image
loads and build contexts of any size); what it leaves unread is drained
after the answer.  A response body is bytes, sent with a Content-Length, or
an async iterator of chunks, sent chunked and flushed chunk by chunk (a
pull's progress).  A hijacking response (attach, exec) takes the connection
over after its head: ``101 UPGRADED`` when the client asked for ``Upgrade:
tcp``, else ``200`` and raw bytes, as dockerd answers.  A request h11 cannot
parse gets a 400 with Docker's JSON body and the connection is closed.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import h11

from pycontainerd.errors import InvalidArgument

from ._errors import RequestTooLarge, error_body, status_and_message

__all__ = ["App", "Hijacked", "Request", "Response", "serve_connection"]

log = logging.getLogger("pydockerd")

MAX_BODY = 64 << 20  # a body read whole; streaming routes set their own limits
MAX_DRAIN = 64 << 20  # an unread rest larger than this closes the connection instead
MAX_HEAD = 64 << 10
READ_SIZE = 64 << 10

Receive = Callable[[], Awaitable[bytes]]


async def _no_body() -> bytes:
    return b""


@dataclass
class Request:
    """One request; ``body`` is filled by the router for routes that do not stream theirs."""

    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # names lowercased
    body: bytes = b""
    version: str = ""
    params: dict[str, str] = field(default_factory=dict)
    receive: Receive = field(default=_no_body, repr=False)  # the next chunk of the body; b"" at its end

    def arg(self, name: str, default: str = "") -> str:
        """The last value of query parameter ``name``."""
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        """A boolean query parameter as Docker reads them: ``1``/``true`` (any case) is true."""
        return self.arg(name).strip().lower() in ("1", "true", "yes")

    def json(self) -> Any:
        """The body as JSON (None when empty); 400 when it is not JSON."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InvalidArgument(f"invalid JSON body: {e}") from None

    async def stream(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive."""
        while chunk := await self.receive():
            yield chunk

    async def read(self, limit: int = MAX_BODY) -> bytes:
        """The whole body; RequestTooLarge (413) past ``limit`` bytes."""
        body = bytearray()
        async for chunk in self.stream():
            body += chunk
            if len(body) > limit:
                raise RequestTooLarge(f"request body larger than {limit} bytes")
        return bytes(body)


class Hijacked:
    """A connection taken over by a handler: raw bytes both ways, after the response head."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pending: bytes) -> None:
        self._reader = reader
        self._writer = writer
        self._pending = pending

    async def read(self, n: int = READ_SIZE) -> bytes:
        """Up to ``n`` bytes from the client; b"" once it closed or half-closed its side."""
        if self._pending:
            data, self._pending = self._pending[:n], self._pending[n:]
            return data
        try:
            return await self._reader.read(n)
        except ConnectionError:
            return b""

    async def write(self, data: bytes) -> None:
        """Send ``data``; ConnectionError when the client has gone."""
        self._writer.write(data)
        await self._writer.drain()

    def close_write(self) -> None:
        """Tell the client no more is coming, keeping its side open for reading (stdin after stdout ends)."""
        if self._writer.can_write_eof() and not self._writer.is_closing():
            try:
                self._writer.write_eof()
            except (OSError, RuntimeError):
                pass


HijackFn = Callable[[Hijacked], Awaitable[None]]


@dataclass
class Response:
    status: int = 200
    body: bytes | AsyncIterator[bytes] = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    hijacker: HijackFn | None = None

    @classmethod
    def json(cls, obj: Any, status: int = 200) -> Response:
        body = json.dumps(obj).encode() + b"\n"
        return cls(status, body, [("Content-Type", "application/json")])

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), [("Content-Type", "text/plain; charset=utf-8")])

    @classmethod
    def error(cls, status: int, message: str) -> Response:
        return cls(status, error_body(message), [("Content-Type", "application/json")])

    @classmethod
    def stream(cls, chunks: AsyncIterator[bytes], content_type: str = "application/json") -> Response:
        return cls(200, chunks, [("Content-Type", content_type)])

    @classmethod
    def hijack(cls, fn: HijackFn, content_type: str = "application/vnd.docker.raw-stream") -> Response:
        """Take the connection over with ``fn`` once the head is sent (attach, exec start)."""
        return cls(200, b"", [("Content-Type", content_type)], hijacker=fn)


App = Callable[[Request], Awaitable[Response]]


def _request(event: h11.Request, receive: Receive) -> Request:
    target = event.target.decode("ascii", "replace")
    raw_path, _, raw_query = target.partition("?")
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key = name.decode("ascii", "replace").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return Request(
        method=event.method.decode("ascii", "replace").upper(),
        path=urllib.parse.unquote(raw_path),
        query=urllib.parse.parse_qs(raw_query, keep_blank_values=True),
        headers=headers,
        receive=receive,
    )


def _reason(status: int) -> bytes:
    if status == 101:
        return b"UPGRADED"
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _wants_upgrade(request: Request) -> bool:
    tokens = {t.strip().lower() for t in request.headers.get("connection", "").split(",")}
    return "upgrade" in tokens and request.headers.get("upgrade", "").strip().lower() == "tcp"


class _Connection:
    """One client connection: requests read, answered and kept alive as h11 allows."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: App) -> None:
        self._reader = reader
        self._writer = writer
        self._app = app
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._body_done = True

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            if self._h11.they_are_waiting_for_100_continue:
                await self._send(h11.InformationalResponse(status_code=100, headers=[]))
            self._h11.receive_data(await self._reader.read(READ_SIZE))

    async def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def _receive(self) -> bytes:
        """The next chunk of the current request's body; b"" at its end (and ever after)."""
        while not self._body_done:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                if event.data:
                    return bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("client closed the connection in the middle of a request body")
            else:
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in a request body")
        return b""

    async def _drain(self) -> bool:
        """Discard what the handler left of the body; False when too much is left to wait for."""
        left = MAX_DRAIN
        while not self._body_done:
            chunk = await self._receive()
            left -= len(chunk)
            if left < 0:
                return False
        return True

    async def _respond(self, request: Request, response: Response) -> None:
        headers = list(response.headers)
        body = response.body
        head = request.method == "HEAD"
        if isinstance(body, bytes):
            headers.append(("Content-Length", str(len(body))))
        await self._send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status)))
        if isinstance(body, bytes):
            if body and not head:
                await self._send(h11.Data(data=body))
        else:
            try:
                async for chunk in body:
                    if chunk and not head:
                        await self._send(h11.Data(data=chunk))
            finally:
                aclose = getattr(body, "aclose", None)
                if aclose is not None:
                    await aclose()
        await self._send(h11.EndOfMessage())

    async def _hijack(self, request: Request, response: Response, fn: HijackFn) -> None:
        """Send the head, then hand the raw connection to ``fn``; the connection ends with it."""
        await self._drain()
        if _wants_upgrade(request):  # h11 has taken the Upgrade header as a proposal, which the 101 accepts
            headers = [*response.headers, ("Connection", "Upgrade"), ("Upgrade", "tcp")]
            await self._send(h11.InformationalResponse(status_code=101, headers=headers, reason=b"UPGRADED"))
            pending, _ = self._h11.trailing_data
        else:
            lines = [b"HTTP/1.1 200 OK"]
            lines += [f"{k}: {v}".encode("latin-1") for k, v in response.headers]
            self._writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
            await self._writer.drain()
            pending, _ = self._h11.trailing_data
        await fn(Hijacked(self._reader, self._writer, bytes(pending)))

    async def _fail(self, status: int, message: str) -> None:
        """Answer a request that could not be read, if no answer was begun, and close."""
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = error_body(message)
            headers = [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ]
            try:
                await self._send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
                await self._send(h11.Data(data=body))
                await self._send(h11.EndOfMessage())
            except (h11.LocalProtocolError, ConnectionError):
                pass

    async def run(self) -> None:
        try:
            while True:
                event = await self._next_event()
                if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    return
                if not isinstance(event, h11.Request):
                    raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
                self._body_done = False
                request = _request(event, self._receive)
                response = await self._app(request)
                if response.hijacker is not None:
                    await self._hijack(request, response, response.hijacker)
                    return
                await self._respond(request, response)
                if not await self._drain():
                    return
                if self._h11.our_state is h11.MUST_CLOSE or self._h11.their_state is not h11.DONE:
                    return
                self._h11.start_next_cycle()
        except h11.RemoteProtocolError as e:
            status, message = status_and_message(e)
            await self._fail(e.error_status_hint if 400 <= e.error_status_hint < 500 else status, message)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: App) -> None:
    """Serve one connection until the client closes it or a request says ``Connection: close``."""
    await _Connection(reader, writer, app).run()
