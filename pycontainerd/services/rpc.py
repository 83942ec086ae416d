"""What every gRPC adapter shares: call metadata, error mapping, offloading, conversions.

Errors are mapped in exactly one place, :class:`ErrorInterceptor`: a
handler raises :class:`~pycontainerd.errors.ContainerdError` and the call
ends with that error's gRPC code and message; anything else is a bug, so it
is logged with its traceback and reported as UNKNOWN.

Core stores block (SQLite, files, hashing), so handlers run them through
:func:`offload`, which keeps the event loop free for every other call.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, Protocol, TypeVar

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from .. import leases as leases_api
from .. import namespaces as namespaces_api
from ..errors import ContainerdError

__all__ = [
    "ErrorInterceptor",
    "GRPCService",
    "field_paths",
    "from_timestamp",
    "lease_of",
    "namespace_of",
    "offload",
    "timestamp",
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


def lease_of(context: grpc.aio.ServicerContext) -> str | None:
    """The lease a call works under, if it names one."""
    for key, value in context.invocation_metadata() or ():
        if key == leases_api.GRPC_HEADER:
            lease = value.decode() if isinstance(value, bytes) else value
            return str(lease) or None
    return None


def offload(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
    """Run blocking core work on the daemon's thread pool."""
    return asyncio.to_thread(fn, *args, **kwargs)


def timestamp(dt: datetime | None) -> Timestamp:
    """A protobuf Timestamp; None (unknown) becomes the zero time, as in Go."""
    ts = Timestamp()
    if dt is not None:
        ts.FromDatetime(dt.astimezone(UTC) if dt.tzinfo else dt)
    return ts


def from_timestamp(ts: Timestamp) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


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


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Turns exceptions raised by any handler into the call's gRPC status."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_unary is not None:
            make, fn = grpc.unary_unary_rpc_method_handler, handler.unary_unary
        elif handler.unary_stream is not None:
            make, fn = grpc.unary_stream_rpc_method_handler, handler.unary_stream
        elif handler.stream_unary is not None:
            make, fn = grpc.stream_unary_rpc_method_handler, handler.stream_unary
        else:
            make, fn = grpc.stream_stream_rpc_method_handler, handler.stream_stream
        wrapped = make(
            _wrap(method, fn),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._cache[method] = wrapped
        return wrapped
