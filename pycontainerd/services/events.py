"""The Events gRPC service: containerd.services.events.v1 over the daemon's exchange.

Publish takes the namespace from the call, Forward from the envelope (shims
and other daemons forward what already happened elsewhere); Subscribe
streams every later event that matches one of its filters until the client
goes away.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
from google.protobuf.empty_pb2 import Empty

from ..api.convert import envelope_from_pb, envelope_to_pb
from ..api.services.events.v1 import events_pb2 as pb
from ..api.services.events.v1 import events_pb2_grpc as pb_grpc
from ..errors import InvalidArgument
from ..events import Envelope, validate_topic
from ..events.exchange import Exchange
from .rpc import guarded, namespace_of

__all__ = ["EventsService"]


class EventsService(pb_grpc.EventsServicer):
    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_EventsServicer_to_server(guarded(self), server)

    async def Publish(self, request: pb.PublishRequest, context: grpc.aio.ServicerContext) -> Empty:
        namespace = namespace_of(context)
        validate_topic(request.topic)
        if not request.HasField("event"):
            raise InvalidArgument("event must be set")
        self._exchange.forward(Envelope(time.time_ns(), namespace, request.topic, request.event))
        return Empty()

    async def Forward(self, request: pb.ForwardRequest, context: grpc.aio.ServicerContext) -> Empty:
        if not request.HasField("envelope"):
            raise InvalidArgument("envelope must be set")
        if not request.envelope.HasField("timestamp"):
            raise InvalidArgument("timestamp must be set on forwarded event")
        self._exchange.forward(envelope_from_pb(request.envelope))
        return Empty()

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Envelope]:
        sub = self._exchange.subscribe(list(request.filters))
        try:
            async for envelope in sub:
                yield envelope_to_pb(envelope)
        finally:
            sub.close()
