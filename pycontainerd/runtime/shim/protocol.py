"""The daemon↔shim wire protocol: framing and message shapes, no I/O.

Both ends speak over the shim's unix socket (its path is in
``<bundle>/address`` as ``unix://PATH``).  Every message is one frame::

    frame   = length payload
    length  = 4 bytes, big-endian unsigned: the payload's size, at most MAX_FRAME
    payload = a JSON object, UTF-8

Three kinds of object travel:

* request (client → shim): ``{"id": N, "op": NAME, "args": {...}}`` with ``N``
  a positive integer the client picks, unique among its requests in flight;
* reply (shim → client): ``{"id": N, "result": {...}}`` or
  ``{"id": N, "error": {"code": CODE, "message": TEXT}}`` — replies may come
  in any order (``wait`` answers only when its process exits);
* event (shim → client, after an ``events`` request on that connection):
  ``{"event": {"seq": S, "topic": "/tasks/exit", ...}}``.

Events stay queued in the shim until acknowledged by ``ack`` with their
``seq`` (acknowledging S acknowledges everything up to S), so a subscriber
that reconnects gets exactly the events nobody acknowledged.

``CODES`` is the closed set of error codes; the client maps each to the
``pycontainerd.errors`` class of the same meaning.  Either side drops a
connection that sends a malformed or oversized frame: the peer is
trusted, but not to be bug-free.

This module imports only ``_cjson`` (the standard library's C JSON codec
without the ``json`` package) and ``struct``: the shim loads it at start-up.
"""

from __future__ import annotations

import struct

from . import _cjson

TYPE_CHECKING = False  # typing costs the shim milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = [
    "CODES",
    "MAX_FRAME",
    "OPS",
    "VERSION",
    "Decoder",
    "ProtocolError",
    "encode",
    "event",
    "failure",
    "parse_reply",
    "parse_request",
    "reply",
    "request",
]

VERSION = 1
MAX_FRAME = 1 << 20
"""A process spec with a large environment fits; anything bigger is a bug or an attack."""

_HEADER = struct.Struct(">I")

OPS = frozenset(
    {
        "ack",
        "close_io",
        "connect",
        "create",
        "delete",
        "events",
        "exec",
        "kill",
        "pause",
        "pids",
        "resize_pty",
        "resume",
        "shutdown",
        "start",
        "state",
        "stats",
        "update",
        "wait",
    }
)

CODES = frozenset(
    {
        "already_exists",
        "deadline_exceeded",
        "failed_precondition",
        "invalid_argument",
        "not_found",
        "unavailable",
        "unimplemented",
        "unknown",
    }
)


class ProtocolError(ValueError):
    """A frame or message that breaks the protocol; the connection carrying it is dropped."""


def encode(message: Mapping[str, Any], limit: int = MAX_FRAME) -> bytes:
    """One frame holding ``message``."""
    try:
        payload = _cjson.dumps(message).encode()
    except (TypeError, ValueError, RecursionError) as e:
        raise ProtocolError(f"message is not JSON: {e}") from None
    if len(payload) > limit:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds the {limit}-byte limit")
    return _HEADER.pack(len(payload)) + payload


class Decoder:
    """Splits a byte stream into messages; keeps at most one partial frame."""

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self._limit = limit
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """The messages completed by ``data``; ProtocolError on a frame that is too large or not an object."""
        self._buf += data
        out: list[dict[str, Any]] = []
        while len(self._buf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buf)
            if size > self._limit:
                raise ProtocolError(f"frame of {size} bytes exceeds the {self._limit}-byte limit")
            end = _HEADER.size + size
            if len(self._buf) < end:
                break
            payload = bytes(self._buf[_HEADER.size : end])
            del self._buf[:end]
            out.append(_decode(payload))
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)


def _decode(payload: bytes) -> dict[str, Any]:
    try:
        value = _cjson.loads(payload)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"payload is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise ProtocolError("payload is not a JSON object")
    return value


def _id(message: Mapping[str, Any]) -> int:
    id = message.get("id")
    if type(id) is not int or id <= 0:
        raise ProtocolError("message id must be a positive integer")
    return id


def request(id: int, op: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"id": id, "op": op, "args": dict(args or {})}


def reply(id: int, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": id, "result": dict(result)}


def failure(id: int, code: str, message: str) -> dict[str, Any]:
    return {"id": id, "error": {"code": code if code in CODES else "unknown", "message": message}}


def event(body: Mapping[str, Any]) -> dict[str, Any]:
    return {"event": dict(body)}


def parse_request(message: Mapping[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """(id, op, args) of a request; ProtocolError when it is not one."""
    id = _id(message)
    op = message.get("op")
    args = message.get("args", {})
    if not isinstance(op, str):
        raise ProtocolError("request op must be a string")
    if not isinstance(args, dict):
        raise ProtocolError("request args must be an object")
    return id, op, args


def parse_reply(message: Mapping[str, Any]) -> tuple[int, dict[str, Any] | None, tuple[str, str] | None]:
    """(id, result, None) or (id, None, (code, message)) of a reply; (0, event, None) for an event."""
    if "event" in message:
        body = message["event"]
        if not isinstance(body, dict) or type(body.get("seq")) is not int or not isinstance(body.get("topic"), str):
            raise ProtocolError("event must be an object with an integer seq and a topic")
        return 0, body, None
    id = _id(message)
    if "error" in message:
        err = message["error"]
        if not isinstance(err, dict):
            raise ProtocolError("reply error must be an object")
        code, text = err.get("code"), err.get("message")
        return id, None, (code if isinstance(code, str) and code in CODES else "unknown", str(text))
    result = message.get("result")
    if not isinstance(result, dict):
        raise ProtocolError("reply has neither a result object nor an error")
    return id, result, None
