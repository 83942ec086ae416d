"""The exchange: one place where events are published and fanned out to subscribers.

Publishers are stores and services running on worker threads, so
:meth:`Exchange.publish` is thread-safe and never waits: each subscriber has
a bounded queue on its own event loop, filled through
``call_soon_threadsafe``.  A subscriber that falls more than
:data:`QUEUE_LIMIT` events behind is cut off with ResourceExhausted rather
than letting the daemon's memory grow without bound (containerd's queues have
no limit).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence

from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from .. import filters
from ..api import typeurl
from ..api.events import (  # noqa: F401 - loaded so that decode() knows every event type
    container_pb2,
    content_pb2,
    image_pb2,
    namespace_pb2,
    snapshot_pb2,
    task_pb2,
)
from ..errors import InvalidArgument, ResourceExhausted
from ..identifiers import validate
from . import Envelope, envelope_adaptor, validate_topic

__all__ = ["QUEUE_LIMIT", "Exchange", "Subscription", "decode"]

log = logging.getLogger("pycontainerd.events")

QUEUE_LIMIT = 10_000


def decode(event: any_pb2.Any) -> Message | None:
    """The payload of an event, for any message type this process has loaded; None otherwise."""
    name = typeurl.name_of(event)
    try:
        desc = descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError:
        return None
    msg = message_factory.GetMessageClass(desc)()
    try:
        msg.ParseFromString(event.value)
    except DecodeError:
        return None
    return msg


class Subscription:
    """Events for one subscriber, in order; iterate with ``async for``, end with :meth:`close`."""

    def __init__(self, exchange: Exchange, matcher: filters.Filter, loop: asyncio.AbstractEventLoop) -> None:
        self._exchange = exchange
        self._matcher = matcher
        self._loop = loop
        self._queue: asyncio.Queue[Envelope | BaseException] = asyncio.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._closed = False

    def _offer(self, envelope: Envelope) -> None:
        """Called on the publisher's thread."""
        if self._closed or not self._matcher.match(envelope_adaptor(envelope, decode)):
            return
        with self._lock:
            self._pending += 1
            overflow = self._pending > QUEUE_LIMIT
        item: Envelope | BaseException = envelope
        if overflow:
            self._closed = True
            item = ResourceExhausted(f"event subscriber fell more than {QUEUE_LIMIT} events behind")
            self._exchange._remove(self)
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the subscriber's loop is closed
            self._exchange._remove(self)

    def __aiter__(self) -> AsyncIterator[Envelope]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Envelope]:
        while True:
            item = await self._queue.get()
            with self._lock:
                self._pending -= 1
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._closed = True
        self._exchange._remove(self)


class Exchange:
    """Publish, forward and subscribe, as containerd's event exchange."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []

    def publish(self, namespace: str, topic: str, event: Message) -> None:
        """Send ``event`` under ``topic`` in ``namespace``, stamped now.

        With nobody subscribed the event is checked but not encoded: stores
        publish on every change, and most of the time no one listens.
        """
        validate("namespace", namespace)
        validate_topic(topic)
        if not self._subscribers:
            return
        self.forward(Envelope(time.time_ns(), namespace, topic, typeurl.pack(event)))

    def forward(self, envelope: Envelope) -> None:
        """Send an envelope made elsewhere (a shim's, or a client's through Forward)."""
        validate("namespace", envelope.namespace)
        validate_topic(envelope.topic)
        if envelope.timestamp_ns <= 0:
            raise InvalidArgument("timestamp must be set on forwarded event")
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub._offer(envelope)
        log.debug("event %s in %s", envelope.topic, envelope.namespace)

    def subscribe(self, filter_strings: Sequence[str] = ()) -> Subscription:
        """A subscription on the running event loop; InvalidArgument for a bad filter."""
        matcher = filters.parse(list(filter_strings))
        sub = Subscription(self, matcher, asyncio.get_running_loop())
        with self._lock:
            self._subscribers.append(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)
