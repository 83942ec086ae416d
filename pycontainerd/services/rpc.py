"""What every gRPC adapter shares: call metadata, error mapping, offloading, conversions.

Errors are mapped in exactly one place, :func:`guarded`: a
handler raises :class:`~pycontainerd.errors.ContainerdError` and the call
ends with that error's gRPC code and message; anything else is a bug, so it
is logged with its traceback and reported as UNKNOWN.

Core stores block (SQLite, files, hashing), so handlers run them through
:func:`offload`, which keeps the event loop free for every other call.  Point
lookups (one indexed row, a read of a small blob) run on the loop itself:
metadata reads never wait for the writer's lock, and a thread hop costs more
than they do.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ParamSpec, Protocol, TypeVar

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from .. import leases as leases_api
from .. import namespaces as namespaces_api
from ..errors import ContainerdError

__all__ = [
    "GRPCService",
    "field_paths",
    "guarded",
    "namespace_and_lease",
    "namespace_of",
    "offload",
]

log = logging.getLogger("pycontainerd.services")

P = ParamSpec("P")
T = TypeVar("T")


class GRPCService(Protocol):
    """A plugin instance that serves one gRPC service."""

    def register(self, server: grpc.aio.Server) -> None: ...


def namespace_of(context: grpc.aio.ServicerContext) -> str:
    """The call's namespace; FailedPrecondition when the client sent none."""
    return namespaces_api.from_metadata(context.invocation_metadata())


def namespace_and_lease(context: grpc.aio.ServicerContext) -> tuple[str, str | None]:
    """The call's namespace and the lease it works under, from one read of its metadata."""
    metadata = context.invocation_metadata() or ()
    lease: str | None = None
    for key, value in metadata:
        if key == leases_api.GRPC_HEADER:
            lease = (value.decode() if isinstance(value, bytes) else str(value)) or None
            break
    return namespaces_api.from_metadata(metadata), lease


def offload(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
    """Run blocking core work on the daemon's thread pool."""
    return asyncio.to_thread(fn, *args, **kwargs)


def field_paths(mask: FieldMask | None) -> list[str]:
    return list(mask.paths) if mask is not None else []


async def _abort(context: grpc.aio.ServicerContext, method: str, err: Exception) -> None:
    if isinstance(err, ContainerdError):
        log.debug("%s: %s: %s", method, type(err).__name__, err)
        await context.abort(err.grpc_code, err.message)
    log.error("%s failed unexpectedly: %s", method, err, exc_info=err)
    await context.abort(grpc.StatusCode.UNKNOWN, str(err) or type(err).__name__)


def _wrap_unary(method: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as e:
            await _abort(context, method, e)

    return handler


def _wrap_stream(method: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for response in fn(request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as e:
            await _abort(context, method, e)

    return handler


def _wrap(method: str, fn: Callable[..., Any] | None) -> Callable[..., Any] | None:
    if fn is None:
        return None
    if inspect.isasyncgenfunction(fn):
        return _wrap_stream(method, fn)
    return _wrap_unary(method, fn)


class _Guarded:
    """A servicer seen through :func:`guarded`: every RPC method maps its errors."""

    def __init__(self, servicer: object) -> None:
        self._servicer = servicer
        self._prefix = type(servicer).__name__

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._servicer, name)
        if not name[:1].isupper() or not callable(fn):
            return fn
        wrapped = _wrap(f"{self._prefix}.{name}", fn)
        setattr(self, name, wrapped)
        return wrapped


def guarded(servicer: T) -> T:
    """``servicer`` with every RPC method wrapped once, at registration, to map errors.

    Wrapping at registration rather than in a server interceptor keeps the
    per-call cost to one extra coroutine frame.
    """
    return _Guarded(servicer)  # type: ignore[return-value]
