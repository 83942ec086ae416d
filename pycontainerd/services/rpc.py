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
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ParamSpec, Protocol, TypeVar

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from .. import leases as leases_api
from .. import log as log_context
from .. import namespaces as namespaces_api
from ..errors import ContainerdError
from ..metrics import REGISTRY
from ..metrics._types import CounterChild, HistogramChild

__all__ = [
    "GRPCService",
    "enable_histogram",
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


_CODE_NAMES = {
    c: "".join(w.capitalize() for w in c.name.split("_")).replace("Ok", "OK").replace("Cancelled", "Canceled")
    for c in grpc.StatusCode
}
_RPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
_started = REGISTRY.counter("grpc_server_started_total", "RPCs started on the server.", _RPC_LABELS)
_handled = REGISTRY.counter(
    "grpc_server_handled_total", "RPCs completed on the server, by status code.", (*_RPC_LABELS, "grpc_code")
)
_latency = REGISTRY.histogram(
    "grpc_server_handling_seconds",
    "Time from an RPC's start to its status, when [metrics] grpc_histogram is on.",
    _RPC_LABELS,
    (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


class _Timing:
    on = False


def enable_histogram(on: bool = True) -> None:
    """Time every RPC into ``grpc_server_handling_seconds`` (off by default, as containerd's)."""
    _Timing.on = on


class _Method:
    """What the wrapper of one RPC method needs, computed once at registration (its counters too)."""

    __slots__ = ("full", "handled", "labels", "latency", "started")

    def __init__(self, full: str, labels: tuple[str, str, str]) -> None:
        self.full = full  # "/containerd.services.images.v1.Images/List", for logs
        self.labels = labels  # grpc_type, grpc_service, grpc_method
        self.started = _started.labels(*labels)
        self.latency: HistogramChild | None = None  # made on first use: no empty series when timing is off
        self.handled: dict[str, CounterChild] = {}

    def done(self, code: str, t0: float) -> None:
        child = self.handled.get(code)
        if child is None:
            child = self.handled[code] = _handled.labels(*self.labels, code)
        child.inc()
        if _Timing.on:
            if self.latency is None:
                self.latency = _latency.labels(*self.labels)
            self.latency.observe(time.perf_counter() - t0)


def _begin(m: _Method, context: grpc.aio.ServicerContext) -> float:
    log_context.current.set(log_context.Request(None, m.full, None, context))
    m.started.inc()
    return time.perf_counter()


def _end(m: _Method, context: grpc.aio.ServicerContext, code: str | None, t0: float) -> None:
    if code is None:
        status = context.code()
        code = "OK" if status is None else _CODE_NAMES.get(status, "Unknown")
    m.done(code, t0)


def _wrap_unary(m: _Method, fn: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        t0, code = _begin(m, context), None
        try:
            return await fn(request, context)
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            code = "Canceled"
            raise
        except Exception as e:
            await _abort(context, m.full, e)
        finally:
            _end(m, context, code, t0)

    return handler


def _wrap_stream(m: _Method, fn: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        t0, code = _begin(m, context), None
        try:
            async for response in fn(request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except (asyncio.CancelledError, GeneratorExit):
            code = "Canceled"
            raise
        except Exception as e:
            await _abort(context, m.full, e)
        finally:
            _end(m, context, code, t0)

    return handler


def _service_of(servicer: object) -> Any:
    """The protobuf service descriptor of the generated ``*Servicer`` base ``servicer`` derives from."""
    for cls in type(servicer).__mro__:
        if cls.__module__.endswith("_pb2_grpc") and cls.__name__.endswith("Servicer"):
            pb2 = sys.modules.get(cls.__module__.removesuffix("_grpc"))
            if pb2 is not None:
                return pb2.DESCRIPTOR.services_by_name.get(cls.__name__.removesuffix("Servicer"))
    return None


def _grpc_type(client_streaming: bool, server_streaming: bool) -> str:
    if client_streaming:
        return "bidi_stream" if server_streaming else "client_stream"
    return "server_stream" if server_streaming else "unary"


class _Guarded:
    """A servicer seen through :func:`guarded`: every RPC method maps its errors and is counted."""

    def __init__(self, servicer: object) -> None:
        self._servicer = servicer
        self._service = _service_of(servicer)
        self._name = self._service.full_name if self._service is not None else type(servicer).__name__

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._servicer, name)
        if not name[:1].isupper() or not callable(fn):
            return fn
        desc = self._service.methods_by_name.get(name) if self._service is not None else None
        streams = inspect.isasyncgenfunction(fn)
        kind = _grpc_type(desc.client_streaming, desc.server_streaming) if desc else _grpc_type(False, streams)
        m = _Method(f"/{self._name}/{name}", (kind, self._name, name))
        wrapped = _wrap_stream(m, fn) if streams else _wrap_unary(m, fn)
        setattr(self, name, wrapped)
        return wrapped


def guarded(servicer: T) -> T:
    """``servicer`` with every RPC method wrapped once, at registration, to map errors, bind the
    call's log context (:mod:`pycontainerd.log`) and count it (``grpc_server_*`` metrics).

    Wrapping at registration rather than in a server interceptor keeps the
    per-call cost to one extra coroutine frame.
    """
    return _Guarded(servicer)  # type: ignore[return-value]
