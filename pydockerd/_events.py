"""Docker's event stream: what happened to images and containers, kept for ``since`` and followed live.

Services publish (from any thread); ``GET /events`` replays the kept events
in the asked window and, without ``until``, follows new ones.  The log is a
bounded ring, as dockerd's is: an old ``since`` gets what is still kept.
Matching is pure (:func:`matches`), so the filters are tested apart.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._filters import Filters, glob_match

__all__ = ["EVENT_FILTERS", "Event", "EventLog", "matches"]

EVENT_FILTERS = (
    "config", "container", "daemon", "event", "image", "label", "network",
    "node", "plugin", "scope", "secret", "service", "type", "volume",
)  # fmt: skip
KEEP = 1024


@dataclass(frozen=True)
class Event:
    type: str  # "container", "image", ...
    action: str  # "create", "start", "die", "pull", "tag", "delete", ...
    id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time_nano: int = 0

    def message(self) -> dict[str, Any]:
        """The JSON object Docker sends, with the pre-1.22 fields the CLI still reads."""
        msg: dict[str, Any] = {
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.id, "Attributes": dict(self.attributes)},
            "scope": "local",
            "time": self.time_nano // 1_000_000_000,
            "timeNano": self.time_nano,
        }
        if self.type in ("container", "image"):
            msg["status"] = self.action
            msg["id"] = self.id
            if "image" in self.attributes and self.type == "container":
                msg["from"] = self.attributes["image"]
        return msg


def matches(event: Event, filters: Filters) -> bool:
    """Whether ``event`` passes Docker's event filters (values of one name OR-ed, names AND-ed)."""
    for name, values in filters.items():
        if not values:
            continue
        if name == "type":
            ok = event.type in values
        elif name == "event":
            ok = event.action in values or event.action.partition(":")[0] in values
        elif name == "container":
            ok = event.type == "container" and any(_names(event, v) for v in values)
        elif name == "image":
            ok = event.type in ("container", "image") and any(
                _names(event, v) or event.attributes.get("image") == v for v in values
            )
        elif name == "label":
            ok = any(_label_ok(v, event.attributes) for v in values)
        elif name == "scope":
            ok = "local" in values
        elif name in ("daemon", "network", "volume", "plugin", "node", "service", "secret", "config"):
            ok = event.type == name and any(
                glob_match(v, event.id) or v == event.attributes.get("name") for v in values
            )
        else:
            ok = True
        if not ok:
            return False
    return True


def _names(event: Event, value: str) -> bool:
    """``value`` is the actor's ID (or a prefix of it) or its name."""
    return bool(value) and (event.id.startswith(value) or event.attributes.get("name") == value)


def _label_ok(spec: str, attributes: Mapping[str, str]) -> bool:
    key, eq, value = spec.partition("=")
    if key not in attributes:
        return False
    return not eq or attributes[key] == value


class EventLog:
    """A bounded, thread-safe log of events with live subscribers (asyncio queues)."""

    def __init__(self, keep: int = KEEP) -> None:
        self._events: deque[Event] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]] = set()

    def publish(self, type: str, action: str, id: str, attributes: Mapping[str, str] | None = None) -> Event:
        event = Event(type, action, id, dict(attributes or {}), time.time_ns())
        with self._lock:
            self._events.append(event)
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # that loop has closed
                pass
        return event

    def since(self, since_ns: int, until_ns: int | None = None) -> list[Event]:
        with self._lock:
            return [
                e for e in self._events if e.time_nano >= since_ns and (until_ns is None or e.time_nano <= until_ns)
            ]

    def subscribe(self) -> tuple[list[Event], asyncio.Queue[Event]]:
        """The kept events and a queue of every later one, with no gap between them; call from a loop."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            kept = list(self._events)
            self._subscribers.add(entry)
        return kept, queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        with self._lock:
            self._subscribers = {s for s in self._subscribers if s[1] is not queue}
