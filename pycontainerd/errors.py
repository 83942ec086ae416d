"""The one error hierarchy of pycontainerd.

Every error the core raises is a :class:`ContainerdError`; each class carries
the gRPC status code and HTTP status it maps to, so the gRPC adapters, the
client and (later) the Docker API translate errors in exactly one place.
"""

from __future__ import annotations

import json
from typing import ClassVar

import grpc

__all__ = [
    "AlreadyExists",
    "Canceled",
    "ContainerdError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "NotImplementedYet",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unknown",
    "from_grpc",
    "quote",
]


class ContainerdError(Exception):
    """Root of every error pycontainerd raises on purpose."""

    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Unknown(ContainerdError):
    pass


class InvalidArgument(ContainerdError, ValueError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400


class NotFound(ContainerdError, LookupError):
    grpc_code = grpc.StatusCode.NOT_FOUND
    http_status = 404


class AlreadyExists(ContainerdError):
    grpc_code = grpc.StatusCode.ALREADY_EXISTS
    http_status = 409


class FailedPrecondition(ContainerdError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 412


class Unavailable(ContainerdError):
    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = 503


class NotImplementedYet(ContainerdError):
    """The operation exists in the API but this implementation does not offer it."""

    grpc_code = grpc.StatusCode.UNIMPLEMENTED
    http_status = 501


class OutOfRange(ContainerdError):
    grpc_code = grpc.StatusCode.OUT_OF_RANGE
    http_status = 416


class ResourceExhausted(ContainerdError):
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429


class Canceled(ContainerdError):
    grpc_code = grpc.StatusCode.CANCELLED
    http_status = 499


class DeadlineExceeded(ContainerdError):
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    http_status = 504


class Unauthenticated(ContainerdError):
    """Credentials were missing or refused (by a registry, say)."""

    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401


class PermissionDenied(ContainerdError):
    """Credentials were accepted but do not allow the operation."""

    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    http_status = 403


_BY_CODE: dict[grpc.StatusCode, type[ContainerdError]] = {
    cls.grpc_code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Unavailable,
        NotImplementedYet,
        OutOfRange,
        ResourceExhausted,
        Canceled,
        DeadlineExceeded,
        Unauthenticated,
        PermissionDenied,
    )
}


def from_grpc(code: grpc.StatusCode | None, message: str) -> ContainerdError:
    """Turn a gRPC status received from any containerd into our error class."""
    cls = _BY_CODE.get(code, Unknown) if code is not None else Unknown
    return cls(message)


def quote(value: str) -> str:
    """A name inside an error message, double-quoted as containerd's messages quote them."""
    return json.dumps(value, ensure_ascii=False)
