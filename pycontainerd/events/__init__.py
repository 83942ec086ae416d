"""Events: what happened in the daemon, as containerd's topics and payloads.

Stores and services publish an event after the change it reports is
committed; the :class:`~pycontainerd.events.exchange.Exchange` fans each one
out to the subscribers whose filters match.  An event travels in an
:class:`Envelope` (time, namespace, topic, payload as a protobuf ``Any``), the
same shape as containerd's, so ``ctr events`` reads ours unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from google.protobuf import any_pb2
from google.protobuf.message import Message

from ..errors import InvalidArgument, quote
from ..filters import Adaptor
from ..identifiers import validate

__all__ = [
    "Decoder",
    "Envelope",
    "Publisher",
    "envelope_adaptor",
    "message_field",
    "validate_topic",
]


@dataclass(frozen=True)
class Envelope:
    timestamp_ns: int
    """Wall-clock time of the event, nanoseconds since the epoch (UTC)."""
    namespace: str
    topic: str
    event: any_pb2.Any


Decoder = Callable[[any_pb2.Any], Message | None]
"""Turns an event's ``Any`` into its message, or None for a type this process does not know."""


class Publisher(Protocol):
    """Where stores send their events; called from any thread, never blocks on subscribers."""

    def publish(self, namespace: str, topic: str, event: Message) -> None: ...


def validate_topic(topic: str) -> str:
    """A topic is ``/``-separated identifiers, at least one (``/tasks/exit``)."""
    if not topic:
        raise InvalidArgument("envelope topic: must not be empty")
    if not topic.startswith("/"):
        raise InvalidArgument(f"envelope topic {quote(topic)}: must start with '/'")
    if len(topic) == 1:
        raise InvalidArgument(f"envelope topic {quote(topic)}: must have at least one component")
    for component in topic[1:].split("/"):
        try:
            validate("topic component", component)
        except InvalidArgument as e:
            raise InvalidArgument(f"envelope topic {quote(topic)}: component {quote(component)}: {e}") from None
    return topic


def message_field(msg: Message, path: Sequence[str]) -> str | None:
    """The value at ``path`` inside a message, for filters: strings, booleans and string maps.

    Numbers and times are not addressable, as in containerd's generated field
    paths; a path that names no such field gives None.
    """
    if not path:
        return None
    field = msg.DESCRIPTOR.fields_by_name.get(path[0])
    if field is None:
        return None
    value = getattr(msg, path[0])
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        if len(path) < 2:
            return None
        key = ".".join(path[1:])
        return str(value[key]) if key in value else None
    if field.is_repeated:
        return None
    if field.message_type is not None:
        return message_field(value, path[1:]) if msg.HasField(path[0]) else None
    if len(path) != 1:
        return None
    if field.type == field.TYPE_STRING:
        return str(value)
    if field.type == field.TYPE_BOOL:
        return "true" if value else "false"
    return None


def envelope_adaptor(envelope: Envelope, decode: Decoder) -> Adaptor:
    """A filter adaptor over ``namespace``, ``topic`` and ``event.<field>`` of an envelope."""
    decoded: list[Message | None] = []

    def adapt(path: Sequence[str]) -> str | None:
        if not path:
            return None
        if path[0] == "namespace" and len(path) == 1:
            return envelope.namespace
        if path[0] == "topic" and len(path) == 1:
            return envelope.topic
        if path[0] == "event" and len(path) > 1:
            if not decoded:
                decoded.append(decode(envelope.event))
            msg = decoded[0]
            return None if msg is None else message_field(msg, path[1:])
        return None

    return adapt
