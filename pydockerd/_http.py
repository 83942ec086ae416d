"""HTTP/1.1 for the Engine API: h11's state machine driven over asyncio streams.

h11 does the protocol (parsing, framing, keep-alive, chunked bodies); this
module only moves bytes between it and a connection, in the manner of
hypercorn and httpcore, and hands each complete request to an application:
an async callable from :class:`Request` to :class:`Response`.  A response
body is bytes, sent with a Content-Length, or an async iterator of chunks,
sent chunked and flushed chunk by chunk (a pull's progress).  A request h11
cannot parse gets a 400 with Docker's JSON body and the connection is closed.
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

from pycontainerd.errors import InvalidArgument, ResourceExhausted

from ._errors import error_body, status_and_message

__all__ = ["App", "Request", "Response", "serve_connection"]

log = logging.getLogger("pydockerd")

MAX_BODY = 64 << 20  # bodies are read whole for now; image load and build will stream theirs
MAX_HEAD = 64 << 10
READ_SIZE = 64 << 10


@dataclass
class Request:
    """One request, its body read whole; the router fills in ``version`` and ``params``."""

    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # names lowercased
    body: bytes = b""
    version: str = ""
    params: dict[str, str] = field(default_factory=dict)

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


@dataclass
class Response:
    status: int = 200
    body: bytes | AsyncIterator[bytes] = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

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


App = Callable[[Request], Awaitable[Response]]


def _request(event: h11.Request, body: bytes) -> Request:
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
        body=body,
    )


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class _Connection:
    """One client connection: requests read, answered and kept alive as h11 allows."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: App) -> None:
        self._reader = reader
        self._writer = writer
        self._app = app
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)

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

    async def _read_body(self) -> bytes:
        body = bytearray()
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise ResourceExhausted(f"request body larger than {MAX_BODY} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            else:
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in a request body")

    async def _respond(self, response: Response, head: bool) -> None:
        headers = list(response.headers)
        body = response.body
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
                try:
                    body = await self._read_body()
                except ResourceExhausted as e:
                    await self._fail(413, str(e))
                    return
                request = _request(event, body)
                response = await self._app(request)
                await self._respond(response, head=request.method == "HEAD")
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
