"""Just enough HTTP/1.1 for the daemon's own small endpoints (the debug socket, the metrics port).

One request per connection, then the connection closes; no chunked
bodies, no keep-alive.  Parsing and encoding do no I/O, and refuse at once
what is over its limits, so a hostile client costs a bounded buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "HTTPError",
    "HTTPRequest",
    "Response",
    "encode_request",
    "encode_response",
    "parse_request",
    "parse_response",
    "text_response",
]

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


def parse_request(data: bytes, max_head: int, max_body: int | None) -> HTTPRequest | None:
    """The request at the start of ``data``; None while it is incomplete, HTTPError if it is refused.

    Refused without waiting for more: a head over ``max_head`` bytes, a body
    declared over ``max_body``, a chunked body, anything malformed.
    ``max_body`` None reads the head only: a body is ignored (the
    connection closes after the answer).
    """
    end = data.find(b"\r\n\r\n", 0, max_head + 4)
    if end < 0:
        if len(data) >= max_head + 4:
            raise HTTPError(431, f"request head over {max_head} bytes")
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
    if max_body is None:
        return HTTPRequest(method, target.partition("?")[0], b"")
    if length > max_body:
        raise HTTPError(413, f"request body over {max_body} bytes")
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
