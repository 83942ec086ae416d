"""The Streaming gRPC service: containerd.services.streaming.v1.

The first message of a stream is ``StreamInit`` with its id; the service
registers the stream, acknowledges with an empty message, and keeps the call
open until the client ends it.  Whoever then looks the stream up (the
Transfer service) sends and receives on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from google.protobuf import any_pb2, empty_pb2

from ..api import typeurl
from ..api.services.streaming.v1 import streaming_pb2 as pb
from ..api.services.streaming.v1 import streaming_pb2_grpc as pb_grpc
from ..errors import Unavailable
from ..streaming import Manager
from .rpc import guarded, namespace_of

__all__ = ["StreamingService"]


class _CallStream:
    """A registered stream: the open Stream call, seen from other calls on the same loop."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self._done = asyncio.Event()
        self._recv_lock = asyncio.Lock()

    async def send(self, message: any_pb2.Any) -> None:
        if self._done.is_set():
            raise Unavailable("stream closed")
        await self._context.write(message)

    async def recv(self) -> any_pb2.Any:
        async with self._recv_lock:
            msg = await self._context.read()
        if msg is grpc.aio.EOF:
            raise Unavailable("stream closed by the client")
        assert isinstance(msg, any_pb2.Any)
        return msg

    def close(self) -> None:
        self._done.set()

    async def wait(self) -> None:
        await self._done.wait()


class StreamingService(pb_grpc.StreamingServicer):
    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_StreamingServicer_to_server(guarded(self), server)

    async def Stream(  # type: ignore[override]
        self, request_iterator: AsyncIterator[any_pb2.Any], context: grpc.aio.ServicerContext
    ) -> None:
        namespace = namespace_of(context)
        first = await context.read()
        if first is grpc.aio.EOF:
            return
        assert isinstance(first, any_pb2.Any)
        init = typeurl.unpack(first, pb.StreamInit)
        stream = _CallStream(context)
        self._manager.register(namespace, init.id, stream)
        try:
            await context.write(typeurl.pack(empty_pb2.Empty()))
            await stream.wait()
        finally:
            self._manager.unregister(namespace, init.id, stream)
