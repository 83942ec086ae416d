"""Errors of the Engine API, and the one place any error becomes an HTTP status and body.

pydockerd raises :mod:`pycontainerd.errors` classes, which already carry the
HTTP status Docker gives the same kind of failure (NotFound 404,
InvalidArgument 400, AlreadyExists 409, Unavailable 503, ...); the few kinds
containerd has no class for (an image delete conflict, a wrong method) are
added here under the same root.  The body is Docker's ``{"message": "..."}``.
"""

from __future__ import annotations

import json
import logging

import h11

from pycontainerd.errors import ContainerdError, InvalidArgument, NotFound

__all__ = [
    "Conflict",
    "MethodNotAllowed",
    "NoSuchImage",
    "PageNotFound",
    "RequestTooLarge",
    "error_body",
    "status_and_message",
]

log = logging.getLogger("pydockerd")


class Conflict(ContainerdError):
    """The request is valid but clashes with the daemon's state (an image referenced elsewhere)."""

    http_status = 409


class MethodNotAllowed(ContainerdError):
    http_status = 405


class RequestTooLarge(ContainerdError):
    """A request body over the limit of its route."""

    http_status = 413


class NoSuchImage(NotFound):
    """Docker's "No such image: <ref>"; ``ref`` as the user wrote it, or its familiar form."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"No such image: {ref}")


class PageNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("page not found")


def status_and_message(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and message of any exception a handler let out.

    Our own errors and pycontainerd's say theirs; a malformed request is a
    400; anything else is a bug, logged with its traceback and answered with
    a 500 that does not leak it.
    """
    if isinstance(exc, ContainerdError):
        return exc.http_status, exc.message
    if isinstance(exc, h11.RemoteProtocolError):
        return 400, f"bad request: {exc}"
    if isinstance(exc, (UnicodeError, json.JSONDecodeError)):
        return InvalidArgument.http_status, f"invalid request: {exc}"
    log.error("internal error", exc_info=exc)
    return 500, f"internal error: {type(exc).__name__}"


def error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode() + b"\n"
