"""Events over gRPC: publish into a daemon's exchange and follow what happens in it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from google.protobuf.message import Message

from ..api import typeurl
from ..api.convert import envelope_from_pb, envelope_to_pb
from ..api.services.events.v1 import events_pb2 as pb
from ..api.services.events.v1 import events_pb2_grpc
from ..events import Envelope
from ._rpc import Connection

__all__ = ["EventService"]


class EventService:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stub = conn.stub(events_pb2_grpc.EventsStub)

    def publish(self, topic: str, event: Message) -> None:
        """Publish ``event`` under ``topic`` in the client's namespace; raises InvalidArgument for a bad topic."""
        self._conn.unary(self._stub.Publish, pb.PublishRequest(topic=topic, event=typeurl.pack(event)))

    def forward(self, envelope: Envelope) -> None:
        """Send an event that already has its namespace and time."""
        self._conn.unary(self._stub.Forward, pb.ForwardRequest(envelope=envelope_to_pb(envelope)))

    def subscribe(self, filters: Sequence[str] = ()) -> Iterator[Envelope]:
        """Every later event matching one of ``filters`` (all namespaces), until the iterator is closed."""
        for m in self._conn.stream(self._stub.Subscribe, pb.SubscribeRequest(filters=list(filters)), endless=True):
            yield envelope_from_pb(m)
